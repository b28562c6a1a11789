"""The reading queue: priority, due time, assignment and claims of studies.

A study's place in the queue lives beside it (``StudyReading``), not in the
archive index: ingest writes the index at speed, the queue changes by hand.
"""

import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from pacs.models import Study


class Priority(models.TextChoices):
    STAT = "stat", _("STAT")
    URGENT = "urgent", _("Urgent")
    ROUTINE = "routine", _("Routine")


DUE_AT_MIN = datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC)
DUE_AT_MAX = datetime.datetime(9000, 1, 1, tzinfo=datetime.UTC)

# Most pressing first: the worklist sorts on this rank, then on the due time.
PRIORITY_RANK = {Priority.STAT: 0, Priority.URGENT: 1, Priority.ROUTINE: 2}


class PrioritySource(models.TextChoices):
    DEFAULT = "default", _("Default")
    ORDER = "order", _("HL7 order")
    DICOM = "dicom", _("DICOM header")
    MANUAL = "manual", _("Set by hand")


class ReadingSettings(models.Model):
    """One row per tenant: how long each priority may wait for its report."""

    stat_minutes = models.PositiveIntegerField(
        _("STAT turnaround (minutes)"),
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(60 * 24 * 90)],
    )
    urgent_minutes = models.PositiveIntegerField(
        _("urgent turnaround (minutes)"),
        default=4 * 60,
        validators=[MinValueValidator(1), MaxValueValidator(60 * 24 * 90)],
    )
    routine_minutes = models.PositiveIntegerField(
        _("routine turnaround (minutes)"),
        default=48 * 60,
        validators=[MinValueValidator(1), MaxValueValidator(60 * 24 * 90)],
    )

    class Meta:
        verbose_name = _("turnaround times")
        verbose_name_plural = _("turnaround times")

    def __str__(self) -> str:
        return str(_("Turnaround times"))

    def turnaround(self, priority: str) -> datetime.timedelta:
        minutes = {
            Priority.STAT: self.stat_minutes,
            Priority.URGENT: self.urgent_minutes,
        }.get(priority, self.routine_minutes)
        return datetime.timedelta(minutes=minutes)


class ReadingGroup(models.Model):
    """A named group of the tenant's radiologists that studies are assigned to."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("members"),
        related_name="reading_groups",
        blank=True,
        limit_choices_to={"role": "radiologist"},
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("reading group")
        verbose_name_plural = _("reading groups")

    def __str__(self) -> str:
        return self.name


class AssignmentRule(models.Model):
    """Where a new study goes. Rules are tried in order; the first match wins.

    An empty criterion matches anything; the others compare without case.
    """

    position = models.PositiveIntegerField(_("order"), default=0)
    name = models.CharField(_("name"), max_length=100)
    active = models.BooleanField(_("active"), default=True)
    modality = models.CharField(_("modality"), max_length=16, blank=True)
    body_part_examined = models.CharField(
        _("body part examined"), max_length=64, blank=True
    )
    institution_name = models.CharField(
        _("institution name"), max_length=64, blank=True
    )
    station_name = models.CharField(_("station name"), max_length=16, blank=True)
    calling_ae_title = models.CharField(
        _("sending AE title"), max_length=16, blank=True
    )
    radiologist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("radiologist"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        limit_choices_to={"role": "radiologist"},
    )
    group = models.ForeignKey(
        ReadingGroup,
        verbose_name=_("reading group"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="rules",
    )

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = _("assignment rule")
        verbose_name_plural = _("assignment rules")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(radiologist__isnull=False)
                | models.Q(group__isnull=False),
                name="rule_assigns_someone",
            )
        ]

    def __str__(self) -> str:
        return self.name


class StudyReading(models.Model):
    """A study's place in the reading queue."""

    study = models.OneToOneField(
        Study, on_delete=models.CASCADE, primary_key=True, related_name="reading"
    )
    priority = models.CharField(
        _("priority"),
        max_length=8,
        choices=Priority.choices,
        default=Priority.ROUTINE,
        db_index=True,
    )
    # The worklist's sort key, kept by PostgreSQL itself: every writer
    # (actions, admin, QuerySet.update, bulk SQL) leaves it right, and the
    # queue's indexes below lead with it.
    priority_rank = models.GeneratedField(
        expression=models.Case(
            *(
                models.When(priority=p.value, then=models.Value(r))
                for p, r in PRIORITY_RANK.items()
            ),
            default=models.Value(PRIORITY_RANK[Priority.ROUTINE]),
        ),
        output_field=models.SmallIntegerField(),
        db_persist=True,
    )
    priority_source = models.CharField(
        max_length=8, choices=PrioritySource.choices, default=PrioritySource.DEFAULT
    )
    due_at = models.DateTimeField(_("due"), null=True, blank=True, db_index=True)
    # Set by hand: a later priority change keeps it.
    due_at_manual = models.BooleanField(default=False)
    assigned_radiologist = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_readings",
    )
    assigned_group = models.ForeignKey(
        ReadingGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="readings",
    )
    assigned_by_rule = models.ForeignKey(
        AssignmentRule,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # False until the rules ran on a study with images: an order from the
    # RIS is routed again when its first images arrive.
    routed_with_images = models.BooleanField(default=False)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="claimed_readings",
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The worklist's default order (most pressing, then soonest due)
            # and its reverse: a page walks one of these and stops after 51
            # rows, instead of sorting every study of the tenant.
            models.Index(
                fields=["priority_rank", "due_at"], name="reading_queue_order"
            ),
            models.Index(
                models.F("priority_rank").desc(nulls_last=True),
                models.F("due_at").desc(nulls_last=True),
                name="reading_queue_order_reverse",
            ),
        ]
        constraints = [
            # The form keeps due times near the study's arrival; this keeps
            # any other writer from storing one psycopg cannot read back
            # (years before 1 AD), which breaks every worklist of the tenant.
            models.CheckConstraint(
                condition=models.Q(due_at__isnull=True)
                | models.Q(due_at__gte=DUE_AT_MIN, due_at__lt=DUE_AT_MAX),
                name="reading_due_at_in_reach",
            )
        ]
        verbose_name = _("study in the reading queue")
        verbose_name_plural = _("studies in the reading queue")

    def __str__(self) -> str:
        return f"reading of {self.study_id}"


class ReadingClaim(models.Model):
    """One claim of a study, kept after its end for the daily counts."""

    class Ending(models.TextChoices):
        RELEASED = "released", _("Released")
        TAKEN_BACK = "taken_back", _("Taken back")
        SIGNED = "signed", _("Report signed")

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    radiologist = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    # The group the study was assigned to when claimed: counted for it.
    group = models.ForeignKey(
        ReadingGroup, null=True, blank=True, on_delete=models.SET_NULL
    )
    claimed_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ending = models.CharField(max_length=16, choices=Ending.choices, blank=True)

    class Meta:
        ordering = ["-claimed_at"]

    def __str__(self) -> str:
        return f"claim of {self.study_id} by {self.radiologist_id}"
