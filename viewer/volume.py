"""A series as a voxel volume in patient coordinates, for MPR and 3D.

The geometry comes from the Image Plane module (PS3.3 C.7.6.2): Image
Position (Patient) is the centre of the first transmitted pixel, Image
Orientation (Patient) holds the row and column direction cosines, and Pixel
Spacing is (between rows, between columns) in mm (C.7.6.2.1.1). The slice
direction is their cross product; slice spacing comes from the positions
projected on it, never from Slice Thickness or Spacing Between Slices, which
modalities fill inconsistently.

Nimbus does not resample irregular stacks: a series that is not a regular
volume is refused with a :class:`VolumeError` whose message is shown to the
user. Voxel values are modality LUT output (C.11.1), e.g. Hounsfield units.

Volumes are kept in a per-process cache bounded in memory
(``NIMBUS_VOLUME_CACHE_MB``), keyed by tenant schema and series UID.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pacs.models import Instance, PixelStatus, Series
from viewer.rendering import MAX_FRAME_PIXELS, decode_frame, load_dataset

logger = logging.getLogger(__name__)

# Direction cosines of two slices are "the same" within this (about 0.01 deg).
ORIENTATION_TOLERANCE = 1e-4
# A slice may sit this fraction of the slice spacing off the regular grid.
SPACING_TOLERANCE = 0.1
# A slice may be shifted in-plane by this fraction of a pixel (gantry tilt).
SHEAR_TOLERANCE = 0.5
MIN_SLICES = 2
# Pyramid levels for 3D: the longest side of each downsampled copy.
PYRAMID_SIDES = (128, 256)

Vector = np.ndarray
PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian


# Why a series is not shown as a volume, by reason code (the JSON's "reason").
REFUSALS: dict[str, Promise] = {
    "single_slice": _("MPR needs a series of several slices."),
    "unreadable": _(
        "Some images of this series cannot be decoded, so it cannot be shown as"
        " a volume."
    ),
    "multi_frame": _("MPR of multi-frame images is not supported yet."),
    "colour": _("MPR is for greyscale images only."),
    "no_geometry": _(
        "Some images of this series have no position, orientation or pixel spacing."
    ),
    "differing_sizes": _(
        "The images of this series differ in size, so they do not form a volume."
    ),
    "mixed_orientations": _(
        "This series mixes image orientations (for example a localizer), so it "
        "does not form a volume."
    ),
    "bad_orientation": _("The image orientation of this series is not valid."),
    "bad_pixel_spacing": _("The pixel spacing of this series is not valid."),
    "differing_spacing": _(
        "The images of this series differ in pixel spacing, so they do not form "
        "a volume."
    ),
    "duplicate_positions": _(
        "Several images of this series are at the same position (more than one "
        "acquisition?), so it does not form a volume."
    ),
    "missing_slices": _(
        "Slices are missing from this series (a gap in positions), so it cannot"
        " be shown as a volume."
    ),
    "uneven_spacing": _(
        "The slices of this series are unevenly spaced, so it cannot be shown "
        "as a volume."
    ),
    "gantry_tilt": _(
        "The slices of this series are tilted against their stacking direction "
        "(gantry tilt), so it cannot be shown as a volume."
    ),
    "changed": _("This series changed while loading; try again."),
    "too_large": _("This series is too large to be shown as a volume on this server."),
}


class VolumeError(Exception):
    """The series cannot be shown as a volume; ``message`` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        return str(REFUSALS[self.reason])


