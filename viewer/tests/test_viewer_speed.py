"""Lossy W/L previews, tiles of large images, the render cache and its warm-up."""

import io

import numpy as np
import pytest
from django.core.cache import cache
from django.urls import reverse
from django_tenants.utils import tenant_context
from PIL import Image

from conftest import CT_SERIES, SHARED_DATA, tenant_client
from pacs.models import Instance, Series
from viewer.cache import cached_render, instance_render_key
from viewer.frame_query import FrameQuery
from viewer.tests.datasets import image, write
from viewer.tests.test_views import frame_url
from viewer.tiles import PREVIEW_MAX_SIZE, TILE_SIZE, pyramid
from viewer.warm import warm_series_frames

CR_FILE = SHARED_DATA / "pydicom-data" / "RG3_J2KI.dcm"
CT_FILES = ["1-040.dcm", "1-041.dcm", "1-042.dcm"]


@pytest.fixture
def ct_series(ingest) -> Series:
    for name in CT_FILES:
        ingest(CT_SERIES / name)
    return Series.objects.get()


@pytest.fixture
def ct_instance(ct_series) -> Instance:
    return ct_series.instances.order_by("instance_number").first()


@pytest.fixture
def radiograph(ingest, tmp_path) -> Instance:
    """A generated 4,000 x 5,000 DX image with a different value at every pixel row and column."""
    rows, columns = 5000, 4000
    y, x = np.mgrid[0:rows, 0:columns]
    stored = ((x * 7 + y * 3) % 4096).astype(np.uint16)
    ds = image(
        stored, bits_stored=12, Modality="DX", WindowCenter=2048, WindowWidth=4096
    )
    return ingest(write(ds, tmp_path / "dx.dcm"))


def tiles_url(instance: Instance, frame: int = 1) -> str:
    series = instance.series
    return reverse(
        "viewer:frame_tiles",
        args=[
            series.study.study_instance_uid,
            series.series_instance_uid,
            instance.sop_instance_uid,
            frame,
        ],
    )


def tile_url(instance: Instance, level: int, x: int, y: int) -> str:
    series = instance.series
    return reverse(
        "viewer:frame_tile",
        args=[
            series.study.study_instance_uid,
            series.series_instance_uid,
            instance.sop_instance_uid,
            1,
            level,
            x,
            y,
        ],
    )


def warm_url(series: Series) -> str:
    return reverse(
        "viewer:warm",
        args=[series.study.study_instance_uid, series.series_instance_uid],
    )


def picture(response) -> Image.Image:  # type: ignore[no-untyped-def]
    return Image.open(io.BytesIO(response.content))


# --- Lossy previews -----------------------------------------------------------


