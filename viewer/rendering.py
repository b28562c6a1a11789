"""Server-side rendering of DICOM frames to lossless 8-bit PNG.

The grayscale pipeline follows PS3.3 C.11 (the "grayscale image
transformations"): stored values go through the Modality LUT (C.11.1), then
the VOI LUT or window (C.11.2), then the Presentation LUT (C.11.6), where
MONOCHROME1 means the lowest value is displayed white (C.7.6.3.1.2). Enhanced
multi-frame images carry those attributes in functional groups (C.7.6.16),
per frame or shared, and they are read from there. Colour images skip that
chain: RGB is shown as stored, YBR is converted to RGB (C.7.6.3.1.2) and
PALETTE COLOR goes through its lookup tables (C.7.6.3.1.5, C.7.9).

For integer pixels the whole grayscale chain is computed once per frame for
each value between the frame's minimum and maximum, and the frame is then one
table lookup: cheaper than running the chain on every pixel in floating point.

A frame that cannot be shown becomes an error image, never an exception: a
viewer must keep working around one bad instance.
"""

import io
import logging
import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pydicom
from django.core.files.storage import default_storage
from django.utils.translation import gettext as _
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, convert_color_space, get_decoder
from pydicom.uid import ExplicitVRBigEndian

from ops.metrics import timed_render
from pacs import deflate
from pacs.models import Instance, PixelStatus

logger = logging.getLogger(__name__)

Window = tuple[float, float]

ERROR_BACKGROUND = (17, 20, 24)
ERROR_FOREGROUND = (255, 140, 140)
GRAYSCALE_PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")
VOI_LUT_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
# The decoders allocate Rows x Columns before they read a byte: a few bytes of
# RLE claiming 65535 x 65535 took 8 GB of a web process. 100 megapixels is
# twice the largest single-frame image in clinical use (whole-slide images
# come tiled, one frame per tile).
MAX_FRAME_PIXELS = 100_000_000

# The attributes of the grayscale chain. An enhanced multi-frame image moves
# them into these functional group sequences (PS3.3 C.7.6.16.2.9 Pixel Value
# Transformation, C.7.6.16.2.10 Frame VOI LUT).
GRAYSCALE_KEYWORDS = (
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "VOILUTFunction",
    "VOILUTSequence",
    "PresentationLUTShape",
)
FRAME_TRANSFORM_SEQUENCES = (
    "PixelValueTransformationSequence",
    "FrameVOILUTSequence",
)


class RenderError(Exception):
    """The frame cannot be rendered; the message is shown to the user."""


@dataclass(frozen=True)
class Rendered:
    """A rendered frame: the PNG bytes and the window used (None otherwise).

    ``window`` is None for colour images and for a frame shown through a VOI
    LUT Sequence item rather than a window.
    """

    png: bytes
    window: Window | None
    error: bool = False


@dataclass(frozen=True)
class VoiChoice:
    """One VOI transformation a file offers (PS3.3 C.11.2).

    Attributes
    ----------
    kind : {"window", "lut"}
        A Window Center/Width pair (C.11.2.1.2) or an item of the VOI LUT
        Sequence (C.11.2.1.1).
    index : int
        The position of the pair among the file's Window Center values, or
        of the item in the VOI LUT Sequence.
    explanation : str
        Window Center & Width Explanation or LUT Explanation, "" when absent.
    window : tuple of float or None
        ``(center, width)`` for a window, None for a LUT.
    """

    kind: Literal["window", "lut"]
    index: int
    explanation: str
    window: Window | None = None


def load_dataset(instance: Instance) -> Dataset:
    """Read the stored file of ``instance`` (leniently, as received).

    Within ``NIMBUS_MAX_INFLATED_MB`` and the file's own size
    (``pacs.deflate``): a file stored before ingest checked deflated data
    sets must not inflate in a web process either.

    Raises
    ------
    pacs.deflate.InflateLimitExceeded
        The deflated data set inflates past the cap.
    """
    with default_storage.open(instance.storage_path, "rb") as handle:
        return deflate.read_bounded(handle)


