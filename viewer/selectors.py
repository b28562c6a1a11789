"""Read-only queries for the viewer: images in reading order, presets, priors."""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import F, QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from pacs.models import Instance, Series, Study
from viewer.models import Annotation, KeyImage, WindowPreset


@dataclass(frozen=True)
class Preset:
    """A named window (center, width) in Hounsfield units."""

    key: str
    label: str | Promise
    center: float
    width: float


# Built-in CT windows of the MPR page; the stack viewer reads the tenant's
# WindowPreset rows instead (see window_presets).
CT_PRESETS = (
    Preset("brain", _("Brain"), 40, 80),
    Preset("soft_tissue", _("Soft tissue"), 40, 400),
    Preset("lung", _("Lung"), -600, 1500),
    Preset("bone", _("Bone"), 400, 1800),
    Preset("liver", _("Liver"), 60, 160),
    Preset("mediastinum", _("Mediastinum"), 50, 350),
)


def window_presets(modalities: Iterable[str]) -> dict[str, list[dict[str, object]]]:
    """The tenant's window presets for each of ``modalities``, in toolbar order."""
    presets: dict[str, list[dict[str, object]]] = {m: [] for m in modalities}
    for preset in WindowPreset.objects.filter(modality__in=presets):
        presets[preset.modality].append(
            {
                "key": f"preset-{preset.pk}",
                "label": preset.label,
                "center": preset.window_center,
                "width": preset.window_width,
            }
        )
    return presets


def latest_prior(study: Study, readable: QuerySet[Study]) -> Study | None:
    """The same patient's most recent earlier study among ``readable`` ones."""
    if study.study_date is None:
        return None
    return (
        readable.filter(patient=study.patient, study_date__lt=study.study_date)
        .exclude(pk=study.pk)
        .order_by("-study_date", "-study_time", "-pk")
        .first()
    )


def user_annotations(user: User, study: Study) -> QuerySet[Annotation]:
    return Annotation.objects.filter(author=user, instance__series__study=study)


def study_key_images(study: Study) -> QuerySet[KeyImage]:
    return KeyImage.objects.filter(instance__series__study=study).select_related(
        "instance__series"
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
    """The middle image of the series: more telling than the first slice.

    Picked by the database (a count, then one row at that offset), without
    the stored header: loading every row with its header cost 212 ms per
    thumbnail of a 500-slice series.
    """
    ordered = ordered_instances(series).defer("metadata")
    count = ordered.count()
    if not count:
        return None
    middle = ordered[count // 2]
    middle.series = series  # the render cache key names it; no second query
    return middle
