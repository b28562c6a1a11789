import io
import json
import re
from pathlib import Path

import pydicom
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_tenants.utils import tenant_context
from PIL import Image

from accounts.models import Role
from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA, make_user, tenant_client
from pacs.models import Instance, Series, Study

STATIC = Path(__file__).resolve().parents[2] / "static"
MR_SAGITTAL = SHARED_DATA / "dcm_qa_decubitus" / "HFS" / "3_t1_fl2d_sag"
CT_FILES = ["1-030.dcm", "1-031.dcm", "1-032.dcm", "1-033.dcm"]


@pytest.fixture
def ct_study(ingest) -> Study:
    """Four slices of the real CT series, ingested out of order."""
    for name in reversed(CT_FILES):
        ingest(CT_SERIES / name)
    return Study.objects.get()


@pytest.fixture
def ct_series(ct_study) -> Series:
    return ct_study.series.get()


def frame_url(instance: Instance, frame: int = 1) -> str:
    series = instance.series
    return reverse(
        "viewer:frame",
        args=[
            series.study.study_instance_uid,
            series.series_instance_uid,
            instance.sop_instance_uid,
            frame,
        ],
    )


def series_url(series: Series) -> str:
    return reverse(
        "viewer:series",
        args=[series.study.study_instance_uid, series.series_instance_uid],
    )


def listed_images(data: dict) -> list[dict]:
    """The series list as the page expands it (static/js/viewer/config.js)."""
    images = []
    for listed in data["instances"]:
        instance = {**data["common"], **listed}
        url = data["frame_url"].replace(
            "{sop_instance_uid}", instance["sop_instance_uid"]
        )
        for frame in range(1, max(instance["number_of_frames"], 1) + 1):
            url_of_frame = url.replace("{frame}", str(frame))
            images.append({**instance, "frame": frame, "url": url_of_frame})
    return images


def events(event_type: EventType) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type))


@pytest.mark.django_db
def test_it_shows_the_viewer_page_to_a_radiologist(client_a, ct_study):
    response = client_a.get(reverse("viewer:study", args=[ct_study.study_instance_uid]))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="viewer-image"' in html
    assert 'id="overlay-wl"' in html and 'id="overlay-position"' in html
    assert html.count('class="series-thumb') == 1
    assert 'data-modality="CT"' in html and ">Lung</button>" in html
    assert ct_study.patient.patient_id in html
    assert 'type="module"' in html and "js/viewer.js" in html


def imported_modules(module: Path, seen: set[Path]) -> set[Path]:
    """Every module ``module`` imports, directly or not (static imports)."""
    for name in re.findall(
        r'^\s*(?:import|}) .*?from "(\.[^"]+)"', module.read_text(), re.M
    ):
        target = (module.parent / name).resolve()
        if target not in seen:
            seen.add(target)
            imported_modules(target, seen)
    return seen


@pytest.mark.django_db
def test_it_names_every_module_of_the_page_up_front(client_a, ct_study):
    response = client_a.get(reverse("viewer:study", args=[ct_study.study_instance_uid]))

    preloaded = re.findall(
        r'<link rel="modulepreload" href="/static/([^"]+)">', response.content.decode()
    )
    graph = imported_modules(STATIC / "js" / "viewer.js", set())
    assert len(graph) >= 10
    assert sorted(preloaded) == sorted(str(p.relative_to(STATIC)) for p in graph)


@pytest.mark.django_db
def test_the_page_names_its_first_frame_and_holds_the_thumbnails_back(
    client_a, ct_series
):
    study_uid = ct_series.study.study_instance_uid

    html = client_a.get(reverse("viewer:study", args=[study_uid])).content.decode()

    first = ct_series.instances.order_by("-slice_position").first()
    image = re.search(r'<img class="vp-image" id="viewer-image"[^>]*>', html)[0]
    assert f'src="{frame_url(first)}"' in image
    assert 'fetchpriority="high"' in image
    thumbnail = re.search(r"<img [^>]*thumbnail.png[^>]*>", html)[0]
    assert "data-src=" in thumbnail and " src=" not in thumbnail


@pytest.mark.django_db
def test_a_second_window_and_a_key_image_name_their_own_first_frame(
    client_a, ct_series
):
    page = reverse("viewer:study", args=[ct_series.study.study_instance_uid])
    series = f"?series={ct_series.series_instance_uid}"

    alone = client_a.get(page + series).content.decode()
    at_key_image = client_a.get(page + series + "&sop=1.2.3&frame=1").content.decode()

    assert 'data-layout="1x1"' in alone
    assert "/frames/1.png" in re.search(r'id="viewer-image"[^>]*>', alone)[0]
    assert "src=" not in re.search(r'id="viewer-image"[^>]*>', at_key_image)[0]


