"""Read-only queries on the archive index."""

import datetime
from dataclasses import dataclass

from django.db.models import F, Q, QuerySet

from pacs.models import ReadingStatus, Study

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
}


@dataclass(frozen=True)
class WorklistFilter:
    patient_name: str = ""
    patient_id: str = ""
    date_from: datetime.date | None = None
    date_to: datetime.date | None = None
    modality: str = ""
    status: str = ""
    sort: str = "-date"


def worklist(studies: QuerySet[Study], query: WorklistFilter) -> QuerySet[Study]:
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

    descending = query.sort.startswith("-")
    columns = WORKLIST_SORTS.get(query.sort.lstrip("-"), WORKLIST_SORTS["date"])
    # Studies without a date (or name...) go last whichever way the list is sorted.
    order = [
        F(column).desc(nulls_last=True)
        if descending
        else F(column).asc(nulls_last=True)
        for column in columns
    ]
    return studies.select_related("patient").order_by(*order, "-received_at")
