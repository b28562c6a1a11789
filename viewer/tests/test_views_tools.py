"""The viewer's tool endpoints: measurements, annotations, key images, frame facts."""

import io
import json
import math

import numpy as np
import pydicom
import pytest
from django.urls import reverse
from django_tenants.utils import tenant_context
from PIL import Image
from pydicom.pixels import apply_modality_lut

from accounts.models import Role
from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA, make_user, tenant_client
from pacs.models import Instance
from viewer.models import Annotation, KeyImage
from viewer.tests.datasets import image, lut_item, write

CT_SLICE = CT_SERIES / "1-030.dcm"
COLOUR_CINE = SHARED_DATA / "pydicom" / "examples_ybr_color.dcm"
TWO_WINDOWS = SHARED_DATA / "pydicom" / "examples_overlay.dcm"
DX_IMAGE = SHARED_DATA / "highdicom" / "dx_image.dcm"


def frame_args(instance: Instance, frame: int = 1) -> list[object]:
    series = instance.series
    return [
        series.study.study_instance_uid,
        series.series_instance_uid,
        instance.sop_instance_uid,
        frame,
    ]


def annotate(client, instance: Instance, kind: str, points, frame: int = 1):  # type: ignore[no-untyped-def]
    return client.post(
        reverse("viewer:frame_annotations", args=frame_args(instance, frame)),
        json.dumps({"kind": kind, "points": points}),
        content_type="application/json",
    )


def study_annotations(client, instance: Instance):  # type: ignore[no-untyped-def]
    url = reverse("viewer:annotations", args=[instance.series.study.study_instance_uid])
    return client.get(url)


