"""Rendered pixels checked against values computed independently.

The expectations come from pydicom's own LUT functions and from the
standard's formulas written out by hand with numpy, on real files.
"""

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.cache import cache
from django.core.files.storage import default_storage
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_color_lut, apply_modality_lut

from conftest import CT_SERIES, SHARED_DATA
from pacs.models import Instance
from viewer.cache import cached_render, instance_render_key
from viewer.frame_query import FrameQuery
from viewer.rendering import ERROR_BACKGROUND, render_frame, render_png
from viewer.tests.expected import (
    assert_close,
    png_pixels,
    window_by_hand,
    window_by_pydicom,
    ybr_full_to_rgb_by_hand,
)

PYDICOM = SHARED_DATA / "pydicom"
CORNERSTONE = SHARED_DATA / "cornerstone3D"
CT_UNCOMPRESSED = (
    CORNERSTONE
    / "CTImage.dcm_LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1.dcm"
)
CT_LOSSLESS = [
    "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm",
    "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm",
    "CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm",
    "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
]
MR_ENCODINGS = [
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
]


def modality_values(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(path)
    return ds, apply_modality_lut(ds.pixel_array, ds).astype(np.float64)


def is_error_image(data: bytes) -> bool:
    pixels = png_pixels(data)
    background = np.all(pixels == ERROR_BACKGROUND, axis=-1).mean()
    text = (pixels.max(axis=-1) > 120).mean()
    return pixels.ndim == 3 and background > 0.8 and text > 0.001


@pytest.mark.django_db
def test_it_windows_a_ct_slice_with_the_files_first_window(ingest):
    path = CT_SERIES / "1-030.dcm"
    instance = ingest(path)
    ds, values = modality_values(path)

    rendered = render_frame(instance)

    assert rendered.window == (60.0, 400.0)
    pixels = png_pixels(rendered.png)
    assert pixels.dtype == np.uint8 and pixels.ndim == 2
    assert_close(pixels, window_by_hand(values, 60, 400))
    assert_close(pixels, window_by_pydicom(ds, values))


@pytest.mark.django_db
def test_it_applies_the_rescale_to_signed_pixels_before_a_requested_window(ingest):
    path = PYDICOM / "CT_small.dcm"
    instance = ingest(path)
    ds = pydicom.dcmread(path)
    assert ds.PixelRepresentation == 1 and ds.RescaleIntercept == -1024

    pixels = png_pixels(render_png(instance, window=(-600, 1500)))

    hounsfield = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) - 1024
    assert_close(pixels, window_by_hand(hounsfield, -600, 1500))
    ds.WindowCenter, ds.WindowWidth = -600, 1500
    assert_close(pixels, window_by_pydicom(ds, hounsfield))


@pytest.mark.django_db
def test_it_prefers_a_requested_window_to_the_files(ingest):
    path = CT_SERIES / "1-040.dcm"
    instance = ingest(path)
    _, values = modality_values(path)

    rendered = render_frame(instance, window=(400.0, 1800.0))

    assert rendered.window == (400.0, 1800.0)
    assert_close(png_pixels(rendered.png), window_by_hand(values, 400, 1800))


@pytest.mark.django_db
@pytest.mark.parametrize("name", CT_LOSSLESS)
def test_it_decodes_lossless_compressed_ct_to_the_same_image_as_uncompressed(
    ingest, name
):
    reference = png_pixels(render_png(ingest(CT_UNCOMPRESSED)))
    _, values = modality_values(CT_UNCOMPRESSED)

    compressed = png_pixels(render_png(ingest(CORNERSTONE / name)))

    assert np.array_equal(compressed, reference)
    assert_close(reference, window_by_hand(values, 40, 400))


@pytest.mark.django_db
def test_it_renders_every_encoding_of_the_mr_slice_identically(ingest):
    path = PYDICOM / "MR_small.dcm"
    ds, values = modality_values(path)
    instance = ingest(path)
    reference = png_pixels(render_png(instance))
    assert_close(reference, window_by_pydicom(ds, values))

    for name in MR_ENCODINGS:
        forget(instance)
        instance = ingest(PYDICOM / name)
        assert instance.transfer_syntax_uid != ds.file_meta.TransferSyntaxUID
        assert np.array_equal(png_pixels(render_png(instance)), reference), name


def forget(instance: Instance) -> None:
    """Drop the rows and the stored file: the encodings share one SOP UID."""
    default_storage.delete(instance.storage_path)
    instance.series.study.delete()


