"""The referrer portal's writes: audit records of what was looked at, notices read."""

from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.models import Study
from reporting.actions import do_read_report
from reporting.models import Notification, Report
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