def load_header(instance: Instance) -> Dataset:
    """Read the stored file of ``instance`` up to, not including, its pixels."""
    with default_storage.open(instance.storage_path, "rb") as handle:
        return deflate.read_bounded(handle, stop_before_pixels=True)


def render_png(
    instance: Instance,
    frame_index: int = 0,
    window: Window | None = None,
    *,
    max_size: int | None = None,
    voi_index: int = 0,
    voi_function: str | None = None,
) -> bytes:
    """Render one frame of ``instance`` as a PNG.

    Parameters
    ----------
    instance : pacs.models.Instance
        The indexed instance; its stored file is read.
    frame_index : int, optional
        The frame, from 0 (PS3.3 C.7.6.6 Number of Frames).
    window : tuple of float, optional
        ``(center, width)`` of a window chosen by the user (PS3.3
        C.11.2.1.2); it overrides every VOI transformation of the file.
    max_size : int, optional
        Scale the image down so that neither side exceeds this (thumbnails).
    voi_index : int, optional
        Without ``window``: which of the file's VOI transformations to apply,
        counted as :func:`voi_choices` lists them (its windows first, then
        its VOI LUTs). The first by default; an index the file does not
        have also gives the first, so that a choice made on one image of a
        series never blanks the next. A file without any is shown over the
        full range of its modality values.
    voi_function : str, optional
        ``LINEAR``, ``LINEAR_EXACT`` or ``SIGMOID`` (PS3.3 C.11.2.1.3) for
        ``window``; when None, the file's VOI LUT Function, else LINEAR.

    Returns
    -------
    bytes
        A PNG: 8-bit grey for grayscale images, 8-bit RGB for colour ones,
        or an error image when the pixel data is missing, truncated or
        cannot be decoded.
    """
    return render_frame(
        instance,
        frame_index,
        window,
        max_size=max_size,
        voi_index=voi_index,
        voi_function=voi_function,
    ).png


@timed_render
def render_frame(
    instance: Instance,
    frame_index: int = 0,
    window: Window | None = None,
    *,
    max_size: int | None = None,
    voi_index: int = 0,
    voi_function: str | None = None,
) -> Rendered:
    """Like :func:`render_png`, but also report the window that was applied."""
    try:
        check_renderable(instance, frame_index)
        ds = load_dataset(instance)
        image, used_window = frame_to_display(
            ds, frame_index, window, voi_index=voi_index, voi_function=voi_function
        )
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
        The pixel status recorded at ingest is not ``ok``, the frame index
        is outside PS3.3 C.7.6.6 Number of Frames, or Rows x Columns (C.7.6.3)
        exceeds ``MAX_FRAME_PIXELS``.
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
    if (instance.rows or 0) * (instance.columns or 0) > MAX_FRAME_PIXELS:
        raise RenderError(_("This image is too large to show."))


def frame_to_display(
    ds: Dataset,
    frame_index: int,
    window: Window | None = None,
    *,
    voi_index: int = 0,
    voi_function: str | None = None,
) -> tuple[np.ndarray, Window | None]:
    """Decode one frame and turn it into 8-bit display values.

    Parameters are those of :func:`render_png`, with the dataset in place
    of the instance.

    Returns
    -------
    tuple
        A ``uint8`` array, (rows, columns) for grayscale or (rows, columns, 3)
        for colour, and the window applied (None for colour or a VOI LUT).
    """
    pixels, photometric = decode_frame(ds, frame_index)
    return pixels_to_display(
        ds, pixels, photometric, frame_index, window, voi_index, voi_function
    )


def pixels_to_display(
    ds: Dataset,
    pixels: np.ndarray,
    photometric: str,
    frame_index: int,
    window: Window | None = None,
    voi_index: int = 0,
    voi_function: str | None = None,
) -> tuple[np.ndarray, Window | None]:
    """The second half of :func:`frame_to_display`, for a frame decoded before."""
    if photometric not in GRAYSCALE_PHOTOMETRICS:
        return color_to_rgb(pixels, ds, photometric), None

    attrs = frame_attributes(ds, frame_index)
    chain = GrayscaleChain(
        attrs, photometric, is_little_endian(ds), window, voi_index, voi_function
    )
    return chain.to_display(pixels)


