"""The display pipeline (PS3.3 C.11, C.7.6.3) on generated edge cases and real files.

Every expectation is computed apart from the renderer: the standard's
formulas written out by hand, or pydicom's own LUT functions
(viewer/tests/expected.py). The edge cases are built by
viewer/tests/datasets.py and read back from bytes like a stored file.
"""

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from conftest import SHARED_DATA
from viewer.rendering import (
    VoiChoice,
    cine_frame_rate,
    frame_to_display,
    load_header,
    render_frame,
    voi_choices,
)
from viewer.tests.datasets import identified_dataset, image, lut_item, reread
from viewer.tests.expected import (
    assert_close,
    linear_exact_by_hand,
    png_pixels,
    sigmoid_by_hand,
    window_by_hand,
    window_by_pydicom,
    ybr_full_to_rgb_by_hand,
)

PYDICOM = SHARED_DATA / "pydicom"
RAMP = np.arange(-1200, 1200, dtype=np.int16).reshape(48, 50)
RNG = np.random.default_rng(4)
SEVERAL_WINDOWS = {
    "WindowCenter": [40, -600, 300],
    "WindowWidth": [400, 1500, 1],
    "WindowCenterWidthExplanation": ["SOFT TISSUE", "LUNG", "THRESHOLD"],
}
LUT_INPUT = np.array([[-1, 0, 1, 2], [3, 4, 5, 9]], dtype=np.int16)


def voi_luts() -> list[Dataset]:
    """An 8-bit LUT mapping from 0 and a 12-bit LUT mapping from 2."""
    return [
        lut_item((5, 0, 8), [0, 60, 120, 180, 255], LUTExplanation="EIGHT"),
        lut_item((4, 2, 12), [0, 1000, 3000, 4095], LUTExplanation="TWELVE"),
    ]


# Modality LUT (PS3.3 C.11.1)


def test_it_rescales_stored_values_before_the_window():
    stored = np.arange(0, 2000, dtype=np.uint16).reshape(40, 50)
    ds = image(
        stored,
        RescaleSlope=2.5,
        RescaleIntercept=-1000,
        WindowCenter=500,
        WindowWidth=3000,
    )

    shown, window = frame_to_display(ds, 0)

    assert window == (500.0, 3000.0)
    assert_close(shown, window_by_hand(stored * 2.5 - 1000, 500, 3000))
    pydicom_values = apply_modality_lut(ds.pixel_array, ds)
    assert_close(shown, window_by_pydicom(ds, pydicom_values))


def test_it_maps_stored_values_through_the_modality_lut_sequence():
    stored = np.array([[0, 9, 10, 11], [12, 13, 14, 20]], dtype=np.uint16)
    lut = lut_item((5, 10, 16), [900, 100, 700, 300, 500])
    ds = image(stored, ModalityLUTSequence=[lut])

    shown, _ = frame_to_display(ds, 0, (500.0, 801.0))

    # Below the first value mapped: the first entry; past the end: the last.
    by_hand = np.array([[900, 900, 900, 100], [700, 300, 500, 500]])
    assert np.array_equal(apply_modality_lut(ds.pixel_array, ds), by_hand)
    assert_close(shown, window_by_hand(by_hand, 500, 801))


def test_it_reads_modality_lut_data_given_as_ow_bytes():
    stored = np.array([[0, 1], [2, 5]], dtype=np.uint16)
    lut = Dataset()
    lut.add_new("LUTDescriptor", "US", [3, 0, 16])
    lut.add_new("LUTData", "OW", np.array([10, 2000, 4000], "<u2").tobytes())
    ds = image(stored, ModalityLUTSequence=[lut])

    shown, _ = frame_to_display(ds, 0, (2000.0, 4001.0))

    by_hand = np.array([[10, 2000], [4000, 4000]])
    assert np.array_equal(apply_modality_lut(ds.pixel_array, ds), by_hand)
    assert_close(shown, window_by_hand(by_hand, 2000, 4001))


def test_it_reads_a_negative_first_value_mapped_of_a_modality_lut():
    stored = np.array([[-7, -5, -4], [-3, -1, 3]], dtype=np.int16)
    # -5 written as some modalities do: with VR US, as its unsigned 16 bits.
    lut = lut_item((4, 65531, 16), [0, 1000, 2000, 3000])
    ds = image(stored, ModalityLUTSequence=[lut])
    assert ds.ModalityLUTSequence[0].LUTDescriptor[1] == 65531

    shown, _ = frame_to_display(ds, 0, (1500.0, 3001.0))

    by_hand = np.array([[0, 0, 1000], [2000, 3000, 3000]])
    assert_close(shown, window_by_hand(by_hand, 1500, 3001))


