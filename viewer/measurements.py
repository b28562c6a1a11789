"""Measurements on stored pixels: distances, angles, ROI statistics, probes.

Everything is computed on the server from the stored file, in the units of
the Modality LUT output (PS3.3 C.11.1): Hounsfield units for CT. The browser
only ever sees rendered 8-bit frames, which carry no modality values.

Points are image coordinates in pixels: x along a row (columns), y down the
columns (rows), (0, 0) the top-left corner of the first pixel, so the pixel
in row r and column c has its centre at (c + 0.5, r + 0.5).
"""

import math
from dataclasses import dataclass

import numpy as np
from django.utils.translation import gettext as _
from pydicom.dataset import Dataset

from viewer.rendering import (
    GRAYSCALE_PHOTOMETRICS,
    GrayscaleChain,
    as_list,
    decode_frame,
    finite_number,
    frame_attributes,
    functional_group_items,
    is_little_endian,
)

Point = tuple[float, float]


class MeasurementError(ValueError):
    """The measurement cannot be made; the message is shown to the user."""


@dataclass(frozen=True)
class Spacing:
    """Physical size of a pixel in mm: between rows (y) and between columns (x).

    ``source`` names the attribute it came from, so the viewer can say that
    an ImagerPixelSpacing length is measured at the detector (PS3.3
    10.7.1.3), not in the patient.
    """

    row: float
    column: float
    source: str