@pytest.mark.django_db
def test_it_shows_monochrome1_with_low_values_white(ingest):
    path = SHARED_DATA / "highdicom" / "dx_image.dcm"
    instance = ingest(path)
    ds, values = modality_values(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"

    pixels = png_pixels(render_png(instance))

    assert_close(pixels, 255 - window_by_pydicom(ds, values))
    darkest_stored = np.unravel_index(np.argmin(values), values.shape)
    assert pixels[darkest_stored] == pixels.max() > pixels.min()


@pytest.mark.django_db
def test_it_maps_palette_color_through_the_lookup_tables(ingest):
    path = PYDICOM / "examples_palette.dcm"
    instance = ingest(path)
    ds = pydicom.dcmread(path)

    pixels = png_pixels(render_png(instance))

    expected = apply_color_lut(ds.pixel_array, ds) / 65535 * 255
    assert pixels.shape == (350, 800, 3)
    assert_close(pixels, expected)


@pytest.mark.django_db
def test_it_passes_rgb_through_unchanged(ingest):
    path = PYDICOM / "examples_rgb_color.dcm"
    instance = ingest(path)

    rendered = render_frame(instance)

    assert rendered.window is None
    assert np.array_equal(png_pixels(rendered.png), pydicom.dcmread(path).pixel_array)


@pytest.mark.django_db
def test_it_converts_uncompressed_ybr_full_422_to_rgb(ingest):
    path = PYDICOM / "SC_ybr_full_422_uncompressed.dcm"
    instance = ingest(path)
    ds = pydicom.dcmread(path)
    raw = pydicom.pixels.pixel_array(ds, raw=True)

    pixels = png_pixels(render_png(instance))

    expected = ybr_full_to_rgb_by_hand(raw)
    assert_close(pixels, expected)
    assert_close(pixels, ds.pixel_array)


@pytest.mark.django_db
def test_it_renders_the_requested_frame_of_a_multiframe_ybr_jpeg(ingest):
    path = PYDICOM / "examples_ybr_color.dcm"
    instance = ingest(path)
    assert instance.number_of_frames == 30

    first = png_pixels(render_png(instance, 0))
    last = png_pixels(render_png(instance, 29))

    expected_last = pydicom.pixels.pixel_array(str(path), index=29)
    assert last.shape == (240, 320, 3)
    assert_close(last, expected_last, atol=2)
    assert not np.array_equal(first, last)


@pytest.mark.django_db
def test_it_draws_an_error_image_for_truncated_pixel_data(ingest, tmp_path):
    ds = pydicom.dcmread(CT_SERIES / "1-041.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    truncated = tmp_path / "truncated.dcm"
    ds.save_as(truncated)
    instance = ingest(truncated)
    assert instance.pixel_status == "truncated"

    rendered = render_frame(instance)

    assert rendered.error and rendered.window is None
    assert is_error_image(rendered.png)


@pytest.mark.django_db
def test_it_draws_an_error_image_when_the_codec_fails(ingest, tmp_path):
    ds = pydicom.dcmread(CORNERSTONE / CT_LOSSLESS[1])
    ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG-LS codestream" * 20])
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    instance = ingest(broken)
    assert instance.pixel_status == "ok"  # only decoding can tell

    rendered = render_frame(instance)

    assert rendered.error
    assert is_error_image(rendered.png)


@pytest.mark.django_db
def test_it_draws_an_error_image_for_a_frame_beyond_the_last(ingest):
    instance = ingest(PYDICOM / "CT_small.dcm")

    assert is_error_image(render_png(instance, frame_index=1))


@pytest.mark.django_db
def test_it_shrinks_thumbnails_keeping_the_aspect_ratio(ingest):
    instance = ingest(PYDICOM / "examples_palette.dcm")

    image = Image.open(io.BytesIO(render_png(instance, max_size=128)))

    assert image.size == (128, 56)


@pytest.mark.django_db
def test_it_keeps_rendered_frames_in_the_cache(ingest):
    instance = ingest(CT_SERIES / "1-050.dcm")
    key = instance_render_key(instance, 0, FrameQuery(window=(40.0, 80.0)))
    assert cache.get(key) is None

    first = cached_render(instance, 0, FrameQuery(window=(40.0, 80.0)))

    assert cache.get(key) == first
    assert cached_render(instance, 0, FrameQuery(window=(40.0, 80.0))) == first


@pytest.mark.django_db
def test_it_does_not_cache_error_images(ingest, tmp_path):
    ds = pydicom.dcmread(CT_SERIES / "1-042.dcm")
    ds.PixelData = ds.PixelData[:100]
    truncated = tmp_path / "truncated.dcm"
    ds.save_as(truncated)
    instance = ingest(truncated)

    assert cached_render(instance).error
    assert cache.get(instance_render_key(instance, 0)) is None


@pytest.mark.django_db
def test_it_spans_the_full_range_of_a_frame_without_a_window(ingest):
    path = SHARED_DATA / "pydicom-data" / "emri_small.dcm"
    instance = ingest(path)
    frame = pydicom.pixels.pixel_array(str(path), index=3).astype(np.float64)

    rendered = render_frame(instance, 3)

    pixels = png_pixels(rendered.png)
    assert rendered.window is not None
    assert pixels[np.unravel_index(frame.argmin(), frame.shape)] == 0
    assert pixels[np.unravel_index(frame.argmax(), frame.shape)] == 255
    assert_close(pixels, window_by_hand(frame, *rendered.window))


@pytest.mark.django_db
def test_it_thresholds_at_the_center_for_a_window_one_wide(ingest):
    path = CT_SERIES / "1-030.dcm"
    instance = ingest(path)
    _, values = modality_values(path)

    pixels = png_pixels(render_png(instance, window=(0.0, 1.0)))

    # C.11.2.1.2.1: at width 1, values above center - 0.5 are white.
    assert np.array_equal(pixels == 255, values > -0.5)
    assert set(np.unique(pixels)) <= {0, 255}