def test_it_spans_the_values_a_non_monotonic_modality_lut_gives_the_frame():
    stored = np.array([[10, 12], [12, 10]], dtype=np.uint16)
    lut = lut_item((5, 10, 16), [900, 100, 700, 300, 500])
    ds = image(stored, ModalityLUTSequence=[lut])

    shown, window = frame_to_display(ds, 0)

    # 11 lies between the stored values but is not in the frame: its 100
    # must not stretch the range, which is 700..900.
    assert window == (800.5, 201.0)
    assert shown.tolist() == [[255, 0], [0, 255]]


def test_it_defaults_to_the_full_range_of_rescaled_values_without_a_window():
    stored = np.arange(100, 356, dtype=np.uint16).reshape(16, 16)
    ds = image(stored, RescaleSlope=-0.5, RescaleIntercept=10)
    values = stored * -0.5 + 10

    shown, window = frame_to_display(ds, 0)

    assert window == pytest.approx((-103.25, 128.5))
    assert np.all(shown[values == values.min()] == 0)
    assert np.all(shown[values == values.max()] == 255)
    assert_close(shown, window_by_hand(values, *window))


def test_it_reads_a_rescale_slope_of_zero_as_one():
    ds = image(
        RAMP, RescaleSlope=0, RescaleIntercept=100, WindowCenter=0, WindowWidth=800
    )

    shown, _ = frame_to_display(ds, 0)

    assert_close(shown, window_by_hand(RAMP + 100.0, 0, 800))


def test_it_windows_a_frame_whose_values_span_more_than_its_pixels():
    stored = np.array([[-32768, -100], [0, 32767]], dtype=np.int16)
    ds = image(stored, RescaleSlope=1, RescaleIntercept=0)

    shown, window = frame_to_display(ds, 0, (0.0, 400.0))

    assert window == (0.0, 400.0)
    assert_close(shown, window_by_hand(stored.astype(np.float64), 0, 400))


# VOI LUT: windows and their functions (PS3.3 C.11.2.1.2, C.11.2.1.3)


@pytest.mark.parametrize(
    ("function", "by_hand"),
    [
        ("LINEAR", window_by_hand),
        ("LINEAR_EXACT", linear_exact_by_hand),
        ("SIGMOID", sigmoid_by_hand),
    ],
)
def test_it_applies_the_files_voi_lut_function(function, by_hand):
    ds = image(RAMP, WindowCenter=40, WindowWidth=400, VOILUTFunction=function)

    shown, window = frame_to_display(ds, 0)

    assert window == (40.0, 400.0)
    assert_close(shown, by_hand(RAMP.astype(np.float64), 40, 400))
    assert_close(shown, window_by_pydicom(ds, RAMP.astype(np.float64)))


def test_it_shows_the_first_of_several_windows_by_default():
    ds = image(RAMP, **SEVERAL_WINDOWS)

    shown, window = frame_to_display(ds, 0)

    assert window == (40.0, 400.0)
    assert_close(shown, window_by_hand(RAMP.astype(np.float64), 40, 400))


def test_it_shows_the_window_chosen_by_index():
    ds = image(RAMP, **SEVERAL_WINDOWS)

    shown, window = frame_to_display(ds, 0, voi_index=1)

    assert window == (-600.0, 1500.0)
    assert_close(shown, window_by_hand(RAMP.astype(np.float64), -600, 1500))
    assert_close(shown, window_by_pydicom(ds, RAMP.astype(np.float64), index=1))


def test_it_shows_the_first_window_for_an_index_the_file_does_not_have():
    ds = image(RAMP, **SEVERAL_WINDOWS)

    shown, window = frame_to_display(ds, 0, voi_index=7)

    assert window == (40.0, 400.0)
    assert np.array_equal(shown, frame_to_display(ds, 0)[0])


def test_it_lists_the_windows_then_the_voi_luts_with_their_explanations():
    ds = image(LUT_INPUT, VOILUTSequence=voi_luts(), **SEVERAL_WINDOWS)

    assert voi_choices(ds) == [
        VoiChoice("window", 0, "SOFT TISSUE", (40.0, 400.0)),
        VoiChoice("window", 1, "LUNG", (-600.0, 1500.0)),
        VoiChoice("window", 2, "THRESHOLD", (300.0, 1.0)),
        VoiChoice("lut", 0, "EIGHT"),
        VoiChoice("lut", 1, "TWELVE"),
    ]


