"""Server-side rendering of DICOM frames to lossless PNG.

Basic first version: modality LUT then a linear window; deepened by the
viewer work (photometrics, VOI LUT functions, error images).
"""

import io

import numpy as np
import pydicom
from django.core.files.storage import default_storage
from PIL import Image
from pydicom.pixels import apply_modality_lut

from pacs.models import Instance


def load_dataset(instance: Instance) -> pydicom.Dataset:
    with default_storage.open(instance.storage_path, "rb") as handle:
        return pydicom.dcmread(handle)


def render_png(
    instance: Instance,
    frame_index: int = 0,
    window: tuple[float, float] | None = None,
) -> bytes:
    """The frame as an 8-bit greyscale PNG; ``window`` is (center, width)."""
    ds = load_dataset(instance)
    pixels = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[frame_index]
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if window is None:
        window = (float(values.mean()), float(values.max() - values.min()) or 1.0)
    center, width = window
    low = center - width / 2
    scaled = np.clip((values - low) / max(width, 1.0), 0.0, 1.0) * 255.0
    buffer = io.BytesIO()
    Image.fromarray(scaled.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()
