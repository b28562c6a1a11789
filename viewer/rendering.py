"""Server-side rendering of DICOM frames to lossless 8-bit PNG.

The grayscale pipeline follows PS3.3 C.11 (the "grayscale image
transformations"): stored values go through the Modality LUT (C.11.1), then
the VOI LUT or window (C.11.2), then the Presentation LUT (C.11.6), where
MONOCHROME1 means the lowest value is displayed white (C.7.6.3.1.2). Colour
images skip that chain: RGB is shown as stored, YBR is converted to RGB
(C.7.6.3.1.2) and PALETTE COLOR goes through its lookup tables (C.7.6.3.1.5,
C.7.9).

A frame that cannot be shown becomes an error image, never an exception: a
viewer must keep working around one bad instance.
"""

import io
import logging
import math
from dataclasses import dataclass

import numpy as np
import pydicom
from django.core.files.storage import default_storage
from django.utils.translation import gettext as _
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    convert_color_space,
    get_decoder,
)

from pacs.models import Instance, PixelStatus

logger = logging.getLogger(__name__)

Window = tuple[float, float]

ERROR_BACKGROUND = (17, 20, 24)
ERROR_FOREGROUND = (255, 140, 140)
YBR_PHOTOMETRICS = {"YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}


class RenderError(Exception):
    """The frame cannot be rendered; the message is shown to the user."""


@dataclass(frozen=True)
class Rendered:
    """A rendered frame: the PNG bytes and the window used (None for colour)."""

    png: bytes
    window: Window | None
    error: bool = False


def load_dataset(instance: Instance) -> Dataset:
    """Read the stored file of ``instance`` (leniently, as received)."""
    with default_storage.open(instance.storage_path, "rb") as handle:
        return pydicom.dcmread(handle)


def render_png(
    instance: Instance,
    frame_index: int = 0,
    window: Window | None = None,
    *,
    max_size: int | None = None,
) -> bytes:
    """Render one frame of ``instance`` as a PNG.

    Parameters
    ----------
    instance : pacs.models.Instance
        The indexed instance; its stored file is read.
    frame_index : int, optional
        The frame, from 0 (PS3.3 C.7.6.6 Number of Frames).
    window : tuple of float, optional
        ``(center, width)`` of a linear window (PS3.3 C.11.2.1.2). When
        None, the file's first Window Center/Width is used, else its VOI
        LUT, else the full range of the frame's values.
    max_size : int, optional
        Scale the image down so that neither side exceeds this (thumbnails).

    Returns
    -------
    bytes
        A PNG: 8-bit grey for grayscale images, 8-bit RGB for colour ones,
        or an error image when the pixel data is missing, truncated or
        cannot be decoded.
    """
    return render_frame(instance, frame_index, window, max_size=max_size).png


def render_frame(
    instance: Instance,
    frame_index: int = 0,
    window: Window | None = None,
    *,
    max_size: int | None = None,
) -> Rendered:
    """Like :func:`render_png`, but also report the window that was applied."""
    try:
        check_renderable(instance, frame_index)
        ds = load_dataset(instance)
        image, used_window = frame_to_display(ds, frame_index, window)
    except RenderError as error:
        return Rendered(error_png(str(error), max_size), None, error=True)
    except Exception as error:  # noqa: BLE001 - the edge: one bad file never breaks the page
        logger.warning(
            "render failed sop=%s frame=%d: %s",
            instance.sop_instance_uid,
            frame_index,
            type(error).__name__,
        )
        message = _("This image cannot be decoded.")
        return Rendered(error_png(message, max_size), None, error=True)

    return Rendered(encode_png(image, max_size), used_window)


def check_renderable(instance: Instance, frame_index: int) -> None:
    """Refuse, with a message for the user, what ingest found unreadable.

    Raises
    ------
    RenderError
        The pixel status recorded at ingest is not ``ok``, or the frame
        index is outside PS3.3 C.7.6.6 Number of Frames.
    """
    messages = {
        PixelStatus.NONE: _("This instance has no image."),
        PixelStatus.TRUNCATED: _("The image data of this instance is incomplete."),
        PixelStatus.UNREADABLE: _("This image cannot be decoded."),
    }
    if instance.pixel_status != PixelStatus.OK:
        raise RenderError(
            messages.get(instance.pixel_status, _("This image cannot be shown."))
        )
    if not 0 <= frame_index < max(instance.number_of_frames, 1):
        raise RenderError(_("This frame does not exist."))


def frame_to_display(
    ds: Dataset, frame_index: int, window: Window | None
) -> tuple[np.ndarray, Window | None]:
    """Decode one frame and turn it into 8-bit display values.

    Returns
    -------
    tuple
        A ``uint8`` array, (rows, columns) for grayscale or (rows, columns, 3)
        for colour, and the window applied (None for colour).
    """
    pixels, photometric = decode_frame(ds, frame_index)

    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        return grayscale_to_display(pixels, ds, photometric, window)
    return color_to_rgb(pixels, ds, photometric), None


def decode_frame(ds: Dataset, frame_index: int) -> tuple[np.ndarray, str]:
    """Decode one frame through pydicom's decoders (and pylibjpeg/gdcm plugins).

    Colour conversion is left to :func:`color_to_rgb`, so the photometric
    interpretation returned is that of the decoded values, e.g. a native
    YBR_FULL_422 frame comes back upsampled as YBR_FULL (PS3.5 8.2.1).
    """
    transfer_syntax = ds.file_meta.get(
        "TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian
    )
    decoder = get_decoder(transfer_syntax)
    pixels, meta = decoder.as_array(ds, index=frame_index, as_rgb=False)
    photometric = str(
        meta.get("photometric_interpretation") or ds.PhotometricInterpretation
    )
    return pixels, photometric.strip()


def grayscale_to_display(
    pixels: np.ndarray, ds: Dataset, photometric: str, window: Window | None
) -> tuple[np.ndarray, Window | None]:
    """Modality LUT, VOI and presentation for one grayscale frame (PS3.3 C.11).

    The Modality LUT (rescale slope/intercept or a LUT, PS3.3 C.11.1) turns
    stored values into output units such as Hounsfield units; the window or
    VOI LUT (C.11.2) selects the range shown; MONOCHROME1 is inverted.
    """
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)

    if window is None:
        window = file_window(ds)
    if window is None and "VOILUTSequence" in ds:
        display = voi_lut_to_display(values, ds)
        return present(display, ds, photometric), None
    if window is None:
        window = full_range_window(values)

    display = apply_window(values, window, voi_lut_function(ds))
    return present(display, ds, photometric), window


