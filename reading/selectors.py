"""Read-only queries of the reading queue."""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Role, User
from pacs.models import Instance, ReadingStatus, Study
from reading.models import (
    AssignmentRule,
    Priority,
    ReadingClaim,
    ReadingGroup,
    ReadingSettings,
    StudyReading,
)
from reporting.models import Report, StudyReferral

# DICOM JSON keys (PS3.18 F.2) of the attributes the rules and the priority read.
INSTITUTION_NAME = "00080080"
STATION_NAME = "00081010"
REQUESTED_PROCEDURE_PRIORITY = "00401003"

# Requested Procedure Priority (0040,1003), PS3.3 C.4.11: defined terms.
DICOM_PRIORITIES = {
    "STAT": Priority.STAT,
    "HIGH": Priority.URGENT,
    "ROUTINE": Priority.ROUTINE,
    "MEDIUM": Priority.ROUTINE,
    "LOW": Priority.ROUTINE,
}
# TQ1-9 / OBR-27.6 / ORC-7.6 priority, HL7 v2.5.1 table 0485 (S, A, R, P, C, T).
HL7_PRIORITIES = {
    "S": Priority.STAT,
    "A": Priority.URGENT,
    "P": Priority.URGENT,
    "C": Priority.URGENT,
    "T": Priority.URGENT,
    "R": Priority.ROUTINE,
}

# Headers of this many instances are enough to route a study: one per series.
ROUTING_SAMPLE = 50
COUNT_DAYS_MAX = 92


def reading_settings() -> ReadingSettings:
    found, _ = ReadingSettings.objects.get_or_create(pk=1)
    return found


def reads_queue(user: User) -> bool:
    """Radiologists work the queue; hospital IT manages it without patient data."""
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.reads_studies or user.role == Role.TENANT_ADMIN)
    )


def is_tenant_admin(user: User) -> bool:
    return bool(
        user.is_authenticated and user.is_active and user.role == Role.TENANT_ADMIN
    )


def radiologists() -> QuerySet[User]:
    return User.objects.filter(role=Role.RADIOLOGIST, is_active=True).order_by(
        "username"
    )


def referrers() -> QuerySet[User]:
    return User.objects.filter(role=Role.REFERRER, is_active=True).order_by(
        "last_name", "first_name", "username"
    )


def referrals_of(study: Study) -> QuerySet[StudyReferral]:
    return StudyReferral.objects.filter(study=study).select_related("referrer")


def groups_of(user: User) -> QuerySet[ReadingGroup]:
    return ReadingGroup.objects.filter(members=user)


@dataclass(frozen=True)
class RoutingFacts:
    """What the rules look at, from the index and the stored headers."""

    modalities: frozenset[str] = frozenset()
    body_parts: frozenset[str] = frozenset()
    institutions: frozenset[str] = frozenset()
    stations: frozenset[str] = frozenset()
    calling_ae_titles: frozenset[str] = frozenset()
    dicom_priorities: tuple[str, ...] = field(default_factory=tuple)
    has_images: bool = False


def _upper(values: Iterable[object]) -> frozenset[str]:
    return frozenset(str(v).strip().upper() for v in values if v and str(v).strip())


def routing_facts(study: Study) -> RoutingFacts:
    series = list(study.series.values_list("modality", "body_part_examined"))
    headers = list(
        Instance.objects.filter(series__study=study)
        .order_by("series_id", "pk")
        .values_list(
            f"metadata__{INSTITUTION_NAME}__Value__0",
            f"metadata__{STATION_NAME}__Value__0",
            f"metadata__{REQUESTED_PROCEDURE_PRIORITY}__Value__0",
            "calling_ae_title",
        )[:ROUTING_SAMPLE]
    )
    return RoutingFacts(
        modalities=_upper([*study.modality_list, *(m for m, _ in series)]),
        body_parts=_upper(b for _, b in series),
        institutions=_upper(h[0] for h in headers),
        stations=_upper(h[1] for h in headers),
        calling_ae_titles=_upper(h[3] for h in headers),
        dicom_priorities=tuple(str(h[2]).strip().upper() for h in headers if h[2]),
        has_images=bool(headers),
    )


def rule_matches(rule: AssignmentRule, facts: RoutingFacts) -> bool:
    criteria = [
        (rule.modality, facts.modalities),
        (rule.body_part_examined, facts.body_parts),
        (rule.institution_name, facts.institutions),
        (rule.station_name, facts.stations),
        (rule.calling_ae_title, facts.calling_ae_titles),
    ]
    return all(
        not wanted.strip() or wanted.strip().upper() in found
        for wanted, found in criteria
    )


def first_matching_rule(facts: RoutingFacts) -> AssignmentRule | None:
    for rule in AssignmentRule.objects.filter(active=True).select_related(
        "radiologist", "group"
    ):
        if rule.radiologist is not None and not rule.radiologist.is_active:
            continue
        if rule_matches(rule, facts):
            return rule
    return None


def dicom_priority(facts: RoutingFacts) -> Priority | None:
    """The most pressing Requested Procedure Priority in the headers, if any."""
    found = [
        DICOM_PRIORITIES[p] for p in facts.dicom_priorities if p in DICOM_PRIORITIES
    ]
    return min(found, key=_rank) if found else None


def hl7_priority(code: str) -> Priority | None:
    return HL7_PRIORITIES.get(code.strip().upper()[:1]) if code.strip() else None


def _rank(priority: str) -> int:
    return {Priority.STAT: 0, Priority.URGENT: 1}.get(priority, 2)