def test_it_leaves_out_windows_that_are_not_usable():
    ds = image(RAMP, WindowCenter=[40, 50, 60], WindowWidth=[0, -5, 300])

    assert voi_choices(ds) == [VoiChoice("window", 2, "", (60.0, 300.0))]


# VOI LUT Sequence (PS3.3 C.11.2.1.1)


def test_it_applies_the_first_voi_lut_when_the_file_has_no_window():
    ds = image(LUT_INPUT, VOILUTSequence=voi_luts())

    shown, window = frame_to_display(ds, 0)

    assert window is None
    by_hand = [[0, 0, 60, 120], [180, 255, 255, 255]]
    assert shown.tolist() == by_hand
    assert_close(shown, apply_voi_lut(LUT_INPUT, ds, index=0))


def test_it_applies_the_chosen_one_of_several_voi_luts():
    ds = image(LUT_INPUT, VOILUTSequence=voi_luts())

    shown, window = frame_to_display(ds, 0, voi_index=1)

    assert window is None
    # Twelve bits per entry: the LUT's output 0..4095 fills 0..255.
    by_hand = np.array([[0, 0, 0, 0], [1000, 3000, 4095, 4095]]) / 4095 * 255
    assert_close(shown, by_hand)
    assert_close(shown, apply_voi_lut(LUT_INPUT, ds, index=1) / 4095 * 255)


def test_it_counts_the_voi_luts_after_the_windows():
    ds = image(LUT_INPUT, VOILUTSequence=voi_luts(), **SEVERAL_WINDOWS)

    by_window, window = frame_to_display(ds, 0)
    by_lut, no_window = frame_to_display(ds, 0, voi_index=4)

    assert window == (40.0, 400.0) and no_window is None
    assert_close(by_window, window_by_hand(LUT_INPUT.astype(np.float64), 40, 400))
    assert_close(by_lut, apply_voi_lut(LUT_INPUT, ds, index=1) / 4095 * 255)


def test_it_lets_a_user_window_override_the_files_windows_and_luts():
    ds = image(LUT_INPUT, VOILUTSequence=voi_luts(), **SEVERAL_WINDOWS)

    shown, window = frame_to_display(ds, 0, (3.0, 6.0), voi_index=4)

    assert window == (3.0, 6.0)
    assert_close(shown, window_by_hand(LUT_INPUT.astype(np.float64), 3, 6))


def test_it_applies_a_requested_function_to_a_user_window():
    ds = image(RAMP, WindowCenter=40, WindowWidth=400)

    shown, _ = frame_to_display(ds, 0, (-100.0, 800.0), voi_function="SIGMOID")

    assert_close(shown, sigmoid_by_hand(RAMP.astype(np.float64), -100, 800))


def test_it_keeps_the_files_function_for_a_user_window():
    ds = image(RAMP, WindowCenter=40, WindowWidth=400, VOILUTFunction="LINEAR_EXACT")

    shown, _ = frame_to_display(ds, 0, (-100.0, 800.0))

    assert_close(shown, linear_exact_by_hand(RAMP.astype(np.float64), -100, 800))


# Presentation: MONOCHROME1 and Presentation LUT Shape (C.7.6.3.1.2, C.11.6)


def test_it_inverts_monochrome1():
    stored = np.array([[0, 1000], [3000, 4095]], dtype=np.uint16)
    ds = image(stored, photometric="MONOCHROME1", WindowCenter=2048, WindowWidth=4096)

    shown, _ = frame_to_display(ds, 0)

    expected = 255 - window_by_hand(stored.astype(np.float64), 2048, 4096)
    assert_close(shown, expected)
    assert shown[0, 0] == 255 and shown[1, 1] == 0