@pytest.mark.django_db
def test_it_puts_no_inline_script_on_the_page(client_a, ct_study):
    response = client_a.get(reverse("viewer:study", args=[ct_study.study_instance_uid]))

    scripts = re.findall(
        r"<script([^>]*)>(.*?)</script>", response.content.decode(), re.S
    )
    for attributes, body in scripts:
        if 'type="application/json"' in attributes:
            json.loads(body)
        else:
            assert "src=" in attributes and not body.strip()


@pytest.mark.django_db
def test_it_lists_an_axial_series_head_first_with_display_defaults(client_a, ct_series):
    response = client_a.get(series_url(ct_series))

    data = response.json()
    images = listed_images(data)
    positions = [image["slice_position"] for image in images]
    assert response.status_code == 200
    assert len(positions) == len(CT_FILES)
    assert positions == sorted(positions, reverse=True)
    assert data["default_window"] == {"center": 60.0, "width": 400.0}
    first = ct_series.instances.get(sop_instance_uid=images[0]["sop_instance_uid"])
    assert images[0]["url"] == frame_url(first)
    assert images[0]["rows"] == 512 and images[0]["renderable"] is True


@pytest.mark.django_db
def test_it_sends_what_every_instance_shares_once(client_a, ct_series):
    response = client_a.get(series_url(ct_series))

    data = response.json()
    # 520 bytes a slice with a URL per frame; the UID and position remain.
    per_slice = json.dumps(data["instances"], separators=(",", ":"))
    assert len(per_slice) / len(CT_FILES) < 150
    assert data["common"] == {
        "number_of_frames": 1,
        "window_center": 60.0,
        "window_width": 400.0,
        "rows": 512,
        "columns": 512,
        "renderable": True,
    }
    assert set(data["instances"][0]) == {
        "sop_instance_uid",
        "instance_number",
        "slice_position",
    }


@pytest.mark.django_db
def test_it_lists_a_sagittal_series_from_the_right_to_the_left(client_a, ingest):
    files = sorted(MR_SAGITTAL.glob("*.dcm"))[:6]
    instances = [ingest(path) for path in files]

    data = client_a.get(series_url(instances[0].series)).json()

    # +x is the patient's left (PS3.3 C.7.6.2.1.1): x must grow down the list.
    x = [
        pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[0]
        for p in files
    ]
    by_uid = dict(zip((i.sop_instance_uid for i in instances), x, strict=True))
    listed = [by_uid[image["sop_instance_uid"]] for image in listed_images(data)]
    assert listed == sorted(x)


@pytest.mark.django_db
def test_it_orders_by_instance_number_when_there_is_no_position(client_a, ingest):
    path = SHARED_DATA / "pydicom" / "examples_ybr_color.dcm"
    instance = ingest(path)

    data = client_a.get(series_url(instance.series)).json()

    assert [image["frame"] for image in listed_images(data)] == list(range(1, 31))
    assert data["default_window"] is None


@pytest.mark.django_db
def test_it_serves_a_frame_as_png_with_its_window(client_a, ct_series):
    instance = ct_series.instances.first()

    response = client_a.get(frame_url(instance))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Window-Center"] == "60" and response["X-Window-Width"] == "400"
    assert Image.open(io.BytesIO(response.content)).size == (512, 512)


@pytest.mark.django_db
def test_it_applies_the_requested_window(client_a, ct_series):
    instance = ct_series.instances.first()

    response = client_a.get(frame_url(instance), {"wc": "-600", "ww": "1500"})

    assert response.status_code == 200
    assert response["X-Window-Center"] == "-600"
    assert response["X-Window-Width"] == "1500"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        {"wc": "abc", "ww": "400"},
        {"wc": "40"},
        {"ww": "400"},
        {"wc": "40", "ww": "0"},
        {"wc": "nan", "ww": "400"},
        {"wc": "40", "ww": "inf"},
        {"wc": "40", "ww": "1e400"},
        {"wc": "", "ww": ""},
    ],
)
def test_it_refuses_a_window_that_is_not_a_pair_of_numbers(client_a, ct_series, query):
    response = client_a.get(frame_url(ct_series.instances.first()), query)

    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("frame", [0, 2])
def test_it_answers_404_for_a_frame_that_does_not_exist(client_a, ct_series, frame):
    response = client_a.get(frame_url(ct_series.instances.first(), frame))

    assert response.status_code == 404


@pytest.mark.django_db
def test_it_serves_a_small_thumbnail(client_a, ct_series):
    url = reverse(
        "viewer:thumbnail",
        args=[ct_series.study.study_instance_uid, ct_series.series_instance_uid],
    )

    response = client_a.get(url)

    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert max(Image.open(io.BytesIO(response.content)).size) <= 128