def file_window(ds: Dataset) -> Window | None:
    """The first Window Center/Width pair of the file (PS3.3 C.11.2.1.2)."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    center = center[0] if isinstance(center, pydicom.multival.MultiValue) else center
    width = width[0] if isinstance(width, pydicom.multival.MultiValue) else width
    try:
        result = (float(center), float(width))
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in result) or result[1] <= 0:
        return None
    return result


def full_range_window(values: np.ndarray) -> Window:
    """A window spanning every value of the frame, for files without one."""
    low, high = float(values.min()), float(values.max())
    width = max(high - low + 1.0, 1.0)
    return (low + width / 2.0, width)


def voi_lut_function(ds: Dataset) -> str:
    """The VOI LUT Function (PS3.3 C.11.2.1.3); LINEAR when absent or unknown."""
    function = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    return function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR"


def apply_window(
    values: np.ndarray, window: Window, function: str = "LINEAR"
) -> np.ndarray:
    """Map values to 0..255 through a window (PS3.3 C.11.2.1.2 and C.11.2.1.3).

    Parameters
    ----------
    values : numpy.ndarray
        Modality LUT output values.
    window : tuple of float
        ``(center, width)``.
    function : str
        ``LINEAR`` (C.11.2.1.2.1, width at least 1), ``LINEAR_EXACT``
        (C.11.3.2, width above 0) or ``SIGMOID`` (C.11.2.1.3.1).

    Returns
    -------
    numpy.ndarray
        ``uint8`` display values.
    """
    center, width = window
    if function == "SIGMOID":
        scaled = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-6)))
    elif function == "LINEAR_EXACT":
        scaled = (values - center) / max(width, 1e-6) + 0.5
    elif width <= 1.0:
        # With a width of 1 the linear function is a threshold at center - 0.5.
        scaled = (values > center - 0.5).astype(np.float64)
    else:
        scaled = (values - (center - 0.5)) / (width - 1.0) + 0.5
    return np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def voi_lut_to_display(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """Apply the file's first VOI LUT (PS3.3 C.11.2.1.1) and scale to 0..255."""
    output = np.asarray(apply_voi_lut(values, ds, prefer_lut=True), dtype=np.float64)
    descriptor = ds.VOILUTSequence[0].LUTDescriptor
    bits = int(descriptor[2]) if int(descriptor[2]) > 0 else 16
    return np.rint(np.clip(output / (2**bits - 1), 0.0, 1.0) * 255.0).astype(np.uint8)


