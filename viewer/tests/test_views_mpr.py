import io
import json
import re

import numpy as np
import pydicom
import pytest
from django.urls import reverse
from PIL import Image

from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, tenant_client
from pacs.models import Series
from viewer import volume as volume_module
from viewer.models import WindowPreset

CT_FILES = [f"1-0{n}.dcm" for n in range(40, 46)]


@pytest.fixture(autouse=True)
def fresh_volume_cache(monkeypatch):
    """Each test gets its own process cache: series UIDs repeat across tests."""
    monkeypatch.setattr(volume_module, "_cache", None)


@pytest.fixture
def ct_series(ingest) -> Series:
    for name in CT_FILES:
        ingest(CT_SERIES / name)
    return Series.objects.select_related("study").get()


def url(name: str, series: Series, *extra: str) -> str:
    args = [series.study.study_instance_uid, series.series_instance_uid, *extra]
    return reverse(f"viewer:{name}", args=args)


def png_size(response) -> tuple[int, int]:
    return Image.open(io.BytesIO(response.content)).size


@pytest.mark.django_db
def test_it_describes_the_volume_geometry(client_a, ct_series):
    response = client_a.get(url("volume", ct_series))

    body = response.json()
    assert body["available"] is True
    assert body["dimensions"] == {"columns": 512, "rows": 512, "slices": 6}
    assert body["spacing"]["slice"] == pytest.approx(3.0)
    sagittal = body["planes"]["sagittal"]
    assert sagittal["column_direction"] == [0, 1, 0]
    # One row per slice, one column per voxel row: nothing invented between.
    assert (sagittal["rows"], sagittal["columns"]) == (6, 512)
    assert sagittal["pixel_spacing"] == [
        pytest.approx(3.0),
        pytest.approx(body["spacing"]["row"]),
    ]
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_it_explains_why_a_series_with_a_gap_is_refused(client_a, ingest):
    for name in ("1-040.dcm", "1-041.dcm", "1-043.dcm"):
        ingest(CT_SERIES / name)
    series = Series.objects.select_related("study").get()

    body = client_a.get(url("volume", series)).json()
    plane = client_a.get(url("mpr_plane", series, "axial"))

    assert body["available"] is False and body["reason"] == "missing_slices"
    assert "missing" in body["message"]
    assert plane.status_code == 200 and plane["X-Render-Error"] == "1"


@pytest.mark.django_db
@pytest.mark.parametrize("plane", ["axial", "sagittal", "coronal"])
def test_it_renders_each_plane_as_png(client_a, ct_series, plane):
    response = client_a.get(url("mpr_plane", ct_series, plane), {"wc": 40, "ww": 400})

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "no-store" in response["Cache-Control"]
    assert response["X-Window-Center"] == "40"
    assert response["X-Plane-Grid"].count(";") == 5


def windowed_slice(path, center: float, width: float) -> np.ndarray:
    """A stored slice through the linear window of PS3.3 C.11.2.1.2, by hand."""
    ds = pydicom.dcmread(path)
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    scaled = np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


@pytest.mark.django_db
def test_an_axial_plane_is_the_stored_slice_at_its_own_size(client_a, ct_series):
    path = CT_SERIES / "1-042.dcm"
    z = float(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient[2])

    response = client_a.get(
        url("mpr_plane", ct_series, "axial"), {"z": z, "wc": 40, "ww": 400}
    )

    shown = np.asarray(Image.open(io.BytesIO(response.content)))
    assert shown.shape == (512, 512)
    np.testing.assert_array_equal(shown, windowed_slice(path, 40, 400))


@pytest.mark.django_db
def test_a_plane_is_no_larger_than_the_viewport_asks(client_a, ct_series):
    response = client_a.get(url("mpr_plane", ct_series, "axial"), {"size": 300})

    # 300 rounds up to the 384 step; rows and columns keep their ratio.
    assert png_size(response) == (384, 384)
    assert response["X-Plane-Grid"].split(";")[4:] == ["384", "384"]


@pytest.mark.django_db
def test_a_size_beyond_the_source_does_not_enlarge_the_plane(client_a, ct_series):
    response = client_a.get(url("mpr_plane", ct_series, "axial"), {"size": 2048})

    assert png_size(response) == (512, 512)


@pytest.mark.django_db
def test_it_renders_a_slab_and_an_oblique_plane(client_a, ct_series):
    slab = client_a.get(
        url("mpr_plane", ct_series, "coronal"), {"thickness": 20, "mode": "minip"}
    )
    oblique = client_a.get(
        url("mpr_plane", ct_series, "oblique"), {"u": "1,1,0", "v": "0,0,-1"}
    )

    assert slab.status_code == 200 and "X-Render-Error" not in slab
    assert oblique.status_code == 200 and "X-Render-Error" not in oblique


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"thickness": "-1"},
        {"thickness": "nan"},
        {"mode": "sum"},
        {"x": "1e300"},
        {"wc": "40"},
        {"size": "0"},
        {"size": "big"},
    ],
)
def test_it_rejects_bad_plane_parameters(client_a, ct_series, query):
    response = client_a.get(url("mpr_plane", ct_series, "axial"), query)

    assert response.status_code == 400


