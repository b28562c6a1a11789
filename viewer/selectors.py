"""Read-only queries for the viewer: a series' images in reading order."""

from dataclasses import dataclass

from django.db.models import F, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from pacs.models import Instance, Series, Study


@dataclass(frozen=True)
class Preset:
    """A named window (center, width) in Hounsfield units."""

    key: str
    label: str | Promise
    center: float
    width: float


# Common CT windows (center, width in HU).
CT_PRESETS = (
    Preset("brain", _("Brain"), 40, 80),
    Preset("soft_tissue", _("Soft tissue"), 40, 400),
    Preset("lung", _("Lung"), -600, 1500),
    Preset("bone", _("Bone"), 400, 1800),
    Preset("liver", _("Liver"), 60, 160),
    Preset("mediastinum", _("Mediastinum"), 50, 350),
)


def ordered_instances(series: Series) -> QuerySet[Instance]:
    """The series' instances in reading order along the slice normal.

    Radiologists read axial stacks head first, sagittal right to left and
    coronal front to back, whatever order the modality numbered them in.
    Instances without a position (localisers, secondary captures) follow
    the positioned ones, so a stack stays contiguous.
    """
    position = F("slice_position")
    if _reads_against_normal(series):
        by_position = position.desc(nulls_last=True)
    else:
        by_position = position.asc(nulls_last=True)
    return series.instances.order_by(
        by_position, F("instance_number").asc(nulls_last=True), "pk"
    )


def _reads_against_normal(series: Series) -> bool:
    """Whether reading order runs against the slice normal (row x column cosines).

    In the patient coordinate system (PS3.3 C.7.6.2.1.1) +x is left, +y is
    posterior and +z is head: reading order goes up x and y, down z.
    """
    orientation = (
        series.instances.exclude(image_orientation_patient=None)
        .values_list("image_orientation_patient", flat=True)
        .first()
    )
    if not orientation or len(orientation) != 6:
        return False
    rx, ry, rz, cx, cy, cz = orientation
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    axis = max(range(3), key=lambda i: abs(normal[i]))
    ascending_coordinate = axis != 2
    return (normal[axis] > 0) != ascending_coordinate


def study_series(study: Study) -> QuerySet[Series]:
    return study.series.order_by(F("series_number").asc(nulls_last=True), "pk")


def thumbnail_instance(series: Series) -> Instance | None:
    """The middle image of the series: more telling than the first slice."""
    instances = list(ordered_instances(series).only("pk"))
    if not instances:
        return None
    middle = instances[len(instances) // 2]
    return Instance.objects.select_related("series").get(pk=middle.pk)