def present(display: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Show low values white for MONOCHROME1 or an INVERSE Presentation LUT Shape.

    PS3.3 C.7.6.3.1.2 and C.11.6.1. The two are not applied twice: the DX
    and MG modules (C.8.11.7) require INVERSE alongside MONOCHROME1, where it
    describes the same single inversion.
    """
    shape = str(ds.get("PresentationLUTShape", "")).strip().upper()
    if photometric == "MONOCHROME1" or shape == "INVERSE":
        return (255 - display).astype(np.uint8)
    return display


def color_to_rgb(pixels: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Turn a colour frame into 8-bit RGB (PS3.3 C.7.6.3.1.2 and C.7.6.3.1.5).

    Raises
    ------
    RenderError
        The photometric interpretation is not one Nimbus can display.
    """
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        return scale_to_8_bits(rgb, 16 if bits > 8 else 8)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        pixels = convert_color_space(pixels, photometric, "RGB")
    elif photometric not in ("RGB", "YBR_ICT", "YBR_RCT"):
        # ICT/RCT are decoded to RGB by the JPEG 2000 plugins themselves.
        raise RenderError(_("This colour encoding cannot be displayed."))
    return scale_to_8_bits(pixels, int(ds.get("BitsStored", 8) or 8))


def scale_to_8_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Rescale samples of ``bits`` bits to 0..255 (identity for 8 bits)."""
    if bits <= 8:
        return np.clip(values, 0, 255).astype(np.uint8)
    maximum = float(2**bits - 1)
    scaled = np.clip(values.astype(np.float64) / maximum, 0.0, 1.0) * 255.0
    return np.rint(scaled).astype(np.uint8)


def encode_png(image: np.ndarray, max_size: int | None = None) -> bytes:
    """Encode 8-bit grey or RGB as PNG, losslessly unless ``max_size`` shrinks it."""
    picture = Image.fromarray(np.ascontiguousarray(image))
    if max_size is not None:
        picture.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


# Pillow's built-in font has no accented letters; the translated messages
# (French, German, Dutch) need a TrueType font with full Latin coverage.
MESSAGE_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


def message_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in MESSAGE_FONTS:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def error_png(message: str, max_size: int | None = None) -> bytes:
    """A dark PNG carrying ``message``, shown where a frame cannot be rendered."""
    size = min(max_size or 512, 512)
    picture = Image.new("RGB", (size, size), ERROR_BACKGROUND)
    draw = ImageDraw.Draw(picture)
    font = message_font(max(10, size // 24))
    lines = wrap_text(draw, message, font, size - size // 8)
    text = "\n".join(lines)
    draw.multiline_text(
        (size / 2, size / 2),
        text,
        fill=ERROR_FOREGROUND,
        font=font,
        anchor="mm",
        align="center",
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def wrap_text(
    draw: ImageDraw.ImageDraw,
    message: str,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    width: int,
) -> list[str]:
    """Break ``message`` into lines that fit ``width`` pixels."""
    lines: list[str] = []
    for word in message.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(candidate, font=font) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines or [""]
