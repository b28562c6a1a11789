"""Expected display values, computed apart from the renderer.

The standard's formulas are written out here by hand with numpy, or taken
from pydicom's own LUT functions; the renderer shares no code with either.
"""

import io

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_voi_lut


def png_pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image)


def assert_close(actual: np.ndarray, expected: np.ndarray, atol: float = 1) -> None:
    assert actual.shape == expected.shape
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert difference.max() <= atol, f"largest difference {difference.max()}"


def window_by_hand(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) as the standard writes it, output 0..255."""
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    inside = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(values <= low, 0.0, np.where(values > high, 255.0, inside))


def linear_exact_by_hand(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.3.2 (LINEAR_EXACT), output 0..255."""
    inside = ((values - center) / width + 0.5) * 255
    below, above = values <= center - width / 2, values > center + width / 2
    return np.where(below, 0.0, np.where(above, 255.0, inside))


def sigmoid_by_hand(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.3.1 (SIGMOID), output 0..255."""
    return 255 / (1 + np.exp(-4 * (values - center) / width))


def window_by_pydicom(
    ds: pydicom.Dataset, values: np.ndarray, index: int = 0
) -> np.ndarray:
    """pydicom's VOI output, stretched from its own output range to 0..255."""
    out = apply_voi_lut(values, ds, index=index, prefer_lut=False)
    with np.errstate(over="ignore"):  # SIGMOID at the extremes: exp overflows to 0
        y_min, y_max = apply_voi_lut(
            np.array([-1e12, 1e12]), ds, index=index, prefer_lut=False
        )
    return (out - y_min) / (y_max - y_min) * 255


def ybr_full_to_rgb_by_hand(ybr: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 full range (PS3.3 C.7.6.3.1.2), clipped to 0..255."""
    y, cb, cr = (ybr[..., i].astype(np.float64) for i in range(3))
    rgb = np.stack(
        [
            y + 1.402 * (cr - 128),
            y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
            y + 1.772 * (cb - 128),
        ],
        axis=-1,
    )
    return rgb.clip(0, 255)