def hounsfield(path) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The slice in HU by pydicom's own Modality LUT, not Nimbus's."""
    ds = pydicom.dcmread(path)
    return np.asarray(apply_modality_lut(ds.pixel_array, ds), dtype=np.float64)


@pytest.fixture
def ct_slice(ingest) -> Instance:
    return ingest(CT_SLICE)


# --- Measurements --------------------------------------------------------------


@pytest.mark.django_db
def test_it_measures_an_ellipse_roi_in_hounsfield_units(client_a, ct_slice):
    response = annotate(client_a, ct_slice, "ellipse", [[200, 220], [260, 300]])

    # The same ROI by hand: pixel centres inside the ellipse with centre
    # (230, 260) and semi-axes 30 and 40 pixels.
    hu = hounsfield(CT_SLICE)
    rows, columns = np.mgrid[0 : hu.shape[0], 0 : hu.shape[1]]
    inside = ((columns + 0.5 - 230) / 30) ** 2 + ((rows + 0.5 - 260) / 40) ** 2 <= 1
    spacing = [float(v) for v in pydicom.dcmread(CT_SLICE).PixelSpacing]
    measurement = response.json()["measurement"]
    assert response.status_code == 201
    assert measurement["value_unit"] == "HU"
    assert measurement["pixels"] == int(inside.sum())
    assert measurement["mean"] == pytest.approx(hu[inside].mean())
    assert measurement["sd"] == pytest.approx(hu[inside].std())
    assert measurement["area"] == pytest.approx(
        math.pi * 30 * spacing[1] * 40 * spacing[0]
    )
    assert measurement["area_unit"] == "mm2"


@pytest.mark.django_db
def test_it_probes_the_hounsfield_value_of_one_pixel(client_a, ct_slice):
    response = annotate(client_a, ct_slice, "probe", [[300.7, 120.2]])

    assert response.status_code == 201
    assert response.json()["measurement"] == {
        "value": pytest.approx(hounsfield(CT_SLICE)[120, 300]),
        "value_unit": "HU",
    }


@pytest.mark.django_db
def test_it_measures_a_length_in_mm_from_the_pixel_spacing(client_a, ct_slice):
    response = annotate(client_a, ct_slice, "length", [[10, 10], [40, 50]])

    spacing = [float(v) for v in pydicom.dcmread(CT_SLICE).PixelSpacing]
    measurement = response.json()["measurement"]
    assert measurement["unit"] == "mm"
    assert measurement["length"] == pytest.approx(
        math.hypot(30 * spacing[1], 40 * spacing[0])
    )


@pytest.mark.django_db
def test_it_measures_a_length_in_pixels_when_the_spacing_is_unknown(client_a, ingest):
    instance = ingest(COLOUR_CINE)

    response = annotate(client_a, instance, "length", [[0, 0], [3, 4]])

    assert response.json()["measurement"]["length"] == pytest.approx(5)
    assert response.json()["measurement"]["unit"] == "px"


@pytest.mark.django_db
def test_it_says_a_projection_length_is_measured_at_the_detector(
    client_a, ingest, tmp_path
):
    ds = pydicom.dcmread(DX_IMAGE)
    del ds.PixelSpacing  # only the detector's spacing is left
    ds.save_as(tmp_path / "dx.dcm")
    instance = ingest(tmp_path / "dx.dcm")

    response = annotate(client_a, instance, "length", [[0, 0], [0, 10]])

    measurement = response.json()["measurement"]
    assert measurement["spacing_source"] == "ImagerPixelSpacing"
    assert measurement["length"] == pytest.approx(12.0)


@pytest.mark.django_db
def test_it_measures_an_angle_in_degrees(client_a, ct_slice):
    response = annotate(client_a, ct_slice, "angle", [[10, 0], [0, 0], [0, 10]])

    assert response.json()["measurement"]["angle"] == pytest.approx(90)


@pytest.mark.django_db
def test_it_refuses_an_roi_on_a_colour_image_and_saves_nothing(client_a, ingest):
    instance = ingest(COLOUR_CINE)

    response = annotate(client_a, instance, "ellipse", [[10, 10], [40, 40]])

    assert response.status_code == 400
    assert "greyscale" in response.json()["detail"]
    assert not Annotation.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind, points",
    [
        ("length", [[0, 0]]),
        ("length", [[0, 0], [1, "a"]]),
        ("length", [[0, 0], [1, float("nan")]]),
        ("circle", [[0, 0], [1, 1]]),
        ("ellipse", [[5, 5], [5, 9]]),
        ("probe", [[600, 10]]),
        ("length", "0,0,1,1"),
    ],
)
def test_it_refuses_points_that_do_not_make_the_measurement(
    client_a, ct_slice, kind, points
):
    response = annotate(client_a, ct_slice, kind, points)

    assert response.status_code == 400
    assert not Annotation.objects.exists()


# --- Annotations: saved per reader, audited, walled off -------------------------


@pytest.mark.django_db
def test_it_shows_a_reader_their_annotations_when_the_study_is_reopened(
    client_a, ct_slice
):
    created = annotate(client_a, ct_slice, "length", [[10, 10], [40, 50]]).json()

    listed = study_annotations(client_a, ct_slice).json()["annotations"]

    assert [a["id"] for a in listed] == [created["id"]]
    assert listed[0]["sop_instance_uid"] == ct_slice.sop_instance_uid
    assert listed[0]["points"] == [[10, 10], [40, 50]]


@pytest.mark.django_db
def test_it_audits_saving_and_deleting_an_annotation(client_a, radiologist, ct_slice):
    created = annotate(client_a, ct_slice, "probe", [[5, 5]]).json()

    deleted = client_a.delete(created["url"])

    saved = AuditEvent.objects.get(event_type=EventType.ANNOTATION_SAVED)
    removed = AuditEvent.objects.get(event_type=EventType.ANNOTATION_DELETED)
    assert deleted.status_code == 204
    assert not Annotation.objects.exists()
    assert saved.actor_username == radiologist.username
    assert saved.object_id == ct_slice.sop_instance_uid
    assert saved.detail["kind"] == "probe"
    assert removed.study_instance_uid == ct_slice.series.study.study_instance_uid


@pytest.mark.django_db
def test_it_measures_again_when_an_annotation_is_moved(client_a, ct_slice):
    created = annotate(client_a, ct_slice, "length", [[0, 0], [10, 0]]).json()

    moved = client_a.patch(
        created["url"],
        json.dumps({"points": [[0, 0], [20, 0]]}),
        content_type="application/json",
    )

    assert moved.status_code == 200
    assert moved.json()["measurement"]["length"] == pytest.approx(
        2 * created["measurement"]["length"]
    )


@pytest.mark.django_db
def test_it_keeps_a_colleagues_annotations_out_of_sight_and_reach(
    tenant_a, client_a, ct_slice
):
    created = annotate(client_a, ct_slice, "probe", [[5, 5]]).json()
    colleague = tenant_client(tenant_a, make_user(tenant_a, "rad.a2", Role.RADIOLOGIST))

    listed = study_annotations(colleague, ct_slice).json()["annotations"]
    deleted = colleague.delete(created["url"])

    assert listed == []
    assert deleted.status_code == 404
    assert Annotation.objects.count() == 1


@pytest.mark.django_db
def test_it_answers_404_to_a_referrer_without_access(tenant_a, referrer, ct_slice):
    client = tenant_client(tenant_a, referrer)

    created = annotate(client, ct_slice, "probe", [[5, 5]])
    listed = study_annotations(client, ct_slice)

    assert created.status_code == 404
    assert listed.status_code == 404
    assert not Annotation.objects.exists()


@pytest.mark.django_db
def test_it_answers_404_to_a_radiologist_of_another_tenant(
    tenant_a, client_a, ct_slice, tenant_b, radiologist_b
):
    with tenant_context(tenant_a):
        created = annotate(client_a, ct_slice, "probe", [[5, 5]]).json()
        args = frame_args(ct_slice)
    other = tenant_client(tenant_b, radiologist_b)

    assert other.delete(created["url"]).status_code == 404
    assert other.get(reverse("viewer:annotations", args=[args[0]])).status_code == 404
    posted = other.post(
        reverse("viewer:frame_annotations", args=args),
        json.dumps({"kind": "probe", "points": [[5, 5]]}),
        content_type="application/json",
    )
    assert posted.status_code == 404
    with tenant_context(tenant_a):
        assert Annotation.objects.count() == 1


@pytest.mark.django_db
def test_it_forbids_every_cache_to_keep_annotations(client_a, ct_slice):
    annotate(client_a, ct_slice, "probe", [[5, 5]])

    response = study_annotations(client_a, ct_slice)

    assert "no-store" in response["Cache-Control"]


# --- Key images ---------------------------------------------------------------------


@pytest.mark.django_db
def test_it_marks_a_key_image_once_and_lists_it_in_the_study(client_a, ct_slice):
    url = reverse("viewer:key_image", args=frame_args(ct_slice))

    first = client_a.put(url)
    again = client_a.put(url)
    page = client_a.get(
        reverse("viewer:study", args=[ct_slice.series.study.study_instance_uid])
    )

    assert (first.status_code, again.status_code) == (201, 200)
    assert KeyImage.objects.count() == 1
    assert AuditEvent.objects.filter(event_type=EventType.KEY_IMAGE_MARKED).count() == 1
    assert f'data-sop-uid="{ct_slice.sop_instance_uid}"' in page.content.decode()


@pytest.mark.django_db
def test_it_unmarks_a_key_image(client_a, ct_slice):
    url = reverse("viewer:key_image", args=frame_args(ct_slice))
    client_a.put(url)

    response = client_a.delete(url)
    listed = client_a.get(
        reverse("viewer:key_images", args=[ct_slice.series.study.study_instance_uid])
    )

    assert response.json() == {"key_image": False}
    assert listed.json() == {"key_images": []}
    assert AuditEvent.objects.filter(event_type=EventType.KEY_IMAGE_UNMARKED).exists()


@pytest.mark.django_db
def test_it_lets_no_referrer_mark_a_key_image(tenant_a, referrer, ct_slice):
    client = tenant_client(tenant_a, referrer)

    response = client.put(reverse("viewer:key_image", args=frame_args(ct_slice)))

    assert response.status_code == 404
    assert not KeyImage.objects.exists()


# --- Frame facts --------------------------------------------------------------------


@pytest.mark.django_db
def test_it_tells_the_spacing_unit_and_windows_of_a_ct_frame(client_a, ct_slice):
    facts = client_a.get(reverse("viewer:frame_info", args=frame_args(ct_slice))).json()

    assert facts["pixel_spacing"] == [1.07421875, 1.07421875]
    assert facts["value_unit"] == "HU"
    assert [(c["center"], c["width"]) for c in facts["voi_choices"]] == [(60, 400)]
    assert facts["cine_fps"] is None


@pytest.mark.django_db
def test_it_gives_the_cine_rate_of_a_multi_frame_image(client_a, ingest):
    instance = ingest(COLOUR_CINE)

    facts = client_a.get(reverse("viewer:frame_info", args=frame_args(instance))).json()

    assert facts["cine_fps"] == pytest.approx(1000 / 33.333)


@pytest.mark.django_db
def test_it_offers_every_window_of_the_file(client_a, ingest):
    instance = ingest(TWO_WINDOWS)

    facts = client_a.get(reverse("viewer:frame_info", args=frame_args(instance))).json()

    assert len(facts["voi_choices"]) == 2
    assert [c["index"] for c in facts["voi_choices"]] == [0, 1]


@pytest.mark.django_db
def test_a_voi_lut_offers_the_window_of_its_input_range(client_a, ingest, tmp_path):
    # 16-bit values 1000..1255 shown only through a 256-entry VOI LUT.
    stored = np.arange(1000, 1256, dtype=np.uint16).reshape(16, 16)
    lut = lut_item((256, 1000, 8), list(range(256)), LUTExplanation="RAMP")
    instance = ingest(write(image(stored, VOILUTSequence=[lut]), tmp_path / "l.dcm"))

    facts = client_a.get(reverse("viewer:frame_info", args=frame_args(instance))).json()

    assert facts["voi_choices"] == [
        {
            "index": 0,
            "kind": "lut",
            "explanation": "RAMP",
            "center": 1128.0,
            "width": 256.0,
        }
    ]


@pytest.mark.django_db
def test_it_gives_a_block_of_frame_facts_in_reading_order(client_a, ingest):
    slices = [ingest(CT_SERIES / f"1-03{n}.dcm") for n in range(4)]
    series = slices[0].series
    url = reverse(
        "viewer:series_facts",
        args=[series.study.study_instance_uid, series.series_instance_uid],
    )

    block = client_a.get(url, {"start": "1", "count": "2"}).json()

    in_order = list(series.instances.order_by("-slice_position"))
    assert block["start"] == 1
    assert [(f["sop_instance_uid"], f["frame"]) for f in block["facts"]] == [
        (instance.sop_instance_uid, 1) for instance in in_order[1:3]
    ]
    assert block["facts"][0]["pixel_spacing"] == [1.07421875, 1.07421875]
    assert block["facts"][0]["value_unit"] == "HU"


@pytest.mark.django_db
def test_it_gives_each_frame_of_a_multi_frame_image_its_facts(client_a, ingest):
    instance = ingest(COLOUR_CINE)
    series = instance.series
    url = reverse(
        "viewer:series_facts",
        args=[series.study.study_instance_uid, series.series_instance_uid],
    )

    block = client_a.get(url, {"start": "0", "count": "64"}).json()

    assert [f["frame"] for f in block["facts"]] == list(range(1, 31))
    assert block["facts"][29]["cine_fps"] == pytest.approx(1000 / 33.333)


@pytest.mark.django_db
def test_another_tenant_gets_no_frame_facts(
    tenant_a, client_a, ct_slice, tenant_b, radiologist_b
):
    series = ct_slice.series
    url = reverse(
        "viewer:series_facts",
        args=[series.study.study_instance_uid, series.series_instance_uid],
    )

    other = tenant_client(tenant_b, radiologist_b)

    assert client_a.get(url).status_code == 200
    assert other.get(url).status_code == 404


# --- Frames: the file's second window, sized to the viewport ------------------------


def frame(client, instance: Instance, **query):  # type: ignore[no-untyped-def]
    return client.get(reverse("viewer:frame", args=frame_args(instance)), query)


@pytest.mark.django_db
def test_it_renders_the_files_second_window_when_asked(client_a, ingest):
    instance = ingest(TWO_WINDOWS)
    ds = pydicom.dcmread(TWO_WINDOWS, stop_before_pixels=True)

    first = frame(client_a, instance)
    second = frame(client_a, instance, voi="1")

    assert first["X-Window-Width"] == str(int(ds.WindowWidth[0]))
    assert second["X-Window-Width"] == str(int(ds.WindowWidth[1]))
    assert first.content != second.content


@pytest.mark.django_db
def test_it_scales_a_frame_down_to_the_viewport_size(client_a, ct_slice):
    response = frame(client_a, ct_slice, size="300")

    # 300 rounds up to the next step, 384: smaller than the 512 stored.
    assert Image.open(io.BytesIO(response.content)).size == (384, 384)


@pytest.mark.django_db
def test_it_never_scales_a_frame_up(client_a, ct_slice):
    response = frame(client_a, ct_slice, size="1000")

    assert Image.open(io.BytesIO(response.content)).size == (512, 512)


@pytest.mark.django_db
def test_it_applies_a_requested_voi_lut_function(client_a, ct_slice):
    linear = frame(client_a, ct_slice, wc="40", ww="400")
    sigmoid = frame(client_a, ct_slice, wc="40", ww="400", fn="sigmoid")

    assert sigmoid.status_code == 200
    assert linear.content != sigmoid.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [{"voi": "-1"}, {"voi": "x"}, {"fn": "GAMMA"}, {"size": "0"}, {"size": "9e9"}],
)
def test_it_refuses_render_options_it_cannot_use(client_a, ct_slice, query):
    assert frame(client_a, ct_slice, **query).status_code == 400


@pytest.mark.django_db
def test_it_refuses_an_roi_on_an_image_whose_pixels_are_incomplete(
    client_a, ingest, tmp_path
):
    ds = pydicom.dcmread(CT_SLICE)
    ds.PixelData = ds.PixelData[:1000]
    ds.save_as(tmp_path / "truncated.dcm")
    instance = ingest(tmp_path / "truncated.dcm")

    response = annotate(client_a, instance, "ellipse", [[10, 10], [40, 40]])

    assert response.status_code == 400
    assert "incomplete" in response.json()["detail"]