@dataclass(frozen=True, eq=False)
class VolumeGeometry:
    """Where every voxel lies in the patient coordinate system (PS3.3 C.7.6.2.1.1).

    Voxel ``(k, i, j)`` (slice, row, column) is at
    ``origin + k * spacing[0] * axes[0] + i * spacing[1] * axes[1]
    + j * spacing[2] * axes[2]``: ``axes[2]`` is the row direction (along a
    row, increasing column), ``axes[1]`` the column direction and ``axes[0]``
    the slice normal, slices sorted along it.
    """

    series_instance_uid: str
    modality: str
    shape: tuple[int, int, int]
    origin: Vector
    axes: Vector
    spacing: Vector
    instance_ids: tuple[int, ...]
    dtype: np.dtype[Any]
    monochrome1: bool = False

    @property
    def voxel_to_patient(self) -> Vector:
        """3x3 matrix: patient offset (mm) of an index step along k, i, j."""
        return (self.axes * self.spacing[:, None]).T

    def index_to_patient(self, index: Vector) -> Vector:
        """Patient positions (mm) of voxel indices, shape (..., 3)."""
        return (
            self.origin + np.asarray(index, dtype=np.float64) @ self.voxel_to_patient.T
        )

    def patient_to_index(self, point: Vector) -> Vector:
        """Fractional voxel indices (k, i, j) of patient positions, shape (..., 3)."""
        offset = np.asarray(point, dtype=np.float64) - self.origin
        return (offset @ self.axes.T) / self.spacing

    @property
    def corners(self) -> Vector:
        """The 8 corner voxel centres in patient coordinates, shape (8, 3)."""
        last = np.array(self.shape, dtype=np.float64) - 1
        grid = np.array(np.meshgrid([0, 1], [0, 1], [0, 1], indexing="ij"))
        return self.index_to_patient(grid.reshape(3, -1).T * last)

    @property
    def center(self) -> Vector:
        return self.corners.mean(axis=0)

    @property
    def voxel_bytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def cache_bytes(self) -> int:
        """Memory of the volume with its 3D pyramid, once built."""
        pyramid = sum(
            int(np.prod(pyramid_shape(self, side))) * self.dtype.itemsize
            for side in PYRAMID_SIDES
        )
        return self.voxel_bytes + pyramid


