"""Measure an annotation's points on an instance's stored file."""

import math
from collections.abc import Callable

from django.utils.translation import gettext as _
from pydicom.dataset import Dataset

from pacs.models import Instance
from viewer import measurements
from viewer.measurements import MeasurementError, Point
from viewer.models import AnnotationKind
from viewer.rendering import (
    RenderError,
    check_renderable,
    load_dataset,
    load_header,
)

POINT_COUNTS = {
    AnnotationKind.LENGTH: 2,
    AnnotationKind.ANGLE: 3,
    AnnotationKind.ELLIPSE: 2,
    AnnotationKind.PROBE: 1,
}
# Far outside any image, yet small enough to stay exact in float64.
COORDINATE_LIMIT = 1e6


def parse_points(kind: str, raw: object) -> list[Point]:
    """Check the points sent for ``kind``: the right count of finite [x, y]."""
    if kind not in POINT_COUNTS:
        raise MeasurementError(_("Unknown kind of annotation."))
    if not isinstance(raw, list) or len(raw) != POINT_COUNTS[AnnotationKind(kind)]:
        raise MeasurementError(_("Wrong number of points for this annotation."))
    points = []
    for point in raw:
        if not (isinstance(point, list | tuple) and len(point) == 2):
            raise MeasurementError(_("A point is a pair of numbers."))
        if not all(_coordinate(value) for value in point):
            raise MeasurementError(_("A point is a pair of numbers."))
        points.append((float(point[0]), float(point[1])))
    return points


def _coordinate(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and abs(value) <= COORDINATE_LIMIT
    )


def measure(
    instance: Instance, frame_index: int, kind: str, points: list[Point]
) -> dict[str, object]:
    """What an annotation measures, in mm (px without spacing) and modality units."""
    needs_pixels = kind in (AnnotationKind.ELLIPSE, AnnotationKind.PROBE)
    if needs_pixels:
        try:
            check_renderable(instance, frame_index)
        except RenderError as error:
            raise MeasurementError(str(error)) from error
    ds = load_dataset(instance) if needs_pixels else load_header(instance)
    return MEASURES[AnnotationKind(kind)](ds, frame_index, points)


def _length(ds: Dataset, frame_index: int, points: list[Point]) -> dict[str, object]:
    spacing = measurements.pixel_spacing(ds, frame_index)
    return {
        "length": measurements.length(points, spacing),
        "unit": "mm" if spacing else "px",
        "spacing_source": spacing.source if spacing else None,
    }


def _angle(ds: Dataset, frame_index: int, points: list[Point]) -> dict[str, object]:
    spacing = measurements.pixel_spacing(ds, frame_index)
    return {"angle": measurements.angle(points, spacing), "unit": "deg"}


def _ellipse(ds: Dataset, frame_index: int, points: list[Point]) -> dict[str, object]:
    spacing = measurements.pixel_spacing(ds, frame_index)
    values = measurements.modality_values(ds, frame_index)
    return {
        **measurements.ellipse_statistics(values, points, spacing),
        "value_unit": measurements.value_unit(ds, frame_index),
        "area_unit": "mm2" if spacing else "px2",
    }


def _probe(ds: Dataset, frame_index: int, points: list[Point]) -> dict[str, object]:
    values = measurements.modality_values(ds, frame_index)
    return {
        "value": measurements.probe(values, points[0]),
        "value_unit": measurements.value_unit(ds, frame_index),
    }


MEASURES: dict[
    AnnotationKind, Callable[[Dataset, int, list[Point]], dict[str, object]]
] = {
    AnnotationKind.LENGTH: _length,
    AnnotationKind.ANGLE: _angle,
    AnnotationKind.ELLIPSE: _ellipse,
    AnnotationKind.PROBE: _probe,
}