@pytest.mark.django_db
def test_a_thumbnail_reads_one_instance_without_its_stored_header(client_a, ct_series):
    study_uid = ct_series.study.study_instance_uid
    url = reverse("viewer:thumbnail", args=[study_uid, ct_series.series_instance_uid])
    middle = ct_series.instances.order_by("-slice_position")[len(CT_FILES) // 2]

    with CaptureQueriesContext(connection) as queries:
        response = client_a.get(url)

    assert response.status_code == 200
    instance_reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT") and 'FROM "pacs_instance"' in q["sql"]
    ]
    assert not any('"pacs_instance"."metadata"' in sql for sql in instance_reads)
    assert any("LIMIT 1 OFFSET 2" in sql for sql in instance_reads)
    assert response.content == client_a.get(frame_url(middle), {"size": "128"}).content


@pytest.mark.django_db
def test_it_serves_an_error_image_for_truncated_pixel_data(client_a, ingest, tmp_path):
    ds = pydicom.dcmread(CT_SERIES / "1-060.dcm")
    ds.PixelData = ds.PixelData[:1000]
    truncated = tmp_path / "truncated.dcm"
    ds.save_as(truncated)
    instance = ingest(truncated)

    response = client_a.get(frame_url(instance))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Render-Error"] == "1"
    assert Image.open(io.BytesIO(response.content)).format == "PNG"


@pytest.mark.django_db
def test_it_forbids_every_cache_to_keep_viewer_responses(client_a, ct_series):
    instance = ct_series.instances.first()
    study_uid = ct_series.study.study_instance_uid

    for url in (
        reverse("viewer:study", args=[study_uid]),
        series_url(ct_series),
        frame_url(instance),
        reverse("viewer:thumbnail", args=[study_uid, ct_series.series_instance_uid]),
    ):
        cache_control = client_a.get(url)["Cache-Control"]
        assert "no-store" in cache_control and "private" in cache_control, url


@pytest.mark.django_db
def test_it_hides_every_viewer_url_from_a_referrer(tenant_a, referrer, ct_series):
    client = tenant_client(tenant_a, referrer)
    instance = ct_series.instances.first()
    study_uid = ct_series.study.study_instance_uid

    for url in (
        reverse("viewer:study", args=[study_uid]),
        series_url(ct_series),
        frame_url(instance),
        reverse("viewer:thumbnail", args=[study_uid, ct_series.series_instance_uid]),
    ):
        assert client.get(url).status_code == 404, url


@pytest.mark.django_db
def test_it_hides_a_study_from_a_radiologist_of_another_tenant(
    tenant_a, ct_series, tenant_b, radiologist_b
):
    with tenant_context(tenant_a):
        instance = ct_series.instances.first()
        study_uid = ct_series.study.study_instance_uid
        urls = (
            reverse("viewer:study", args=[study_uid]),
            series_url(ct_series),
            frame_url(instance),
        )
    client = tenant_client(tenant_b, radiologist_b)

    for url in urls:
        assert client.get(url).status_code == 404, url


@pytest.mark.django_db
def test_it_sends_an_anonymous_visitor_to_sign_in(tenant_a, ct_series):
    client = tenant_client(tenant_a)

    response = client.get(frame_url(ct_series.instances.first()))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_it_records_study_opened_on_each_page_load(client_a, radiologist, ct_study):
    url = reverse("viewer:study", args=[ct_study.study_instance_uid])

    client_a.get(url)
    client_a.get(url)

    opened = events(EventType.STUDY_OPENED)
    assert len(opened) == 2
    assert opened[0].actor_username == radiologist.username
    assert opened[0].study_instance_uid == ct_study.study_instance_uid
    assert opened[0].patient_id == ct_study.patient.patient_id


@pytest.mark.django_db
def test_it_records_frames_viewed_once_per_series_while_scrolling(client_a, ct_series):
    for instance in ct_series.instances.all():
        client_a.get(frame_url(instance))
        client_a.get(frame_url(instance), {"wc": "40", "ww": "80"})

    viewed = events(EventType.FRAMES_VIEWED)
    assert len(viewed) == 1
    assert viewed[0].object_id == ct_series.series_instance_uid


@pytest.mark.django_db
def test_it_records_frames_viewed_for_each_series_and_each_user(
    tenant_a, client_a, ct_series, ingest
):
    other = ingest(SHARED_DATA / "pydicom" / "CT_small.dcm")
    colleague = make_user(tenant_a, "rad.a2", Role.RADIOLOGIST)
    first = ct_series.instances.first()

    client_a.get(frame_url(first))
    client_a.get(frame_url(other))
    tenant_client(tenant_a, colleague).get(frame_url(first))

    assert len(events(EventType.FRAMES_VIEWED)) == 3


@pytest.mark.django_db
def test_it_writes_no_frames_viewed_for_a_refused_request(
    tenant_a, referrer, ct_series
):
    tenant_client(tenant_a, referrer).get(frame_url(ct_series.instances.first()))

    assert events(EventType.FRAMES_VIEWED) == []