@dataclass(eq=False)
class Volume:
    """Loaded voxels plus lazily built downsampled copies for 3D rendering."""

    geometry: VolumeGeometry
    voxels: np.ndarray
    minimum: float
    maximum: float
    _pyramid: dict[int, tuple[np.ndarray, Vector]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def downsampled(self, side: int) -> tuple[np.ndarray, Vector]:
        """A copy at most about ``side`` voxels long, and its spacing.

        Block means over integer factors per axis, so the corner voxel of each
        block stays aligned with the original grid (origin shifted by half a
        block, see :func:`downsampled_origin`).
        """
        with self._lock:
            if side not in self._pyramid:
                self._pyramid[side] = block_mean(
                    self.voxels,
                    self.geometry.spacing,
                    pyramid_factors(self.geometry, side),
                )
            return self._pyramid[side]


def pyramid_factors(geometry: VolumeGeometry, side: int) -> tuple[int, int, int]:
    """Integer reduction per axis giving near-isotropic voxels, longest side ~side."""
    extent = np.array(geometry.shape) * geometry.spacing
    target = float(extent.max()) / side
    factors = np.maximum(1, np.floor(target / geometry.spacing + 0.5)).astype(int)
    factors = np.minimum(factors, geometry.shape)
    return (int(factors[0]), int(factors[1]), int(factors[2]))


def pyramid_shape(geometry: VolumeGeometry, side: int) -> tuple[int, ...]:
    factors = pyramid_factors(geometry, side)
    return tuple(n // f for n, f in zip(geometry.shape, factors, strict=True))


def block_mean(
    voxels: np.ndarray, spacing: Vector, factors: tuple[int, int, int]
) -> tuple[np.ndarray, Vector]:
    fk, fi, fj = factors
    nk, ni, nj = (n // f for n, f in zip(voxels.shape, factors, strict=True))
    cropped = voxels[: nk * fk, : ni * fi, : nj * fj]
    reduced = np.empty((nk, ni, nj), dtype=voxels.dtype)
    # One slab of slices at a time keeps the float copy small.
    for k in range(nk):
        block = cropped[k * fk : (k + 1) * fk].astype(np.float32)
        mean = block.reshape(fk, ni, fi, nj, fj).mean(axis=(0, 2, 4))
        reduced[k] = np.rint(mean) if reduced.dtype.kind == "i" else mean
    return reduced, spacing * np.array(factors, dtype=np.float64)


def downsampled_origin(geometry: VolumeGeometry, factors: tuple[int, ...]) -> Vector:
    """Patient position of voxel (0, 0, 0) of a block-mean copy: a block centre."""
    half_block = (np.array(factors, dtype=np.float64) - 1) / 2
    return geometry.index_to_patient(half_block)


# --- Planning from the index ------------------------------------------------


def plan_volume(series: Series) -> VolumeGeometry:
    """Check from the index that ``series`` is a regular volume, and describe it.

    Reads no pixel data, so the viewer can tell at once why MPR is refused.

    Raises
    ------
    VolumeError
        Multi-frame, colour or undecodable images, a single slice, missing
        geometry, differing sizes or pixel spacings, mixed orientations, a
        tilted (sheared) stack, slices at the same position, missing slices
        or uneven spacing.
    """
    instances = list(series.instances.order_by("pk"))
    return plan_instances(series.series_instance_uid, series.modality, instances)


def plan_instances(
    series_instance_uid: str, modality: str, instances: list[Instance]
) -> VolumeGeometry:
    """:func:`plan_volume` for instance rows already at hand."""
    check_instances(instances)

    orientation = np.array(instances[0].image_orientation_patient, dtype=np.float64)
    row_direction, column_direction = orientation[:3], orientation[3:]
    check_orientations(instances, row_direction, column_direction)
    normal = np.cross(row_direction, column_direction)

    positions = np.array(
        [i.image_position_patient for i in instances], dtype=np.float64
    )
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    instances = [instances[i] for i in order]
    positions, distances = positions[order], distances[order]

    pixel_spacing = check_pixel_spacing(instances)
    slice_spacing = check_slice_spacing(distances)
    check_shear(positions, row_direction, column_direction, pixel_spacing)

    rows, columns = int(instances[0].rows or 0), int(instances[0].columns or 0)
    return VolumeGeometry(
        series_instance_uid=series_instance_uid,
        modality=modality,
        shape=(len(instances), rows, columns),
        origin=positions[0],
        axes=np.array([normal, column_direction, row_direction]),
        spacing=np.array([slice_spacing, pixel_spacing[0], pixel_spacing[1]]),
        instance_ids=tuple(i.pk for i in instances),
        dtype=voxel_dtype(instances),
        monochrome1=meta_text(instances[0], "00280004") == "MONOCHROME1",
    )


def check_instances(instances: list[Instance]) -> None:
    if len(instances) < MIN_SLICES:
        raise VolumeError("single_slice")
    if any(i.pixel_status != PixelStatus.OK for i in instances):
        raise VolumeError("unreadable")
    if any(i.number_of_frames > 1 for i in instances):
        raise VolumeError("multi_frame")
    if any((i.rows or 0) * (i.columns or 0) > MAX_FRAME_PIXELS for i in instances):
        # The renderer's bound, before any slice is decoded.
        raise VolumeError("too_large")
    if any(meta_number(i, "00280002", 1) != 1 for i in instances):
        raise VolumeError("colour")
    if any(
        i.image_position_patient is None
        or i.image_orientation_patient is None
        or meta_numbers(i, "00280030") is None
        for i in instances
    ):
        raise VolumeError("no_geometry")
    sizes = {(i.rows, i.columns) for i in instances}
    if len(sizes) > 1:
        raise VolumeError("differing_sizes")


def check_orientations(
    instances: list[Instance], row_direction: Vector, column_direction: Vector
) -> None:
    orientations = np.array([i.image_orientation_patient for i in instances])
    first = np.concatenate([row_direction, column_direction])
    if np.abs(orientations - first).max() > ORIENTATION_TOLERANCE:
        raise VolumeError("mixed_orientations")
    lengths = np.linalg.norm([row_direction, column_direction], axis=1)
    if (
        np.abs(lengths - 1).max() > 1e-3
        or abs(float(row_direction @ column_direction)) > 1e-3
    ):
        raise VolumeError("bad_orientation")


def check_pixel_spacing(instances: list[Instance]) -> tuple[float, float]:
    values = [meta_numbers(i, "00280030") or [] for i in instances]
    if any(len(v) != 2 for v in values):
        raise VolumeError("bad_pixel_spacing")
    spacings = np.array(values, dtype=np.float64)
    if not np.all(np.isfinite(spacings) & (spacings > 0)):
        raise VolumeError("bad_pixel_spacing")
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        raise VolumeError("differing_spacing")
    return float(spacings[0][0]), float(spacings[0][1])


def check_slice_spacing(distances: Vector) -> float:
    """The regular spacing of slices along the normal, or a refusal.

    Each slice must lie within SPACING_TOLERANCE of a step of the regular
    grid between the first and the last one; a gap of a whole number of the
    smallest steps is reported as missing slices, its usual cause.
    """
    steps = np.diff(distances)
    median = float(np.median(steps))
    if median <= 1e-3 or steps.min() <= 1e-3 * max(median, 1.0):
        raise VolumeError("duplicate_positions")
    ratios = steps / steps.min()
    if np.any((ratios > 1.5) & (np.abs(ratios - np.rint(ratios)) < SPACING_TOLERANCE)):
        raise VolumeError("missing_slices")
    spacing = float((distances[-1] - distances[0]) / (len(distances) - 1))
    expected = distances[0] + spacing * np.arange(len(distances))
    if np.abs(distances - expected).max() > SPACING_TOLERANCE * spacing:
        raise VolumeError("uneven_spacing")
    return spacing


def check_shear(
    positions: Vector,
    row_direction: Vector,
    column_direction: Vector,
    pixel_spacing: tuple[float, float],
) -> None:
    """Refuse stacks whose slices shift in-plane: gantry tilt or a sheared stack.

    Placing such slices on a rectangular grid would misplace voxels by more
    than half a pixel; resampling them correctly is not done here.
    """
    offsets = positions - positions[0]
    shift_along_row = np.abs(offsets @ row_direction) / pixel_spacing[1]
    shift_along_column = np.abs(offsets @ column_direction) / pixel_spacing[0]
    if max(shift_along_row.max(), shift_along_column.max()) > SHEAR_TOLERANCE:
        raise VolumeError("gantry_tilt")


def voxel_dtype(instances: list[Instance]) -> np.dtype[Any]:
    """int16 when every modality LUT output is a whole number in its range.

    CT values (Hounsfield units) nearly always are, which halves the memory
    of a float32 volume.
    """
    low, high = 0.0, 0.0
    for instance in instances:
        if "00283000" in instance.metadata:
            return np.dtype(np.float32)
        slope = meta_number(instance, "00281053", 1.0)
        intercept = meta_number(instance, "00281052", 0.0)
        if slope != int(slope) or intercept != int(intercept):
            return np.dtype(np.float32)
        stored_low, stored_high = stored_range(instance)
        ends = (slope * stored_low + intercept, slope * stored_high + intercept)
        low, high = min(low, *ends), max(high, *ends)
    info = np.iinfo(np.int16)
    if low < info.min or high > info.max:
        return np.dtype(np.float32)
    return np.dtype(np.int16)


def stored_range(instance: Instance) -> tuple[float, float]:
    bits = int(meta_number(instance, "00280101", 16))
    if meta_number(instance, "00280103", 0) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def meta_numbers(instance: Instance, tag: str) -> list[float] | None:
    """Numeric values of a tag from the indexed DICOM JSON header."""
    element = instance.metadata.get(tag)
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    try:
        return [float(v) for v in values] if values else None
    except (TypeError, ValueError):
        return None


def meta_number(instance: Instance, tag: str, default: float) -> float:
    values = meta_numbers(instance, tag)
    return values[0] if values else default


def meta_text(instance: Instance, tag: str) -> str:
    element = instance.metadata.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return str(values[0]).strip() if values else ""


# --- Loading pixel data -----------------------------------------------------


def load_volume(geometry: VolumeGeometry) -> Volume:
    """Read and decode every slice of the planned series.

    Raises
    ------
    VolumeError
        A file cannot be read or decoded, or the series changed meanwhile.
    """
    found = Instance.objects.in_bulk(geometry.instance_ids)
    if len(found) != len(geometry.instance_ids):
        raise VolumeError("changed")
    return read_volume(geometry, [found[pk] for pk in geometry.instance_ids])


def read_volume(geometry: VolumeGeometry, instances: list[Instance]) -> Volume:
    """Decode ``instances`` (in slice order) into one array of modality LUT values."""
    started = time.perf_counter()
    voxels = np.empty(geometry.shape, dtype=geometry.dtype)
    fast = 0
    for k, instance in enumerate(instances):
        native = native_slice_values(instance, geometry)
        if native is None:
            voxels[k] = slice_values(instance, geometry)
        else:
            voxels[k] = native
            fast += 1

    logger.info(
        "volume loaded series=%s shape=%s native=%d ms=%d",
        geometry.series_instance_uid,
        geometry.shape,
        fast,
        (time.perf_counter() - started) * 1000,
    )
    return Volume(geometry, voxels, float(voxels.min()), float(voxels.max()))


def slice_values(instance: Instance, geometry: VolumeGeometry) -> np.ndarray:
    """One slice as modality LUT output (PS3.3 C.11.1), decoded by pydicom."""
    try:
        ds = load_dataset(instance)
        pixels, _photometric = decode_frame(ds, 0)
    except Exception as error:  # noqa: BLE001 - any decoder failure means the same to the user
        logger.warning(
            "volume slice unreadable sop=%s: %s",
            instance.sop_instance_uid,
            type(error).__name__,
        )
        raise VolumeError("unreadable") from error
    if pixels.shape != geometry.shape[1:]:
        raise VolumeError("differing_sizes")
    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(pixels, ds), dtype=geometry.dtype)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    return rescaled(pixels, slope, intercept, geometry.dtype)


def native_slice_values(
    instance: Instance, geometry: VolumeGeometry
) -> np.ndarray | None:
    """One slice read straight from the end of its file, or None to ask pydicom.

    Parsing every header with pydicom took about 4 of the 5 ms a slice cost.
    For an uncompressed little endian file (PS3.5 A.1, A.2) whose last element
    is the top-level Pixel Data (7FE0,0010) - nearly every CT and MR slice -
    the pixels are the file's last bytes, and what they mean (size, bits,
    sign, rescale) is in the index already, read from the same file at
    ingest. Anything else (compressed, deflated, trailing elements, a
    Modality LUT Sequence) returns None.
    """
    explicit = instance.transfer_syntax_uid == ExplicitVRLittleEndian
    if not explicit and instance.transfer_syntax_uid != ImplicitVRLittleEndian:
        return None
    bits_allocated = int(meta_number(instance, "00280100", 0))
    if bits_allocated not in (8, 16) or "00283000" in instance.metadata:
        return None
    rows, columns = geometry.shape[1:]
    length = rows * columns * bits_allocated // 8
    padded = length + length % 2  # values are padded to an even length

    with default_storage.open(instance.storage_path, "rb") as handle:
        data = handle.read()
    start = len(data) - padded
    size = padded.to_bytes(4, "little")
    if explicit:
        headers = [PIXEL_DATA_TAG + vr + b"\0\0" + size for vr in (b"OW", b"OB")]
        header = data[start - 12 : start]
    else:
        headers = [PIXEL_DATA_TAG + size]
        header = data[start - 8 : start]
    if start < 132 or header not in headers:
        return None

    signed = meta_number(instance, "00280103", 0) == 1
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits_allocated // 8}")
    pixels = np.frombuffer(data, dtype, rows * columns, start).reshape(rows, columns)
    pixels = clear_unused_bits(pixels, bits_allocated, instance)
    slope = meta_number(instance, "00281053", 1.0)
    intercept = meta_number(instance, "00281052", 0.0)
    return rescaled(pixels, slope, intercept, geometry.dtype)


def clear_unused_bits(
    pixels: np.ndarray, bits_allocated: int, instance: Instance
) -> np.ndarray:
    """Bits above Bits Stored cleared, or filled with the sign bit (PS3.5 8.1.1)."""
    bits_stored = int(meta_number(instance, "00280101", bits_allocated))
    unused = bits_allocated - bits_stored
    if not 0 < unused < bits_allocated:
        return pixels
    if pixels.dtype.kind == "i":
        return (pixels << unused) >> unused
    return pixels & pixels.dtype.type((1 << bits_stored) - 1)


def rescaled(
    pixels: np.ndarray, slope: float, intercept: float, dtype: np.dtype[Any]
) -> np.ndarray:
    """Stored values through Rescale Slope and Intercept (PS3.3 C.11.1.1.2)."""
    if dtype == np.int16:
        # Whole numbers in range (checked by voxel_dtype): exact in int32.
        values = pixels.astype(np.int32)
        if slope != 1:
            values *= int(slope)
        values += int(intercept)
        return values
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


# --- The per-process cache --------------------------------------------------


CacheKey = tuple[str, str]
LOAD_LOCK_STRIPES = 64


@dataclass
class _Entry:
    volume: Volume
    nbytes: int


class VolumeCache:
    """Loaded volumes, least recently used evicted first, within ``max_bytes``.

    Keys are (tenant schema, Series Instance UID): two hospitals may hold
    the same series UID (a study sent to both), and must never share voxels.
    An entry is reloaded when the series' instances changed (more slices
    arrived). Safe to use from the threads of one process.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        # Striped load locks: bounded memory however many series are opened.
        self._loading = [threading.Lock() for _ in range(LOAD_LOCK_STRIPES)]

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(entry.nbytes for entry in self._entries.values())

    def keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._entries)

    def get(
        self,
        key: CacheKey,
        geometry: VolumeGeometry,
        loader: Callable[[VolumeGeometry], Volume] = load_volume,
    ) -> Volume:
        """The cached volume for ``key``, loading it (once) when absent or stale.

        Raises
        ------
        VolumeError
            The volume alone is larger than the cache, or it cannot be loaded.
        """
        if geometry.cache_bytes > self.max_bytes:
            raise VolumeError("too_large")
        volume = self._lookup(key, geometry)
        if volume is not None:
            return volume

        # One load per key at a time: a second viewer of the same series waits
        # for the first load instead of decoding the series again in parallel.
        with self._loading[hash(key) % LOAD_LOCK_STRIPES]:
            volume = self._lookup(key, geometry)
            if volume is None:
                volume = loader(geometry)
                self._store(key, volume)
        return volume

    def current(self, key: CacheKey, instance_ids: frozenset[int]) -> Volume | None:
        """The cached volume for ``key`` if it holds exactly these instances."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if frozenset(entry.volume.geometry.instance_ids) != instance_ids:
                return None
            self._entries.move_to_end(key)
            return entry.volume

    def _lookup(self, key: CacheKey, geometry: VolumeGeometry) -> Volume | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.volume.geometry.instance_ids != geometry.instance_ids:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.volume

    def _store(self, key: CacheKey, volume: Volume) -> None:
        with self._lock:
            self._entries[key] = _Entry(volume, volume.geometry.cache_bytes)
            self._entries.move_to_end(key)
            while sum(e.nbytes for e in self._entries.values()) > self.max_bytes:
                evicted, _entry = self._entries.popitem(last=False)
                logger.info("volume evicted series=%s", evicted[1])

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache: VolumeCache | None = None
_cache_lock = threading.Lock()


def volume_cache() -> VolumeCache:
    """The process's cache, sized by ``NIMBUS_VOLUME_CACHE_MB``."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = VolumeCache(settings.NIMBUS_VOLUME_CACHE_MB * 1024 * 1024)
        return _cache


def series_volume(series: Series, cache: VolumeCache | None = None) -> Volume:
    """The loaded volume of ``series`` in the current tenant, through the cache.

    Raises
    ------
    VolumeError
        The series is not a regular volume, too large, or unreadable.
    """
    cache = cache or volume_cache()
    key = (connection.schema_name, series.series_instance_uid)
    # Every plane asks for the volume: when the series still has the cached
    # volume's instances, its ids say so without planning from every row's
    # header again (a tenth of a second at 500 slices).
    ids = frozenset(series.instances.values_list("pk", flat=True))
    volume = cache.current(key, ids)
    if volume is not None:
        return volume
    return cache.get(key, plan_volume(series))