def is_overdue(reading: StudyReading, study: Study) -> bool:
    return bool(
        reading.due_at
        and reading.due_at < timezone.now()
        and study.reading_status != ReadingStatus.SIGNED
    )


def queue_overview() -> QuerySet[StudyReading]:
    """Unsigned studies for hospital IT: identifiers and queue state, no names."""
    return (
        StudyReading.objects.exclude(study__reading_status=ReadingStatus.SIGNED)
        .select_related("study", "assigned_radiologist", "assigned_group", "claimed_by")
        .order_by("due_at", "study__received_at")
    )


@dataclass
class DayCounts:
    signed: int = 0
    claimed: int = 0
    overdue: int = 0


@dataclass
class CountsTable:
    """Counts per day for each radiologist (by user name) or group (by name)."""

    days: list[datetime.date]
    rows: dict[str, dict[datetime.date, DayCounts]]

    @classmethod
    def empty(
        cls, first: datetime.date, last: datetime.date, names: Iterable[str]
    ) -> "CountsTable":
        days = _days(first, last)
        return cls(days, {name: {d: DayCounts() for d in days} for name in names})

    def add(self, name: str, day: datetime.date, what: str, n: int) -> None:
        if day not in self.days:
            return
        cells = self.rows.setdefault(name, {d: DayCounts() for d in self.days})
        setattr(cells[day], what, getattr(cells[day], what) + n)

    def ordered(self) -> list[tuple[str, list[tuple[datetime.date, DayCounts]]]]:
        return [
            (name, [(day, self.rows[name][day]) for day in self.days])
            for name in sorted(self.rows)
        ]


def _days(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


def _window(
    first: datetime.date, last: datetime.date
) -> tuple[datetime.datetime, datetime.datetime]:
    zone = timezone.get_current_timezone()
    start = datetime.datetime.combine(first, datetime.time.min, tzinfo=zone)
    end = datetime.datetime.combine(
        last + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
    )
    return start, end


def _count_by_day(
    table: CountsTable,
    rows: QuerySet[Any],
    when: str,
    name: str,
    what: str,
    distinct: str = "pk",
) -> None:
    """Add ``rows`` counted per ``name`` and local day of ``when`` to ``table``.

    ``distinct`` is what one counts: a study claimed, released and claimed
    again on one day is one study claimed.
    """
    zone = timezone.get_current_timezone()
    counted = (
        rows.annotate(day=TruncDate(when, tzinfo=zone))
        .values_list(name, "day")
        .annotate(n=Count(distinct, distinct=True))
    )
    for who, day, n in counted:
        table.add(who, day, what, n)


def radiologist_counts(
    first: datetime.date, last: datetime.date, people: QuerySet[User]
) -> CountsTable:
    """Reports signed, studies claimed and studies overdue, per radiologist and day.

    A study is overdue on the day its due time passed without a signature,
    counted for whoever had it: the signer, else the reader, else the assignee.
    """
    names = {user.pk: user.username for user in people}
    table = CountsTable.empty(first, last, names.values())
    start, end = _window(first, last)
    signed = Report.objects.filter(
        signed_at__gte=start, signed_at__lt=end, signed_by__in=people
    )
    _count_by_day(table, signed, "signed_at", "signed_by__username", "signed")
    claims = ReadingClaim.objects.filter(
        claimed_at__gte=start, claimed_at__lt=end, radiologist__in=people
    )
    _count_by_day(
        table, claims, "claimed_at", "radiologist__username", "claimed", "study"
    )

    for reading, signer in _overdue(start, end):
        holder = signer or reading.claimed_by_id or reading.assigned_radiologist_id
        if holder in names:
            table.add(names[holder], timezone.localdate(reading.due_at), "overdue", 1)
    return table


def group_counts(
    first: datetime.date, last: datetime.date, groups: QuerySet[ReadingGroup]
) -> CountsTable:
    """The same counts per reading group: of the studies assigned to it."""
    names = {group.pk: group.name for group in groups}
    table = CountsTable.empty(first, last, names.values())
    start, end = _window(first, last)
    signed = Report.objects.filter(
        signed_at__gte=start,
        signed_at__lt=end,
        study__reading__assigned_group__in=groups,
    )
    _count_by_day(
        table, signed, "signed_at", "study__reading__assigned_group__name", "signed"
    )
    claims = ReadingClaim.objects.filter(
        claimed_at__gte=start, claimed_at__lt=end, group__in=groups
    )
    _count_by_day(table, claims, "claimed_at", "group__name", "claimed", "study")

    for reading, _signer in _overdue(start, end):
        if reading.assigned_group_id in names:
            day = timezone.localdate(reading.due_at)
            table.add(names[reading.assigned_group_id], day, "overdue", 1)
    return table


def _overdue(
    start: datetime.datetime, end: datetime.datetime
) -> list[tuple[StudyReading, int | None]]:
    """Readings due in the window (and already past) that were not signed in time."""
    now = timezone.now()
    late = (
        StudyReading.objects.filter(due_at__gte=start, due_at__lt=min(end, now))
        .filter(
            Q(study__report__isnull=True)
            | Q(study__report__signed_at__isnull=True)
            | Q(study__report__signed_at__gt=F("due_at"))
        )
        .values_list("pk", "study__report__signed_by")
    )
    signers = dict(late)
    readings = StudyReading.objects.in_bulk(list(signers))
    return [(readings[pk], signers[pk]) for pk in signers]
