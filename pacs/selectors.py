"""Read-only queries on the archive index."""

import datetime
from dataclasses import dataclass

from django.db.models import Case, F, Q, QuerySet, Value, When
from django.utils import timezone

from accounts.models import User
from pacs.models import ReadingStatus, Study
from reading.models import PRIORITY_RANK, ReadingGroup

# Sort keys the worklist offers, mapped to columns; anything else is ignored.
WORKLIST_SORTS = {
    "date": ("study_date", "study_time"),
    "name": ("patient__patient_name",),
    "id": ("patient__patient_id",),
    "modality": ("modalities_in_study",),
    "accession": ("accession_number",),
    "description": ("study_description",),
    "status": ("reading_status",),
    "received": ("received_at",),
    # The reading queue's order: most pressing first, then soonest due
    # (reading.StudyReading's stored rank; its indexes serve both ways).
    "priority": ("reading__priority_rank", "reading__due_at"),
}

UNSIGNED_STATES = [s for s in ReadingStatus.values if s != ReadingStatus.SIGNED]

# Queue filters of the worklist (reading/): whose studies to show.
QUEUE_MINE = "mine"
QUEUE_MY_GROUPS = "groups"
QUEUE_UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class WorklistFilter:
    patient_name: str = ""
    patient_id: str = ""
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    modality: str = ""
    status: str = ""
    queue: str = ""
    priority: str = ""
    overdue: bool = False
    sort: str = "priority"


def worklist(
    studies: QuerySet[Study], query: WorklistFilter, user: User | None = None
) -> QuerySet[Study]:
    if query.patient_name:
        # PN components are separated by ^ in storage; users type spaces.
        for part in query.patient_name.replace("^", " ").split():
            studies = studies.filter(patient__patient_name__icontains=part)
    if query.patient_id:
        studies = studies.filter(patient__patient_id__icontains=query.patient_id)
    if query.date_from:
        studies = studies.filter(study_date__gte=query.date_from)
    if query.date_to:
        studies = studies.filter(study_date__lte=query.date_to)
    if query.modality:
        modality = query.modality.upper()
        studies = studies.filter(
            Q(modalities_in_study=modality)
            | Q(modalities_in_study__startswith=modality + "\\")
            | Q(modalities_in_study__endswith="\\" + modality)
            | Q(modalities_in_study__contains="\\" + modality + "\\")
        )
    if query.status in ReadingStatus.values:
        studies = studies.filter(reading_status=query.status)
    studies = _reading_queue(studies, query, user)

    descending = query.sort.startswith("-")
    columns = WORKLIST_SORTS.get(query.sort.lstrip("-"), WORKLIST_SORTS["date"])
    # Studies without a date (or name...) go last whichever way the list is sorted.
    order = [
        F(column).desc(nulls_last=True)
        if descending
        else F(column).asc(nulls_last=True)
        for column in columns
    ]
    return studies.select_related(
        "patient",
        "reading__assigned_radiologist",
        "reading__assigned_group",
        "reading__claimed_by",
    ).order_by(*order, "-received_at")


def _reading_queue(
    studies: QuerySet[Study], query: WorklistFilter, user: User | None
) -> QuerySet[Study]:
    """Queue filters, and what the worklist shows of each study's place in it.

    Every study has its queue row (made with the study; reading 0005 filled
    in any other): the inner join lets the default page walk the queue's
    index in order instead of sorting the tenant's every study.
    """
    now = timezone.now()
    studies = studies.filter(reading__isnull=False).annotate(
        is_overdue=Case(
            When(
                Q(reading__due_at__lt=now) & ~Q(reading_status=ReadingStatus.SIGNED),
                then=Value(True),
            ),
            default=Value(False),
        ),
    )
    if query.priority in PRIORITY_RANK:
        # On the rank, the index's first column, rather than the name.
        studies = studies.filter(reading__priority_rank=PRIORITY_RANK[query.priority])
    if query.overdue:
        # is_overdue's test, spelled for indexes: the due time for the
        # queue's, the unsigned states (a list, not "not signed") for the
        # status index, which finds a small backlog among many signed.
        studies = studies.filter(
            reading__due_at__lt=now, reading_status__in=UNSIGNED_STATES
        )
    if user is None or not query.queue:
        return studies
    if query.queue == QUEUE_MINE:
        return studies.filter(
            Q(reading__assigned_radiologist=user) | Q(reading__claimed_by=user)
        )
    if query.queue == QUEUE_MY_GROUPS:
        # The ids first, not a join on members (which repeats rows) nor a
        # subquery (the planner cannot tell how many studies it keeps, and
        # sorts them all rather than walk the queue's index).
        groups = list(
            ReadingGroup.objects.filter(members=user).values_list("pk", flat=True)
        )
        return studies.filter(reading__assigned_group__in=groups)
    if query.queue == QUEUE_UNASSIGNED:
        return studies.filter(
            reading__assigned_radiologist__isnull=True,
            reading__assigned_group__isnull=True,
        )
    return studies