@pytest.mark.parametrize(
    ("photometric", "shape", "inverted"),
    [
        ("MONOCHROME2", None, False),
        ("MONOCHROME2", "IDENTITY", False),
        ("MONOCHROME2", "INVERSE", True),
        ("MONOCHROME1", None, True),
        # DX/MG/IO (C.8.11.7) pair INVERSE with MONOCHROME1: one inversion.
        ("MONOCHROME1", "INVERSE", True),
        ("MONOCHROME1", "IDENTITY", True),
    ],
)
def test_it_combines_the_presentation_lut_shape_with_the_photometric(
    photometric, shape, inverted
):
    extra = {"PresentationLUTShape": shape} if shape else {}
    ds = image(RAMP, photometric=photometric, WindowCenter=0, WindowWidth=1000, **extra)

    shown, _ = frame_to_display(ds, 0)

    windowed = window_by_hand(RAMP.astype(np.float64), 0, 1000)
    assert_close(shown, 255 - windowed if inverted else windowed)


@pytest.mark.django_db
def test_it_shows_a_monochrome1_radiograph_of_10_stored_bits_inverted(ingest):
    path = SHARED_DATA / "pydicom-data" / "RG3_J2KI.dcm"
    instance = ingest(path)
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)

    rendered = render_frame(instance)

    assert rendered.window == (550.0, 1024.0)
    shown = png_pixels(rendered.png)
    assert_close(shown, 255 - window_by_hand(values, 550, 1024))
    assert_close(shown, 255 - window_by_pydicom(ds, values))


# Bits Stored below Bits Allocated, signed pixels (PS3.5 8.1.1, PS3.3 C.7.6.3)


def test_it_ignores_the_bits_above_bits_stored():
    values = RNG.integers(0, 4096, (32, 32))
    noise = RNG.integers(0, 16, (32, 32)) << 12
    stored = (values | noise).astype(np.uint16)
    ds = image(stored, bits_stored=12, WindowCenter=2048, WindowWidth=4096)

    shown, _ = frame_to_display(ds, 0)

    assert_close(shown, window_by_hand(values.astype(np.float64), 2048, 4096))


def test_it_sign_extends_signed_pixels_with_fewer_bits_stored():
    values = RNG.integers(-2048, 2048, (32, 32))
    noise = RNG.integers(0, 16, (32, 32)) << 12
    stored = ((values & 0xFFF) | noise).astype(np.uint16).view(np.int16)
    ds = image(stored, bits_stored=12, RescaleSlope=1, RescaleIntercept=-24)

    shown, _ = frame_to_display(ds, 0, (0.0, 2000.0))

    assert ds.PixelRepresentation == 1
    assert_close(shown, window_by_hand(values - 24.0, 0, 2000))


def test_it_renders_signed_8_bit_pixels():
    stored = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    ds = image(stored, WindowCenter=0, WindowWidth=128)

    shown, _ = frame_to_display(ds, 0)

    assert_close(shown, window_by_hand(stored.astype(np.float64), 0, 128))


# Colour (PS3.3 C.7.6.3.1.2, C.7.6.3.1.3, C.7.6.3.1.5, C.7.9)


@pytest.mark.parametrize("planar_configuration", [0, 1])
def test_it_shows_rgb_as_stored_in_either_planar_configuration(planar_configuration):
    rgb = RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    ds = image(rgb, photometric="RGB", planar_configuration=planar_configuration)

    shown, window = frame_to_display(ds, 0)

    assert window is None
    assert np.array_equal(shown, rgb)


@pytest.mark.parametrize("planar_configuration", [0, 1])
def test_it_converts_ybr_full_to_rgb(planar_configuration):
    ybr = RNG.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    ds = image(ybr, photometric="YBR_FULL", planar_configuration=planar_configuration)

    shown, _ = frame_to_display(ds, 0)

    assert_close(shown, ybr_full_to_rgb_by_hand(ybr))


def test_it_scales_rgb_of_more_than_8_stored_bits():
    rgb = RNG.integers(0, 4096, (5, 5, 3)).astype(np.uint16)
    ds = image(rgb, photometric="RGB", bits_stored=12)

    shown, _ = frame_to_display(ds, 0)

    assert_close(shown, rgb / 4095 * 255, atol=0.5)


@pytest.mark.parametrize(
    "name", ["SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_ybr_full_422_uncompressed.dcm"]
)
def test_it_converts_ybr_full_422_to_rgb(name):
    ds = pydicom.dcmread(PYDICOM / name)
    assert ds.PhotometricInterpretation == "YBR_FULL_422"

    shown, _ = frame_to_display(ds, 0)

    # pydicom's pixel_array converts to RGB with the same BT.601 equations.
    assert_close(shown, ds.pixel_array, atol=2)


