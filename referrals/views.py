"""The referring clinician's portal: their shared studies, reports and images.

Every page is for referrers only (anyone else gets the 404 an outsider
gets), and every study is loaded through ``pacs.access``, which admits
exactly the studies shared with the referrer.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from accounts.models import User
from pacs.access import denied, get_instance_for_user, get_study_for_user
from referrals import actions, selectors
from reporting.models import NotificationKind
from reporting.selectors import report_state, state_for
from viewer.actions import do_record_frames_viewed
from viewer.cache import cached_render
from viewer.frame_query import FrameQuery
from viewer.views import png_response

PAGE_SIZE = 25
# Key images on the study page: large enough to read, small enough to list.
KEY_IMAGE_SIZE = 384

View = Callable[..., HttpResponse]


def referrer_view(view: View) -> View:
    """Signed in as a referrer, or the 404 an outsider gets (audited)."""

    @login_required
    @require_GET
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not selectors.is_referrer(user):  # type: ignore[arg-type]
            raise denied(user, "referrals", request.path[:128], _("No such page."))  # type: ignore[arg-type]
        return view(request, user, *args, **kwargs)

    return wrapper


@referrer_view
def home(request: HttpRequest, user: User) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:100]
    studies = selectors.portal_studies(user, search)
    page = Paginator(studies, PAGE_SIZE).get_page(request.GET.get("page"))
    actions.do_record_portal_list(request, "studies", search)
    return render(
        request,
        "referrals/home.html",
        {"page": page, "search": search, **portal_context(request, user)},
    )


@referrer_view
def notices(request: HttpRequest, user: User) -> HttpResponse:
    page = Paginator(selectors.notices_for(user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    actions.do_record_portal_list(request, "notifications", "")
    return render(
        request,
        "referrals/notices.html",
        {"page": page, **portal_context(request, user)},
    )


@referrer_view
def study(request: HttpRequest, user: User, study_uid: str) -> HttpResponse:
    study = get_study_for_user(user, study_uid)
    report = selectors.issued_report(study)
    actions.do_open_shared_study(request, user, study, report)
    state = state_for(user, report_state(report)) if report else None
    waiting = report is not None and selectors.waiting_critical(user, report)
    return render(
        request,
        "referrals/study.html",
        {
            "study": study,
            "report": report,
            "state": state,
            "addenda": selectors.signed_addenda(report) if report else [],
            "key_images": key_images(study_uid, state),
            "waiting_critical": waiting,
            "acknowledged": report and selectors.critical_acknowledgement(report),
            **portal_context(request, user),
        },
    )


@referrer_view
def key_image(
    request: HttpRequest, user: User, study_uid: str, number: int
) -> HttpResponse:
    """A key image cited in the issued report, at the window it was read at."""
    study = get_study_for_user(user, study_uid)
    reference = selectors.cited_image(study, number)
    if reference is None:
        raise denied(user, "key_image", f"{study_uid}/{number}", _("No such image."))
    instance = get_instance_for_user(
        user, study_uid, reference.series_instance_uid, reference.sop_instance_uid
    )
    if not 1 <= reference.frame_number <= max(instance.number_of_frames, 1):
        raise Http404(_("No such frame."))

    window = None
    if reference.window_center is not None and reference.window_width:
        window = (reference.window_center, reference.window_width)
    query = FrameQuery(window=window, size_step=KEY_IMAGE_SIZE)
    rendered = cached_render(instance, reference.frame_number - 1, query)
    do_record_frames_viewed(request, instance.series)
    return png_response(rendered)


def key_images(study_uid: str, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The report's cited images, each with its picture and its viewer link."""
    if state is None:
        return []
    return [
        {
            **reference,
            "image_url": reverse(
                "referrals:key_image", args=[study_uid, reference["number"]]
            ),
        }
        for reference in state["image_references"]
    ]


def portal_context(request: HttpRequest, user: User) -> dict[str, Any]:
    """The unread badge and what the live-notice script needs, on every page."""
    return {
        "unread": selectors.unread_count(user),
        "portal_config": {
            "socketPath": "/ws/referrals/notices/",
            "studyUrl": reverse("referrals:study", args=["__study__"]),
            "studySlot": "__study__",
            "labels": notice_labels(),
        },
    }


def notice_labels() -> dict[str, str]:
    """Text the live-notice script shows, translated here."""
    return {
        NotificationKind.REPORT_PRELIMINARY: _("New preliminary report"),
        NotificationKind.REPORT_SIGNED: _("New signed report"),
        NotificationKind.ADDENDUM_SIGNED: _("New addendum to a report"),
        NotificationKind.CRITICAL_FINDING: _("Critical finding: acknowledge it"),
        "open": _("Open the study"),
    }
