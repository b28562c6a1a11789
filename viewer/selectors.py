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
    """The series' instances along the slice normal, else by instance number.

    Instances without a position (localisers, secondary captures) follow
    the positioned ones, so a stack stays contiguous.
    """
    return series.instances.order_by(
        F("slice_position").asc(nulls_last=True),
        F("instance_number").asc(nulls_last=True),
        "pk",
    )


def study_series(study: Study) -> QuerySet[Series]:
    return study.series.order_by(F("series_number").asc(nulls_last=True), "pk")


def thumbnail_instance(series: Series) -> Instance | None:
    """The middle image of the series: more telling than the first slice."""
    instances = list(ordered_instances(series).only("pk"))
    if not instances:
        return None
    middle = instances[len(instances) // 2]
    return Instance.objects.select_related("series").get(pk=middle.pk)