def pixel_spacing(ds: Dataset, frame_index: int = 0) -> Spacing | None:
    """The frame's pixel spacing, or None when the file does not give one.

    Pixel Spacing (PS3.3 C.7.6.2.1.1), also from the Pixel Measures
    functional group of enhanced images (C.7.6.16.2.1), then Imager Pixel
    Spacing of projection images (C.8.11.4.1.1). The first value is the
    spacing between rows, the second between columns.
    """
    # The frame's own group overrides the shared one, which overrides the top
    # level; the detector's spacing is the fallback of last resort.
    ordered: list[tuple[object, str]] = [
        *(
            (item.get("PixelSpacing"), "PixelSpacing")
            for item in reversed(pixel_measures_items(ds, frame_index))
        ),
        (ds.get("PixelSpacing"), "PixelSpacing"),
        (ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing"),
    ]
    for value, source in ordered:
        numbers = [finite_number(v) for v in as_list(value)]
        if len(numbers) == 2 and all(n is not None and n > 0 for n in numbers):
            return Spacing(float(numbers[0]), float(numbers[1]), source)  # type: ignore[arg-type]
    return None


def pixel_measures_items(ds: Dataset, frame_index: int) -> list[Dataset]:
    """Pixel Measures items, shared first, then the frame's own (C.7.6.16.2.1)."""
    groups = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and frame_index < len(per_frame):
        groups.append(per_frame[frame_index])
    return [
        item for group in groups for item in group.get("PixelMeasuresSequence") or []
    ]


def value_unit(ds: Dataset, frame_index: int = 0) -> str:
    """The unit of the Modality LUT output: HU for CT, else Rescale Type or "".

    Rescale Type (PS3.3 C.11.1.1.2) names the unit; "US" means unspecified.
    A CT Image's rescaled values are Hounsfield units by definition (C.8.2.1).
    """
    sources = [*reversed(functional_group_items(ds, frame_index)), ds]
    rescale_type = next(
        (source.RescaleType for source in sources if "RescaleType" in source), ""
    )
    rescale_type = str(rescale_type or "").strip()
    if rescale_type and rescale_type != "US":
        return rescale_type
    return "HU" if str(ds.get("Modality", "")).upper() == "CT" else ""


def modality_values(ds: Dataset, frame_index: int = 0) -> np.ndarray:
    """One frame's stored values through the Modality LUT, as float64 (C.11.1).

    Raises
    ------
    MeasurementError
        The image is in colour: it has no modality values to measure.
    """
    pixels, photometric = decode_frame(ds, frame_index)
    if photometric not in GRAYSCALE_PHOTOMETRICS:
        raise MeasurementError(_("Values can only be measured on greyscale images."))
    chain = GrayscaleChain(
        frame_attributes(ds, frame_index), photometric, is_little_endian(ds)
    )
    return chain.modality(pixels.astype(np.float64))


def physical(vector: Point, spacing: Spacing | None) -> Point:
    """A vector in pixels as mm (or still pixels without a spacing)."""
    if spacing is None:
        return vector
    return (vector[0] * spacing.column, vector[1] * spacing.row)


def length(points: list[Point], spacing: Spacing | None) -> float:
    """The distance between two points, in mm, or in pixels without a spacing."""
    (x0, y0), (x1, y1) = points
    dx, dy = physical((x1 - x0, y1 - y0), spacing)
    return math.hypot(dx, dy)


def angle(points: list[Point], spacing: Spacing | None) -> float:
    """The angle at the middle point, in degrees, between the other two.

    Measured in the patient's proportions: with unequal row and column
    spacing a square pixel grid is not square on the patient.
    """
    (ax, ay), (bx, by), (cx, cy) = points
    u = physical((ax - bx, ay - by), spacing)
    v = physical((cx - bx, cy - by), spacing)
    norms = math.hypot(*u) * math.hypot(*v)
    if norms == 0:
        raise MeasurementError(_("An angle needs three distinct points."))
    cosine = (u[0] * v[0] + u[1] * v[1]) / norms
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def ellipse_mask(shape: tuple[int, int], center: Point, radii: Point) -> np.ndarray:
    """Pixels whose centre lies inside the axis-aligned ellipse."""
    rows, columns = shape
    (cx, cy), (rx, ry) = center, radii
    y = (np.arange(rows) + 0.5 - cy) / ry
    x = (np.arange(columns) + 0.5 - cx) / rx
    return (y[:, np.newaxis] ** 2 + x[np.newaxis, :] ** 2) <= 1.0


def ellipse_from_corners(points: list[Point]) -> tuple[Point, Point]:
    """Centre and radii of the ellipse inscribed in the box of two corners."""
    (x0, y0), (x1, y1) = points
    radii = (abs(x1 - x0) / 2.0, abs(y1 - y0) / 2.0)
    if min(radii) <= 0:
        raise MeasurementError(_("Draw the ellipse with a width and a height."))
    return ((x0 + x1) / 2.0, (y0 + y1) / 2.0), radii


def ellipse_statistics(
    values: np.ndarray, points: list[Point], spacing: Spacing | None
) -> dict[str, float]:
    """Mean, standard deviation, extremes and area of an ellipse ROI.

    The statistics cover the pixels whose centre lies inside the ellipse;
    the standard deviation is that of those pixels as a population (divided
    by n). The area is the drawn ellipse's, pi * a * b, in mm² (or px²).

    Raises
    ------
    MeasurementError
        The ellipse is flat or covers no pixel centre of the image.
    """
    center, radii = ellipse_from_corners(points)
    inside = values[ellipse_mask(values.shape[:2], center, radii)]
    if inside.size == 0:
        raise MeasurementError(_("The ellipse covers no pixel of the image."))
    rx, ry = physical(radii, spacing)
    return {
        "mean": float(inside.mean()),
        "sd": float(inside.std()),
        "min": float(inside.min()),
        "max": float(inside.max()),
        "pixels": int(inside.size),
        "area": math.pi * rx * ry,
    }


def probe(values: np.ndarray, point: Point) -> float:
    """The modality value of the pixel under ``point``.

    Raises
    ------
    MeasurementError
        The point lies outside the image.
    """
    column, row = math.floor(point[0]), math.floor(point[1])
    rows, columns = values.shape[:2]
    if not (0 <= row < rows and 0 <= column < columns):
        raise MeasurementError(_("The point is outside the image."))
    return float(values[row, column])