def test_it_shows_jpeg_lossless_rgb_as_decoded():
    ds = pydicom.dcmread(PYDICOM / "SC_rgb_jpeg_gdcm.dcm")

    shown, _ = frame_to_display(ds, 0)

    assert np.array_equal(shown, ds.pixel_array)


def palette_image(
    indices: np.ndarray, descriptor: tuple[int, int, int], luts: list[list[int]]
) -> Dataset:
    """A PALETTE COLOR image with one LUT per channel, 16-bit words (OW)."""
    colours = ("Red", "Green", "Blue")
    tables = {
        f"{colour}PaletteColorLookupTableData": np.array(lut, "<u2").tobytes()
        for colour, lut in zip(colours, luts, strict=True)
    }
    return image(
        indices,
        photometric="PALETTE COLOR",
        RedPaletteColorLookupTableDescriptor=list(descriptor),
        GreenPaletteColorLookupTableDescriptor=list(descriptor),
        BluePaletteColorLookupTableDescriptor=list(descriptor),
        **tables,
    )


def test_it_maps_palette_color_through_8_bit_entries():
    indices = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    luts = [[0, 255, 10, 20], [0, 0, 128, 40], [255, 0, 200, 60]]
    ds = palette_image(indices, (4, 0, 8), luts)

    shown, _ = frame_to_display(ds, 0)

    assert shown.tolist() == [
        [[0, 0, 255], [255, 0, 0]],
        [[10, 128, 200], [20, 40, 60]],
    ]
    assert np.array_equal(shown, apply_color_lut(indices, ds))


def test_it_maps_palette_color_through_16_bit_entries():
    indices = np.array([[0, 1, 2]], dtype=np.uint16)
    luts = [[0, 65535, 32896], [65535, 257, 0], [12850, 0, 65535]]
    ds = palette_image(indices, (3, 0, 16), luts)

    shown, _ = frame_to_display(ds, 0)

    # 16-bit entries over 0..65535 fill 0..255: 257 per step.
    assert shown.tolist() == [[[0, 255, 50], [255, 1, 0], [128, 0, 255]]]
    assert_close(shown, apply_color_lut(indices, ds) / 65535 * 255, atol=0.5)


def test_it_gives_palette_indices_outside_the_table_its_end_entries():
    indices = np.array([[0, 5, 6, 9]], dtype=np.uint8)
    luts = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    ds = palette_image(indices, (3, 5, 8), luts)

    shown, _ = frame_to_display(ds, 0)

    assert shown[0].tolist() == [[10, 40, 70], [10, 40, 70], [20, 50, 80], [30, 60, 90]]


def test_it_scales_an_8_bit_palette_whose_entries_hold_16_bit_values():
    indices = np.array([[0, 1, 2]], dtype=np.uint8)
    luts = [[0, 65535, 32896], [0, 0, 0], [65535, 65535, 65535]]
    ds = palette_image(indices, (3, 0, 8), luts)

    shown, _ = frame_to_display(ds, 0)

    assert shown[0, :, 0].tolist() == [0, 255, 128]


def test_it_expands_a_segmented_palette():
    indices = np.array([[0, 1, 2, 3, 4]], dtype=np.uint8)
    # C.7.9.2: opcode 0 lists values, opcode 1 ramps from the last value.
    segments = {
        "Red": [0, 1, 0, 1, 4, 65535],
        "Green": [0, 5, 0, 257, 514, 771, 65535],
        "Blue": [0, 1, 65535, 1, 4, 0],
    }
    tables = {
        f"Segmented{colour}PaletteColorLookupTableData": np.array(
            words, "<u2"
        ).tobytes()
        for colour, words in segments.items()
    }
    descriptors = {
        f"{colour}PaletteColorLookupTableDescriptor": [5, 0, 16] for colour in segments
    }
    ds = image(indices, photometric="PALETTE COLOR", **descriptors, **tables)

    shown, _ = frame_to_display(ds, 0)

    ramp = np.array([0, 63.75, 127.5, 191.25, 255])
    by_hand = np.stack([ramp, [0, 1, 2, 3, 255], ramp[::-1]], axis=-1)
    assert_close(shown[0], by_hand)


# Multi-frame and cine (PS3.3 C.7.6.6, C.7.6.5, C.7.6.16)


