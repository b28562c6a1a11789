"""Second opinions: request one, list both directions, the thread, revoke.

Views parse, authorise through collab.access or pacs.access, call one
action and render. The study of an incoming share is never loaded from
this tenant's schema: it is the owner's, read by collab.access.
"""

from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from audit.actions import do_record_event
from audit.models import EventType
from collab import actions, selectors
from collab.access import get_outgoing_share, get_share_for_party, shared_study
from collab.forms import CommentForm, SecondOpinionRequestForm
from collab.models import SecondOpinion, Side
from pacs.access import denied, get_study_for_user
from pacs.models import Study


def _get_readable_study(request: HttpRequest, study_uid: str) -> Study:
    """The tenant's own study, for a clinical reader only (others: 404)."""
    user = request.user
    if not user.reads_studies:  # type: ignore[union-attr]
        raise denied(user, "study", study_uid, _("No such study."))  # type: ignore[arg-type]
    return get_study_for_user(user, study_uid)  # type: ignore[arg-type]


@login_required
def request_second_opinion(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = _get_readable_study(request, study_uid)
    groups = selectors.directory(request.tenant)  # type: ignore[attr-defined]
    form = SecondOpinionRequestForm(request.POST or None, groups=groups)
    if request.method == "POST" and form.is_valid():
        share = actions.do_request_second_opinion(
            request,
            study,
            form.cleaned_data["group"],
            form.cleaned_data["note"],
            form.expires_at(),
        )
        messages.success(request, _("The second opinion was requested."))
        return redirect("collab:thread", share.key)
    return render(
        request,
        "collab/request.html",
        {"form": form, "study": study, "has_groups": groups.exists()},
    )


@login_required
def second_opinions(request: HttpRequest) -> HttpResponse:
    user = request.user
    if not (user.is_active and user.reads_studies):  # type: ignore[union-attr]
        # Only clinical readers take part: for anyone else an empty page
        # would claim this tenant asked for no second opinion.
        raise denied(user, "second_opinions", "", _("No such page."))  # type: ignore[arg-type]
    tenant = request.tenant  # type: ignore[attr-defined]
    outgoing = selectors.outgoing_shares(tenant, request.user)  # type: ignore[arg-type]
    incoming = selectors.incoming_shares(tenant, request.user)  # type: ignore[arg-type]
    do_record_event(
        EventType.WORKLIST_SEARCHED,
        request=request,
        detail={
            "via": "second-opinions",
            "outgoing": len(outgoing),
            "incoming": len(incoming),
        },
    )
    return render(
        request,
        "collab/second_opinions.html",
        {"outgoing": outgoing, "incoming": incoming},
    )


def _thread_page(
    request: HttpRequest,
    share: SecondOpinion,
    side: str,
    form: CommentForm,
    status: int = 200,
) -> HttpResponse:
    context = {
        "share": share,
        "side": side,
        "state": share.state_at(timezone.now()),
        "is_open": share.is_open(timezone.now()),
        "study": shared_study(share),
        "comments": list(share.comments.all()),
        "form": form,
        "owner_side": side == Side.OWNER,
    }
    return render(request, "collab/thread.html", context, status=status)


@login_required
def thread(request: HttpRequest, share_key: UUID) -> HttpResponse:
    share, side = get_share_for_party(request, share_key)
    actions.do_read_thread(request, share, side)
    return _thread_page(request, share, side, CommentForm())


@require_POST
@login_required
def post_comment(request: HttpRequest, share_key: UUID) -> HttpResponse:
    share, side = get_share_for_party(request, share_key)
    form = CommentForm(request.POST)
    if not share.is_open(timezone.now()):
        # Only the owner still sees a closed share; its thread is read-only.
        form.add_error(None, _("This second opinion has ended; the thread is closed."))
        return _thread_page(request, share, side, form, status=409)
    if not form.is_valid():
        return _thread_page(request, share, side, form, status=400)
    actions.do_post_comment(request, share, side, form.cleaned_data["body"])
    return redirect("collab:thread", share.key)


@require_POST
@login_required
def revoke(request: HttpRequest, share_key: UUID) -> HttpResponse:
    share = get_outgoing_share(request, share_key)
    try:
        actions.do_revoke_second_opinion(request, share.pk)
    except actions.ShareNotOpen:
        messages.error(request, _("This second opinion had already ended."))
    else:
        messages.success(request, _("Access for the other tenant ended now."))
    return redirect("collab:thread", share.key)
