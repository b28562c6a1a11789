"""Pages and buttons of the reading queue: claim, release, assign, priority, counts."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.access import denied
from pacs.paging import get_page
from reading import actions, selectors
from reading.access import get_queued_study
from reading.forms import AssignForm, CountsForm, PriorityForm, ReferralForm
from reading.models import ReadingGroup
from referrals.actions import do_end_referral, do_share_study_with_referrer

PAGE_SIZE = 100


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _refuse(request: HttpRequest, what: str, reason: str) -> PermissionDenied:
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        outcome=Outcome.FAILURE,
        object_type="reading_queue",
        object_id=what[:128],
        detail={"answer": 403, "reason": reason},
    )
    return PermissionDenied(reason)


def _back(request: HttpRequest, study_instance_uid: str = "") -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    if study_instance_uid:
        return redirect("reading:study", study_instance_uid)
    return redirect("pacs:worklist")


@login_required
@require_POST
def claim(request: HttpRequest, study_instance_uid: str) -> HttpResponse:
    user = _user(request)
    study = get_queued_study(user, study_instance_uid)
    if not user.reads_studies:
        raise _refuse(request, study_instance_uid, "only radiologists claim")
    try:
        actions.do_claim_study(request, user, study)
    except actions.ClaimRefused as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, _("You are reading this study."))
    return _back(request)


@login_required
@require_POST
def release(request: HttpRequest, study_instance_uid: str) -> HttpResponse:
    user = _user(request)
    study = get_queued_study(user, study_instance_uid)
    if selectors.is_tenant_admin(user):
        actions.do_take_back_study(request, user, study)
        messages.success(request, _("The study is free to claim again."))
    elif actions.do_release_study(request, user, study):
        messages.success(request, _("You released this study."))
    else:
        messages.info(request, _("You were not reading this study."))
    return _back(request)


@login_required
def study(request: HttpRequest, study_instance_uid: str) -> HttpResponse:
    """A study's place in the queue, with the forms that change it."""
    user = _user(request)
    found = get_queued_study(user, study_instance_uid)
    reading = actions.reading_of(found)
    assign_form = AssignForm(
        initial={
            "radiologist": reading.assigned_radiologist_id,
            "group": reading.assigned_group_id,
        }
    )
    priority_form = PriorityForm(
        initial={
            "priority": reading.priority,
            # A due time set by hand is kept by saving the form unchanged; a
            # derived one is left out, so a new priority derives its own.
            "due_at": timezone.localtime(reading.due_at)
            if reading.due_at and reading.due_at_manual
            else None,
        },
        arrived_at=found.received_at,
    )
    referral_form = ReferralForm()
    if request.method == "POST":
        if "assign" in request.POST:
            assign_form = AssignForm(request.POST)
            if assign_form.is_valid():
                actions.do_assign_study(
                    request,
                    user,
                    found,
                    assign_form.cleaned_data["radiologist"],
                    assign_form.cleaned_data["group"],
                )
                messages.success(request, _("Assignment saved."))
                return _back(request, study_instance_uid)
        elif "share_referrer" in request.POST:
            referral_form = ReferralForm(request.POST)
            if referral_form.is_valid():
                referrer = referral_form.cleaned_data["referrer"]
                do_share_study_with_referrer(request, found, referrer, via="reading")
                messages.success(
                    request,
                    _("%(name)s sees this study and its report now.")
                    % {"name": referrer.get_full_name() or referrer.username},
                )
                return _back(request, study_instance_uid)
        else:
            priority_form = PriorityForm(request.POST, arrived_at=found.received_at)
            if priority_form.is_valid():
                actions.do_set_priority(
                    request,
                    user,
                    found,
                    priority_form.cleaned_data["priority"],
                    priority_form.cleaned_data["due_at"],
                )
                messages.success(request, _("Priority saved."))
                return _back(request, study_instance_uid)
    if user.reads_studies:
        do_record_event(
            EventType.STUDY_OPENED,
            request=request,
            object_type="reading",
            object_id=found.study_instance_uid,
            patient_id=found.patient.patient_id,
            study_instance_uid=found.study_instance_uid,
        )
    return render(
        request,
        "reading/study.html",
        {
            "study": found,
            "reading": reading,
            "overdue": selectors.is_overdue(reading, found),
            "assign_form": assign_form,
            "priority_form": priority_form,
            "referral_form": referral_form,
            "referrals": selectors.referrals_of(found),
            # Hospital IT manages the queue without patient data.
            "show_patient": user.reads_studies,
        },
    )


@login_required
@require_POST
def end_referral(
    request: HttpRequest, study_instance_uid: str, referral_id: int
) -> HttpResponse:
    """The referrer no longer sees the study (radiologists and hospital IT)."""
    found = get_queued_study(_user(request), study_instance_uid)
    referral = selectors.referrals_of(found).filter(pk=referral_id).first()
    if referral is None:
        raise denied(
            _user(request),
            "study_referral",
            f"{study_instance_uid}/{referral_id}",
            _("No such referral."),
        )
    referral.study = found
    do_end_referral(request, referral, via="reading")
    messages.success(
        request,
        _("%(name)s no longer sees this study.")
        % {"name": referral.referrer.get_full_name() or referral.referrer.username},
    )
    return _back(request, study_instance_uid)


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """Hospital IT's view of the open queue: who holds what, and what is late."""
    user = _user(request)
    if not selectors.is_tenant_admin(user):
        raise _refuse(request, "queue", "only tenant administrators")
    page = get_page(selectors.queue_overview(), request.GET.get("page"), PAGE_SIZE)
    do_record_event(
        EventType.WORKLIST_SEARCHED,
        request=request,
        object_type="reading_queue",
        detail={"page": page.number},
    )
    return render(request, "reading/queue.html", {"page": page, "now": timezone.now()})


@login_required
def counts(request: HttpRequest) -> HttpResponse:
    """Daily counts: everyone's for hospital IT, a radiologist's own and groups'."""
    user = _user(request)
    if not selectors.reads_queue(user):
        raise _refuse(request, "counts", "not a radiologist or tenant administrator")
    form = CountsForm(request.GET or None)
    first, last = form.window()
    if selectors.is_tenant_admin(user):
        people = selectors.radiologists()
        groups = ReadingGroup.objects.all()
    else:
        people = selectors.radiologists().filter(pk=user.pk)
        groups = selectors.groups_of(user)
    return render(
        request,
        "reading/counts.html",
        {
            "form": form,
            "first": first,
            "last": last,
            "radiologists": selectors.radiologist_counts(first, last, people).ordered(),
            "groups": selectors.group_counts(first, last, groups).ordered(),
        },
    )