@pytest.mark.django_db
def test_it_needs_two_directions_for_an_oblique_plane(client_a, ct_series):
    missing = client_a.get(url("mpr_plane", ct_series, "oblique"))
    parallel = client_a.get(
        url("mpr_plane", ct_series, "oblique"), {"u": "1,0,0", "v": "2,0,0"}
    )

    assert missing.status_code == 400 and parallel.status_code == 400


@pytest.mark.django_db
def test_it_answers_404_for_an_unknown_plane(client_a, ct_series):
    assert client_a.get(url("mpr_plane", ct_series, "diagonal")).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "size"),
    [
        ({"quality": "coarse"}, (256, 256)),
        ({"quality": "full", "mode": "shaded", "preset": "angio"}, (512, 512)),
    ],
)
def test_it_renders_the_3d_view(client_a, ct_series, query, size):
    response = client_a.get(url("volume_render", ct_series), {"azimuth": 30, **query})

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert png_size(response) == size


@pytest.mark.django_db
def test_it_rejects_an_unknown_preset(client_a, ct_series):
    response = client_a.get(url("volume_render", ct_series), {"preset": "gold"})

    assert response.status_code == 400


@pytest.mark.django_db
def test_it_records_that_images_of_the_series_were_viewed(client_a, ct_series):
    client_a.get(url("mpr_plane", ct_series, "sagittal"))

    event = AuditEvent.objects.get(event_type=EventType.FRAMES_VIEWED)
    assert event.object_id == ct_series.series_instance_uid


@pytest.mark.django_db
def test_the_page_links_three_planes_an_oblique_and_a_3d_view_without_inline_script(
    client_a, ct_series
):
    response = client_a.get(url("mpr", ct_series))

    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('class="mpr-view') == 5
    assert 'id="oblique-toggle"' in html and html.count('role="slider"') == 3
    assert " style=" not in html  # the CSP allows no inline style either
    assert "js/mpr.js" in html and 'data-preset="angio"' in html
    for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        assert "src=" in attributes or 'type="application/json"' in attributes
        if body.strip():
            json.loads(body)


def test_the_page_offers_the_tenants_own_windows_for_the_modality(client_a, ct_series):
    WindowPreset.objects.create(
        modality="CT", label="Temporal bone", window_center=700, window_width=4000
    )

    html = client_a.get(url("mpr", ct_series)).content.decode()

    assert 'data-wc="700.0" data-ww="4000.0">Temporal bone</button>' in html


@pytest.mark.django_db
def test_the_study_viewer_links_to_mpr(client_a, ct_series):
    study_page = client_a.get(
        reverse("viewer:study", args=[ct_series.study.study_instance_uid])
    )

    assert url("mpr", ct_series) in study_page.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["mpr", "volume", "volume_render", "mpr_plane"])
def test_another_tenants_radiologist_gets_404(ct_series, tenant_b, radiologist_b, name):
    client = tenant_client(tenant_b, radiologist_b)
    extra = ("axial",) if name == "mpr_plane" else ()

    assert client.get(url(name, ct_series, *extra)).status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["mpr", "volume", "volume_render", "mpr_plane"])
def test_a_referrer_without_access_gets_404(ct_series, tenant_a, referrer, name):
    client = tenant_client(tenant_a, referrer)
    extra = ("axial",) if name == "mpr_plane" else ()

    assert client.get(url(name, ct_series, *extra)).status_code == 404


@pytest.mark.django_db
def test_a_signed_out_visitor_is_sent_to_sign_in(ct_series, tenant_a):
    response = tenant_client(tenant_a).get(url("mpr_plane", ct_series, "axial"))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_a_loaded_volume_is_not_planned_again_for_each_plane(
    client_a, ct_series, ingest, monkeypatch
):
    client_a.get(url("mpr_plane", ct_series, "axial"))
    planned = []
    plan = volume_module.plan_volume
    monkeypatch.setattr(
        volume_module, "plan_volume", lambda series: planned.append(1) or plan(series)
    )

    again = client_a.get(url("mpr_plane", ct_series, "sagittal"))
    planned_for_the_loaded_volume = len(planned)
    ingest(CT_SERIES / "1-046.dcm")
    grown = client_a.get(url("volume", ct_series))
    after_growth = client_a.get(url("mpr_plane", ct_series, "sagittal"))

    assert again.status_code == 200 and planned_for_the_loaded_volume == 0
    # A new slice: the volume is planned and loaded again, one row taller.
    assert grown.json()["dimensions"]["slices"] == 7
    assert after_growth["X-Plane-Grid"].split(";")[4] == "7"
    assert len(planned) == 1