def test_it_renders_each_frame_of_a_multiframe_image():
    frames = np.stack([RAMP, RAMP // 2, -RAMP])
    ds = image(frames, frames=True, WindowCenter=0, WindowWidth=2000)

    for index, frame in enumerate(frames):
        shown, _ = frame_to_display(ds, index)
        assert_close(shown, window_by_hand(frame.astype(np.float64), 0, 2000))


def enhanced_image() -> Dataset:
    """Two frames: rescale and a window shared, frame 1 with its own window."""
    shared = Dataset()
    shared.PixelValueTransformationSequence = [transformation(2, -100)]
    shared.FrameVOILUTSequence = [frame_window(0, 500)]
    first, second = Dataset(), Dataset()
    second.FrameVOILUTSequence = [frame_window(1000, 3000)]
    return image(
        np.stack([RAMP, RAMP]),
        frames=True,
        SharedFunctionalGroupsSequence=[shared],
        PerFrameFunctionalGroupsSequence=[first, second],
    )


def transformation(slope: float, intercept: float) -> Dataset:
    item = Dataset()
    item.RescaleSlope, item.RescaleIntercept, item.RescaleType = slope, intercept, "US"
    return item


def frame_window(center: float, width: float) -> Dataset:
    item = Dataset()
    item.WindowCenter, item.WindowWidth = center, width
    return item


def test_it_applies_the_shared_functional_groups_to_a_frame():
    ds = enhanced_image()

    shown, window = frame_to_display(ds, 0)

    assert window == (0.0, 500.0)
    assert_close(shown, window_by_hand(RAMP * 2.0 - 100, 0, 500))


def test_it_lets_a_frames_own_functional_group_override_the_shared_one():
    ds = enhanced_image()

    shown, window = frame_to_display(ds, 1)

    assert window == (1000.0, 3000.0)
    assert voi_choices(ds, 1) == [VoiChoice("window", 0, "", (1000.0, 3000.0))]
    assert_close(shown, window_by_hand(RAMP * 2.0 - 100, 1000, 3000))


def timing(**attributes: object) -> Dataset:
    ds = identified_dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return reread(ds)


@pytest.mark.parametrize(
    ("attributes", "frames_per_second"),
    [
        ({"FrameTime": 40}, 25.0),
        ({"FrameTimeVector": [0, 50, 50, 100]}, 15.0),
        ({"RecommendedDisplayFrameRate": 12}, 12.0),
        ({"CineRate": 30}, 30.0),
    ],
)
def test_it_reads_the_frame_rate_from_each_timing_attribute(
    attributes, frames_per_second
):
    assert cine_frame_rate(timing(**attributes)) == pytest.approx(frames_per_second)


@pytest.mark.parametrize(
    ("attributes", "frames_per_second"),
    [
        (
            {
                "FrameTime": 40,
                "FrameTimeVector": [0, 100],
                "RecommendedDisplayFrameRate": 12,
                "CineRate": 30,
            },
            25.0,
        ),
        (
            {
                "FrameTimeVector": [0, 100, 100],
                "RecommendedDisplayFrameRate": 12,
                "CineRate": 30,
            },
            10.0,
        ),
        ({"RecommendedDisplayFrameRate": 12, "CineRate": 30}, 12.0),
        ({"FrameTime": 0, "FrameTimeVector": [0, 0], "CineRate": 30}, 30.0),
    ],
)
def test_it_takes_the_frame_rate_in_the_standards_order_skipping_zeros(
    attributes, frames_per_second
):
    assert cine_frame_rate(timing(**attributes)) == pytest.approx(frames_per_second)


def test_it_gives_no_frame_rate_for_a_file_without_one():
    assert cine_frame_rate(timing()) is None


@pytest.mark.django_db
def test_it_reads_the_frame_rate_of_a_stored_cine_loop(ingest):
    instance = ingest(PYDICOM / "examples_ybr_color.dcm")

    assert cine_frame_rate(load_header(instance)) == pytest.approx(1000 / 33.333)


# Real files through ingest and render_frame


@pytest.mark.django_db
def test_it_renders_the_second_window_of_a_real_file_when_asked(ingest):
    path = PYDICOM / "examples_overlay.dcm"
    instance = ingest(path)
    ds = pydicom.dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)

    first = render_frame(instance)
    second = render_frame(instance, voi_index=1)

    assert first.window == (450.0, 790.0) and second.window == (200.0, 443.0)
    assert_close(png_pixels(second.png), window_by_pydicom(ds, values, index=1))
    assert_close(png_pixels(second.png), window_by_hand(values, 200, 443))
