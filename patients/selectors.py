"""What a patient link opens, and the access helpers of the patient's pages.

The patient has no user: the session carries the link's id after the code,
and every request loads the link again, so a revoked or expired link ends
the session at its next request. Objects come only through the helpers
below, which answer 404 (and an ACCESS_DENIED record) for anything that is
not the link's own study with its report signed.
"""

import hashlib
import time
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import Instance, Series, Study
from patients.models import PatientAccessSettings, PatientLink
from reporting.models import Report, ReportStatus

SESSION_KEY = "patient_link"


def hash_link_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def link_by_token(raw: str) -> PatientLink | None:
    """The link whose token is ``raw``, in any state; None for a stranger's guess."""
    if not raw or len(raw) > 128:
        return None
    return (
        PatientLink.objects.select_related("patient", "study")
        .filter(token_hash=hash_link_token(raw))
        .first()
    )


def session_link(request: HttpRequest) -> PatientLink | None:
    """The usable link this session opened with a code, or None."""
    opened = request.session.get(SESSION_KEY)
    if not isinstance(opened, dict) or opened.get("until", 0) <= time.time():
        return None
    link = (
        PatientLink.objects.select_related("patient", "study__patient")
        .filter(pk=opened.get("id"))
        .first()
    )
    if link is None or not link.is_usable(timezone.now()):
        return None
    return link


def default_link_days() -> int:
    row = PatientAccessSettings.objects.first()
    days = row.link_days if row else settings.NIMBUS_PATIENT_LINK_DAYS
    return min(days, settings.NIMBUS_PATIENT_LINK_MAX_DAYS)


def has_signed_report(study: Study) -> bool:
    return Report.objects.filter(study=study, status=ReportStatus.SIGNED).exists()


def links_of(study: Study) -> QuerySet[PatientLink]:
    return study.patient_links.select_related("created_by", "revoked_by")


# --- The patient's own data ------------------------------------------------------


def patient_studies(link: PatientLink) -> QuerySet[Study]:
    """The link's own study once its report is signed; drafts never show.

    Only that study, not the other studies of its Patient row: a patient ID
    is no identity across studies (an empty one, "0", "UNKNOWN"...), so a
    row may hold other people's studies.
    """
    return Study.objects.filter(
        pk=link.study_id, report__status=ReportStatus.SIGNED
    ).select_related("patient", "report")


def _refuse(
    request: HttpRequest, link: PatientLink, object_type: str, object_id: str
) -> Http404:
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        actor_username=link.audit_actor,
        outcome=Outcome.FAILURE,
        object_type=object_type,
        object_id=object_id[:128],
        study_instance_uid=object_id.split("/", 1)[0][:64],
        detail={"answer": 404, "via": "patient_link"},
    )
    return Http404(_("No such study."))


def _first_or_refuse(
    request: HttpRequest,
    link: PatientLink,
    found: QuerySet[Any],
    object_type: str,
    object_id: str,
) -> Any:
    row = found.first()
    if row is None:
        raise _refuse(request, link, object_type, object_id)
    return row


def get_patient_study(request: HttpRequest, link: PatientLink, study_uid: str) -> Study:
    found = patient_studies(link).filter(study_instance_uid=study_uid)
    return _first_or_refuse(request, link, found, "study", study_uid)  # type: ignore[no-any-return]


def get_patient_series(
    request: HttpRequest, link: PatientLink, study_uid: str, series_uid: str
) -> Series:
    found = Series.objects.select_related("study__patient").filter(
        study__in=patient_studies(link),
        study__study_instance_uid=study_uid,
        series_instance_uid=series_uid,
    )
    object_id = f"{study_uid}/{series_uid}"
    return _first_or_refuse(request, link, found, "series", object_id)  # type: ignore[no-any-return]


def get_patient_instance(
    request: HttpRequest,
    link: PatientLink,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
) -> Instance:
    found = Instance.objects.select_related("series__study__patient").filter(
        series__study__in=patient_studies(link),
        series__study__study_instance_uid=study_uid,
        series__series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
    )
    object_id = f"{study_uid}/{series_uid}/{sop_uid}"
    return _first_or_refuse(request, link, found, "instance", object_id)  # type: ignore[no-any-return]


def study_instances(study: Study) -> QuerySet[Instance]:
    return Instance.objects.filter(series__study=study).order_by(
        "series__series_number", "series_id", "instance_number", "pk"
    )
