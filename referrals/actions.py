"""The referrer portal's writes: sharing a study with a referrer, audit records
of what was looked at, notices read."""

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.models import Study
from reporting.actions import do_read_report
from reporting.models import Notification, Report, StudyReferral
from viewer.actions import do_record_study_opened


def do_record_portal_list(request: HttpRequest, listing: str, search: str) -> None:
    """Record that the referrer listed their studies or notices (patient data)."""
    detail = {"via": "referrals", "list": listing}
    if search:
        detail["search"] = search
    do_record_event(EventType.WORKLIST_SEARCHED, request=request, detail=detail)


def do_open_shared_study(
    request: HttpRequest, user: User, study: Study, report: Report | None
) -> None:
    """Audit the study opened and, once issued, its report read; notices read."""
    do_record_study_opened(request, study)
    if report is None:
        return
    do_read_report(user, study, request=request, via="referrals")
    do_mark_notices_read(user, report)


def do_mark_notices_read(user: User, report: Report) -> int:
    # A critical finding stays waiting for its acknowledgement: reading it
    # only clears the unread badge.
    unread = Notification.objects.filter(recipient=user, report=report, read_at=None)
    return unread.update(read_at=timezone.now())


def _record_referral(
    event_type: EventType,
    request: HttpRequest | None,
    referral: StudyReferral,
    via: str,
) -> None:
    study = referral.study
    do_record_event(
        event_type,
        request=request,
        object_type="study_referral",
        object_id=str(referral.pk),
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={"referrer": referral.referrer.username, "via": via},
    )


def do_share_study_with_referrer(
    request: HttpRequest | None, study: Study, referrer: User, via: str
) -> StudyReferral:
    """Give ``referrer`` the study; sharing it twice changes nothing."""
    with transaction.atomic():
        referral, created = StudyReferral.objects.select_related(
            "study__patient", "referrer"
        ).get_or_create(study=study, referrer=referrer)
        if created:
            _record_referral(EventType.STUDY_REFERRAL_GIVEN, request, referral, via)
    return referral


def do_end_referral(
    request: HttpRequest | None, referral: StudyReferral, via: str
) -> None:
    """The referrer no longer sees the study, from their next request on."""
    with transaction.atomic():
        _record_referral(EventType.STUDY_REFERRAL_ENDED, request, referral, via)
        referral.delete()