@pytest.mark.django_db
def test_a_preview_is_a_small_jpeg_marked_as_lossy(client_a, ct_instance):
    response = client_a.get(
        frame_url(ct_instance), {"wc": "40", "ww": "400", "preview": "1"}
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Lossy-Preview"] == "1"
    assert response["X-Window-Center"] == "40" and response["X-Window-Width"] == "400"
    assert picture(response).format == "JPEG"
    assert max(picture(response).size) <= PREVIEW_MAX_SIZE


@pytest.mark.django_db
def test_a_preview_looks_like_the_lossless_frame_at_its_size(client_a, ct_instance):
    window = {"wc": "40", "ww": "400"}
    lossless = picture(client_a.get(frame_url(ct_instance), window)).convert("L")
    preview = picture(client_a.get(frame_url(ct_instance), {**window, "preview": "1"}))

    expected = np.asarray(lossless.reduce(512 // preview.size[0]), dtype=np.int16)
    difference = np.abs(np.asarray(preview.convert("L"), dtype=np.int16) - expected)
    assert preview.size == (256, 256)
    assert difference.mean() < 4


@pytest.mark.django_db
def test_the_lossless_frame_carries_no_lossy_mark(client_a, ct_instance):
    response = client_a.get(frame_url(ct_instance), {"wc": "40", "ww": "400"})

    assert response["Content-Type"] == "image/png"
    assert "X-Lossy-Preview" not in response


# --- The render cache ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_frame_from_the_render_cache_is_the_same_bytes(client_a, ct_instance):
    first = client_a.get(frame_url(ct_instance)).content
    assert cache.get(instance_render_key(ct_instance, 0)) is not None

    again = client_a.get(frame_url(ct_instance)).content

    assert again == first


@pytest.mark.django_db
def test_warming_a_series_puts_every_frame_in_the_render_cache(client_a, ct_series):
    rendered = warm_series_frames(ct_series.pk)

    assert rendered == len(CT_FILES)
    for instance in ct_series.instances.all():
        cached = cache.get(instance_render_key(instance, 0))
        assert cached is not None
        assert client_a.get(frame_url(instance)).content == cached.png


@pytest.mark.django_db
def test_warming_stops_at_its_bound(ct_series):
    assert warm_series_frames(ct_series.pk, limit=2) == 2


@pytest.fixture
def eager_tasks():  # type: ignore[no-untyped-def]
    """Celery runs queued tasks at once, in this process (and this schema)."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.mark.django_db
def test_asking_for_a_warm_up_renders_the_series_once(client_a, ct_series, eager_tasks):
    first = client_a.post(warm_url(ct_series))
    second = client_a.post(warm_url(ct_series))

    assert first.status_code == 202 and first.json() == {"queued": True}
    assert second.status_code == 202 and second.json() == {"queued": False}
    for instance in ct_series.instances.all():
        assert cache.get(instance_render_key(instance, 0)) is not None


@pytest.mark.django_db
def test_a_warm_up_is_asked_for_with_post_only(client_a, ct_series):
    assert client_a.get(warm_url(ct_series)).status_code == 405


# --- Tiles ------------------------------------------------------------------------


def test_the_pyramid_halves_down_to_one_tile():
    levels = pyramid(4000, 5000)

    sizes = [(level.width, level.height, level.columns, level.rows) for level in levels]
    assert sizes == [
        (4000, 5000, 16, 20),
        (2000, 2500, 8, 10),
        (1000, 1250, 4, 5),
        (500, 625, 2, 3),
        (250, 313, 1, 2),
        (125, 157, 1, 1),
    ]


@pytest.mark.django_db
def test_it_describes_the_tiles_of_a_large_image(client_a, radiograph):
    geometry = client_a.get(tiles_url(radiograph)).json()

    assert geometry["width"] == 4000 and geometry["height"] == 5000
    assert geometry["large"] is True
    assert geometry["tile_size"] == TILE_SIZE
    assert len(geometry["levels"]) == 6
    assert geometry["tile_url"].endswith("/tiles/{level}/{x}_{y}.png")


@pytest.mark.django_db
def test_a_full_resolution_tile_holds_the_pixels_of_the_whole_render(
    client_a, radiograph
):
    whole = np.asarray(picture(client_a.get(frame_url(radiograph))))

    tile = client_a.get(tile_url(radiograph, 0, 3, 5))

    assert tile["Content-Type"] == "image/png"
    assert np.array_equal(np.asarray(picture(tile)), whole[1280:1536, 768:1024])


@pytest.mark.django_db
def test_an_edge_tile_is_cut_to_the_image(client_a, radiograph):
    whole = np.asarray(picture(client_a.get(frame_url(radiograph))))

    tile = np.asarray(picture(client_a.get(tile_url(radiograph, 0, 15, 19))))

    assert tile.shape == (5000 - 19 * 256, 4000 - 15 * 256)
    assert np.array_equal(tile, whole[19 * 256 :, 15 * 256 :])


@pytest.mark.django_db
def test_a_zoomed_out_tile_is_the_box_average_of_the_render(client_a, radiograph):
    whole = picture(client_a.get(frame_url(radiograph)))

    tile = picture(client_a.get(tile_url(radiograph, 2, 1, 2)))

    expected = np.asarray(whole.reduce(4))[512:768, 256:512]
    assert np.array_equal(np.asarray(tile), expected)


@pytest.mark.django_db
def test_a_tile_is_windowed_like_the_frame(client_a, radiograph):
    window = {"wc": "1000", "ww": "500"}
    whole = np.asarray(picture(client_a.get(frame_url(radiograph), window)))

    tile = client_a.get(tile_url(radiograph, 0, 2, 2), window)

    assert tile["X-Window-Center"] == "1000"
    assert np.array_equal(np.asarray(picture(tile)), whole[512:768, 512:768])


@pytest.mark.django_db
def test_tiles_of_a_real_radiograph_match_its_render(client_a, ingest):
    cr = ingest(CR_FILE)
    whole = picture(client_a.get(frame_url(cr)))

    geometry = client_a.get(tiles_url(cr)).json()
    tile = picture(client_a.get(tile_url(cr, 1, 3, 2)))

    assert (geometry["width"], geometry["height"]) == (1760, 1760)
    assert np.array_equal(
        np.asarray(tile), np.asarray(whole.reduce(2))[512:768, 768:880]
    )


@pytest.mark.django_db
@pytest.mark.parametrize("level, x, y", [(6, 0, 0), (0, 16, 0), (0, 0, 20), (5, 1, 0)])
def test_it_answers_404_for_a_tile_outside_the_image(client_a, radiograph, level, x, y):
    assert client_a.get(tile_url(radiograph, level, x, y)).status_code == 404


@pytest.mark.django_db
def test_it_refuses_a_tile_with_half_a_window(client_a, ct_instance):
    assert client_a.get(tile_url(ct_instance, 0, 0, 0), {"wc": "40"}).status_code == 400


# --- Patient data stays private -------------------------------------------------------


def private_urls(instance: Instance) -> list[tuple[str, str]]:
    """Every URL of this module's views; the warm-up last, as it queues a task."""
    return [
        ("get", f"{frame_url(instance)}?preview=1"),
        ("get", tiles_url(instance)),
        ("get", tile_url(instance, 0, 0, 0)),
        ("post", warm_url(instance.series)),
    ]


@pytest.mark.django_db
def test_no_cache_may_keep_previews_tiles_or_warm_ups(
    client_a, ct_instance, eager_tasks
):
    for method, url in private_urls(ct_instance):
        cache_control = getattr(client_a, method)(url)["Cache-Control"]
        assert "no-store" in cache_control, url


@pytest.mark.django_db
def test_a_referrer_without_access_gets_404(tenant_a, referrer, ct_instance):
    client = tenant_client(tenant_a, referrer)

    for method, url in private_urls(ct_instance):
        assert getattr(client, method)(url).status_code == 404, url


@pytest.mark.django_db
def test_a_radiologist_of_another_tenant_gets_404(
    tenant_a, ct_instance, tenant_b, radiologist_b
):
    with tenant_context(tenant_a):
        urls = private_urls(ct_instance)
    client = tenant_client(tenant_b, radiologist_b)

    for method, url in urls:
        assert getattr(client, method)(url).status_code == 404, url


@pytest.mark.django_db
def test_viewing_tiles_and_previews_is_audited(client_a, radiograph):
    from audit.models import AuditEvent, EventType

    client_a.get(tile_url(radiograph, 5, 0, 0))

    viewed = AuditEvent.objects.filter(event_type=EventType.FRAMES_VIEWED)
    assert [event.object_id for event in viewed] == [
        radiograph.series.series_instance_uid
    ]


@pytest.mark.django_db
def test_cached_render_and_the_endpoint_share_entries(client_a, ct_instance):
    rendered = cached_render(ct_instance, 0, FrameQuery(window=(40.0, 400.0)))

    response = client_a.get(frame_url(ct_instance), {"wc": "40", "ww": "400"})

    assert response.content == rendered.png