def decode_frame(ds: Dataset, frame_index: int) -> tuple[np.ndarray, str]:
    """Decode one frame through pydicom's decoders (and pylibjpeg/gdcm plugins).

    Bits above Bits Stored are cleared, or filled with the sign bit for
    signed pixels, as PS3.5 8.1.1 asks: their content is undefined.

    Colour conversion is left to :func:`color_to_rgb`, so the photometric
    interpretation returned is that of the decoded values, e.g. a native
    YBR_FULL_422 frame comes back upsampled as YBR_FULL (PS3.5 8.2.1).
    """
    transfer_syntax = ds.file_meta.get(
        "TransferSyntaxUID", pydicom.uid.ImplicitVRLittleEndian
    )
    decoder = get_decoder(transfer_syntax)
    pixels, meta = decoder.as_array(
        ds, index=frame_index, as_rgb=False, correct_unused_bits=True
    )
    photometric = str(
        meta.get("photometric_interpretation") or ds.PhotometricInterpretation
    )
    return pixels, photometric.strip()


def is_little_endian(ds: Dataset) -> bool:
    """Whether OW values of ``ds`` (LUT Data) are little endian."""
    return ds.file_meta.get("TransferSyntaxUID") != ExplicitVRBigEndian


def frame_attributes(ds: Dataset, frame_index: int = 0) -> Dataset:
    """The grayscale transformation attributes that apply to one frame.

    The top level of ``ds`` first, then the Shared Functional Groups, then
    the frame's own Per-frame Functional Groups (PS3.3 C.7.6.16), each
    overriding the one before.
    """
    attrs = Dataset()
    for source in (ds, *functional_group_items(ds, frame_index)):
        for keyword in GRAYSCALE_KEYWORDS:
            if keyword in source:
                attrs.add(source[keyword])
    return attrs


def functional_group_items(ds: Dataset, frame_index: int) -> list[Dataset]:
    """Pixel Value Transformation and Frame VOI LUT items, shared ones first."""
    groups: list[Dataset] = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame_index < len(per_frame):
        groups.append(per_frame[frame_index])
    return [
        item
        for group in groups
        for keyword in FRAME_TRANSFORM_SEQUENCES
        for item in group.get(keyword) or []
    ]


def voi_choices(ds: Dataset, frame_index: int = 0) -> list[VoiChoice]:
    """The VOI transformations a frame offers, in the order ``voi_index`` counts.

    The windows (PS3.3 C.11.2.1.2) in the order of Window Center, then the
    items of the VOI LUT Sequence (C.11.2.1.1). Pairs that are not finite
    numbers with a positive width are left out.
    """
    return file_voi_choices(frame_attributes(ds, frame_index))


def file_voi_choices(attrs: Dataset) -> list[VoiChoice]:
    explanations = as_list(attrs.get("WindowCenterWidthExplanation"))
    choices = [
        VoiChoice("window", index, str_at(explanations, index), window)
        for index, window in file_windows(attrs)
    ]
    for index, item in enumerate(attrs.get("VOILUTSequence") or []):
        explanation = str(item.get("LUTExplanation", "") or "")
        choices.append(VoiChoice("lut", index, explanation))
    return choices


def file_windows(attrs: Dataset) -> list[tuple[int, Window]]:
    """Usable Window Center/Width pairs with their index (PS3.3 C.11.2.1.2)."""
    centers = as_list(attrs.get("WindowCenter"))
    widths = as_list(attrs.get("WindowWidth"))
    windows = []
    for index, (center, width) in enumerate(zip(centers, widths, strict=False)):
        window = (finite_number(center), finite_number(width))
        if window[0] is not None and window[1] is not None and window[1] > 0:
            windows.append((index, (window[0], window[1])))
    return windows


def as_list(value: object) -> list[object]:
    """A multi-valued element's values as a list; one value, or none, too."""
    if value is None or value == "":
        return []
    if isinstance(value, pydicom.multival.MultiValue | list | tuple):
        return list(value)
    return [value]


def str_at(values: list[object], index: int) -> str:
    return str(values[index]) if index < len(values) else ""


def finite_number(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class GrayscaleChain:
    """The grayscale transformations of PS3.3 C.11 for one frame.

    Built once per frame from its attributes and the viewer's request, then
    applied to the frame's values: Modality LUT, VOI, Presentation LUT.
    """

    def __init__(
        self,
        attrs: Dataset,
        photometric: str,
        little_endian: bool,
        window: Window | None = None,
        voi_index: int = 0,
        voi_function: str | None = None,
    ) -> None:
        self.attrs = attrs
        self.little_endian = little_endian
        self.signed = int(attrs.get("PixelRepresentation", 0) or 0) == 1
        self.inverted = shows_low_values_white(attrs, photometric)
        self.window = window
        self.function = (voi_function or voi_lut_function(attrs)).strip().upper()
        self.lut_index: int | None = None
        if window is None:
            self.choose_file_voi(voi_index)

    def choose_file_voi(self, voi_index: int) -> None:
        choices = file_voi_choices(self.attrs)
        if not choices:
            return
        choice = choices[voi_index] if 0 <= voi_index < len(choices) else choices[0]
        if choice.kind == "lut":
            self.lut_index = choice.index
        else:
            self.window = choice.window

    def to_display(self, pixels: np.ndarray) -> tuple[np.ndarray, Window | None]:
        """The frame as ``uint8`` display values, and the window applied."""
        if np.issubdtype(pixels.dtype, np.integer):
            low, high = int(pixels.min()), int(pixels.max())
            if high - low < pixels.size:
                return self.through_table(pixels, low, high)

        values = self.modality(pixels.astype(np.float64))
        return self.display(values, values)

    def through_table(
        self, pixels: np.ndarray, low: int, high: int
    ) -> tuple[np.ndarray, Window | None]:
        """Run the chain on each value from ``low`` to ``high``, then look up."""
        offsets = np.subtract(pixels, low, dtype=np.int64 if low < 0 else None)
        values = self.modality(np.arange(low, high + 1, dtype=np.float64))
        present = values
        if "ModalityLUTSequence" in self.attrs and self.needs_range():
            # A LUT need not be monotonic: the range is that of the values
            # the frame holds, not of every value between its extremes.
            present = values[np.bincount(offsets.ravel()) > 0]

        table, used_window = self.display(values, present)
        return np.take(table, offsets), used_window

    def needs_range(self) -> bool:
        return self.window is None and self.lut_index is None

    def modality(self, stored: np.ndarray) -> np.ndarray:
        """Stored values to modality values, e.g. Hounsfield units (C.11.1).

        A Modality LUT Sequence takes the place of Rescale Slope/Intercept;
        the module allows one or the other.
        """
        sequence = self.attrs.get("ModalityLUTSequence")
        if sequence:
            return apply_lut(stored, sequence[0], self.signed, self.little_endian)[0]

        # A slope of 0 (seen in broken files) would show one flat grey.
        slope = finite_number(self.attrs.get("RescaleSlope")) or 1.0
        intercept = finite_number(self.attrs.get("RescaleIntercept")) or 0.0
        return stored * slope + intercept

    def display(
        self, values: np.ndarray, present: np.ndarray
    ) -> tuple[np.ndarray, Window | None]:
        """VOI then Presentation LUT, to ``uint8`` (C.11.2, C.11.6)."""
        window = self.window
        if self.lut_index is not None:
            shown = self.voi_lut(values)
        else:
            if window is None:
                window = full_range_window(present)
            shown = apply_window(values, window, self.function)

        if self.inverted:
            shown = 1.0 - shown
        return np.rint(shown * 255.0).astype(np.uint8), window

    def voi_lut(self, values: np.ndarray) -> np.ndarray:
        """The chosen VOI LUT Sequence item, scaled to 0..1 (C.11.2.1.1).

        Its output range is 0 to 2**n - 1 for n bits per entry, the third
        value of the LUT Descriptor.
        """
        item = self.attrs.VOILUTSequence[self.lut_index]
        signed = self.signed or bool(values.size and values.min() < 0)
        output, bits = apply_lut(values, item, signed, self.little_endian)
        return np.clip(output / float(2**bits - 1), 0.0, 1.0)


def apply_lut(
    values: np.ndarray, item: Dataset, signed: bool, little_endian: bool
) -> tuple[np.ndarray, int]:
    """Map values through a Modality or VOI LUT item (PS3.3 C.11.1.1, C.11.2.1.1).

    Parameters
    ----------
    values : numpy.ndarray
        Input values; those below the first value mapped take the first
        entry, those beyond the last entry take the last.
    item : pydicom.dataset.Dataset
        An item with LUT Descriptor (entries, first value mapped, bits per
        entry; 0 entries means 65536) and LUT Data.
    signed : bool
        Whether the first value mapped is a signed (SS) number; a file read
        in implicit VR gives it as unsigned.
    little_endian : bool
        The byte order of LUT Data given as OW.

    Returns
    -------
    tuple
        The LUT's output values (float64) and its bits per entry.
    """
    entries, first, bits = (int(value) for value in item.LUTDescriptor)
    entries = entries or 65536
    if signed and first > 32767:
        first -= 65536

    data = item.LUTData
    if isinstance(data, bytes) and bits <= 8 and len(data) == entries:
        table = np.frombuffer(data, dtype=np.uint8)  # 8-bit entries, packed
    elif isinstance(data, bytes):
        table = np.frombuffer(data, dtype="<u2" if little_endian else ">u2")
    else:
        table = np.asarray(as_list(data), dtype=np.float64)
    table = np.asarray(table[:entries], dtype=np.float64)

    index = np.clip(np.rint(values) - first, 0, table.size - 1).astype(np.intp)
    return table[index], min(max(bits, 1), 16)


def lut_input_window(attrs: Dataset, lut_index: int) -> Window | None:
    """The window spanning a VOI LUT's input range (PS3.3 C.11.2.1.1).

    The LUT Descriptor gives the number of entries and the first value
    mapped; a reader who starts changing W/L on an image shown through the
    LUT starts from this window. Signed when Pixel Representation says so or
    a negative Rescale Intercept makes modality values go below zero.
    """
    items = attrs.get("VOILUTSequence") or []
    if not 0 <= lut_index < len(items) or "LUTDescriptor" not in items[lut_index]:
        return None
    entries, first, _ = (int(value) for value in items[lut_index].LUTDescriptor)
    entries = entries or 65536
    intercept = finite_number(attrs.get("RescaleIntercept")) or 0.0
    signed = int(attrs.get("PixelRepresentation", 0) or 0) == 1 or intercept < 0
    if signed and first > 32767:
        first -= 65536
    return (first + entries / 2.0, float(entries))


def full_range_window(values: np.ndarray) -> Window:
    """A window spanning every modality value of the frame, for files without one."""
    low, high = float(values.min()), float(values.max())
    width = max(high - low + 1.0, 1.0)
    return (low + width / 2.0, width)


def voi_lut_function(attrs: Dataset) -> str:
    """The VOI LUT Function (PS3.3 C.11.2.1.3); LINEAR when absent or unknown."""
    function = str(attrs.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    return function if function in VOI_LUT_FUNCTIONS else "LINEAR"


def apply_window(
    values: np.ndarray, window: Window, function: str = "LINEAR"
) -> np.ndarray:
    """Map values to 0..1 through a window (PS3.3 C.11.2.1.2 and C.11.2.1.3).

    Parameters
    ----------
    values : numpy.ndarray
        Modality LUT output values.
    window : tuple of float
        ``(center, width)``.
    function : str
        ``LINEAR`` (C.11.2.1.2.1, width at least 1), ``LINEAR_EXACT``
        (C.11.2.1.3.2, width above 0) or ``SIGMOID`` (C.11.2.1.3.1); any
        other value is read as LINEAR.

    Returns
    -------
    numpy.ndarray
        float64 values from 0 (black before any inversion) to 1.
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
    return np.clip(scaled, 0.0, 1.0)


def shows_low_values_white(attrs: Dataset, photometric: str) -> bool:
    """Whether the frame is inverted for display (PS3.3 C.7.6.3.1.2, C.11.6.1).

    MONOCHROME1 means the lowest value is white; a Presentation LUT Shape of
    INVERSE asks for the same. The two are not applied twice: DX, MG and IO
    images (C.8.11.7) must carry INVERSE alongside MONOCHROME1, where it
    names that one inversion, and IDENTITY "other than to account for" the
    Photometric Interpretation, so MONOCHROME1 with IDENTITY is inverted too.
    """
    shape = str(attrs.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def color_to_rgb(pixels: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Turn a colour frame into 8-bit RGB (PS3.3 C.7.6.3.1.2 and C.7.6.3.1.5).

    Raises
    ------
    RenderError
        The photometric interpretation is not one Nimbus can display.
    """
    if photometric == "PALETTE COLOR":
        return palette_to_rgb(pixels, ds)
    if photometric in ("YBR_FULL", "YBR_FULL_422"):
        pixels = convert_color_space(pixels, photometric, "RGB")
    elif photometric not in ("RGB", "YBR_ICT", "YBR_RCT"):
        # ICT/RCT are decoded to RGB by the JPEG 2000 plugins themselves.
        raise RenderError(_("This colour encoding cannot be displayed."))
    return scale_to_8_bits(pixels, int(ds.get("BitsStored", 8) or 8))


def palette_to_rgb(pixels: np.ndarray, ds: Dataset) -> np.ndarray:
    """Look PALETTE COLOR indices up in the palette (PS3.3 C.7.6.3.1.5, C.7.9).

    Plain and segmented palettes with 8 or 16-bit entries; an alpha table,
    when present, is not shown.
    """
    rgb = apply_color_lut(pixels, ds)[..., :3]
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    if bits <= 8 and int(rgb.max()) > 255:
        # Some writers declare 8 bits and fill the words with 16-bit values.
        bits = 16
    return scale_to_8_bits(rgb, bits)


def scale_to_8_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Rescale samples of ``bits`` bits to 0..255 (identity for 8 bits)."""
    if bits <= 8:
        return np.clip(values, 0, 255).astype(np.uint8)
    maximum = float(2**bits - 1)
    scaled = np.clip(values.astype(np.float64) / maximum, 0.0, 1.0) * 255.0
    return np.rint(scaled).astype(np.uint8)


def cine_frame_rate(ds: Dataset) -> float | None:
    """Frames per second to play a multi-frame image at, or None.

    From, in this order: Frame Time in ms (PS3.3 C.7.6.5.1.1), the mean
    of the Frame Time Vector's increments (C.7.6.5.1.2; its first value,
    the first frame's, is 0), Recommended Display Frame Rate and Cine Rate
    (C.7.6.5). Values that are not positive finite numbers are skipped.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The header, e.g. from :func:`load_header`.

    Returns
    -------
    float or None
        None when the file gives no usable rate.
    """
    frame_time = finite_number(ds.get("FrameTime"))
    if frame_time is not None and frame_time > 0:
        return 1000.0 / frame_time

    increments = [finite_number(value) for value in as_list(ds.get("FrameTimeVector"))]
    usable = [value for value in increments[1:] or increments if value is not None]
    mean = sum(usable) / len(usable) if usable else 0.0
    if mean > 0:
        return 1000.0 / mean

    for keyword in ("RecommendedDisplayFrameRate", "CineRate"):
        rate = finite_number(ds.get(keyword))
        if rate is not None and rate > 0:
            return rate
    return None


# zlib's run-length strategy at level 1: on CT slices after PNG's row filters
# it is both faster and smaller than Pillow's default (level 6, default
# strategy): 3.4 ms and 53 kB against 6.8 ms and 54 kB for a 512x512 soft
# tissue window, 5.4 ms and 86 kB against 34 ms and 91 kB for a lung window
# (docs/decisions.md, "Viewer speed").
PNG_OPTIONS = {"compress_level": 1, "compress_type": zlib.Z_RLE}


def encode_png(image: np.ndarray, max_size: int | None = None) -> bytes:
    """Encode 8-bit grey or RGB as PNG, losslessly unless ``max_size`` shrinks it."""
    picture = Image.fromarray(np.ascontiguousarray(image))
    if max_size is not None:
        picture.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", **PNG_OPTIONS)
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
