"""The helpdesk console (bare host) and the MFA reset approvals (tenant host)."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Role, User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from helpdesk import actions, selectors
from helpdesk.forms import MfaResetForm, UserSearchForm
from tenants.models import Tenant


def _require_helpdesk(request: HttpRequest) -> None:
    """Platform helpdesk staff only; anyone else is refused, and audited."""
    if getattr(request.user, "role", None) != Role.HELPDESK:
        actions.do_record_helpdesk_denial(request, "not helpdesk")
        raise PermissionDenied
    if connection.schema_name != "public":
        raise Http404


def _tenant(request: HttpRequest, schema: str) -> Tenant:
    try:
        return selectors.tenant_or_404(schema)
    except Http404:
        actions.do_record_helpdesk_denial(request, "unknown tenant", None, schema)
        raise


@contextmanager
def _audited_404(
    request: HttpRequest, tenant: Tenant, what: str, object_id: int
) -> Iterator[None]:
    """A user or remote AE the tenant does not have: 404, and audited."""
    try:
        yield
    except Http404:
        actions.do_record_helpdesk_denial(
            request, f"unknown {what}", tenant, str(object_id)
        )
        raise


@login_required
@require_GET
def console(request: HttpRequest) -> HttpResponse:
    _require_helpdesk(request)
    form = UserSearchForm(request.GET if "q" in request.GET else None)
    hits = (
        actions.do_search_users(request, form.cleaned_data["q"])
        if form.is_valid()
        else None
    )
    return render(
        request,
        "helpdesk/console.html",
        {
            "form": form,
            "hits": hits,
            "summaries": actions.do_view_overview(request),
        },
    )


@login_required
@require_GET
def tenant(request: HttpRequest, schema: str) -> HttpResponse:
    _require_helpdesk(request)
    state = actions.do_view_tenant(request, _tenant(request, schema))
    context = {
        "state": state,
        "stuck_minutes": settings.NIMBUS_HELPDESK_STUCK_MINUTES,
    }
    return render(request, "helpdesk/tenant.html", context)


@login_required
@require_GET
def user(request: HttpRequest, schema: str, user_id: int) -> HttpResponse:
    _require_helpdesk(request)
    found = _tenant(request, schema)
    with _audited_404(request, found, "user", user_id):
        view = actions.do_view_user(request, found, user_id)
    return render(
        request,
        "helpdesk/user.html",
        {"tenant": found, "view": view, "form": MfaResetForm()},
    )


@login_required
@require_POST
def request_mfa_reset(request: HttpRequest, schema: str, user_id: int) -> HttpResponse:
    _require_helpdesk(request)
    found = _tenant(request, schema)
    form = MfaResetForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("reason", []):
            messages.error(request, error)
        return redirect("helpdesk:user", schema=schema, user_id=user_id)
    try:
        with _audited_404(request, found, "user", user_id):
            actions.do_request_mfa_reset(
                request, found, user_id, form.cleaned_data["reason"]
            )
    except actions.ResetPending:
        messages.info(request, _("This user has an MFA reset waiting for approval."))
    else:
        messages.success(
            request,
            _("MFA reset requested: an administrator of %(tenant)s must approve it.")
            % {"tenant": found.name},
        )
    return redirect("helpdesk:user", schema=schema, user_id=user_id)


@login_required
@require_POST
def echo_remote_ae(request: HttpRequest, schema: str, ae_id: int) -> HttpResponse:
    _require_helpdesk(request)
    found = _tenant(request, schema)
    with _audited_404(request, found, "remote AE", ae_id):
        check = actions.do_echo_remote_ae(request, found, ae_id)
    text = _("C-ECHO to %(ae)s: %(result)s") % {
        "ae": check.ae_title,
        "result": check.result,
    }
    (messages.success if check.ok else messages.error)(request, text)
    return redirect("helpdesk:tenant", schema=schema)


# --- Tenant host: the tenant administrator decides ------------------------------


def _require_tenant_admin(request: HttpRequest) -> User:
    if getattr(request.user, "role", None) != Role.TENANT_ADMIN:
        do_record_event(
            EventType.ACCESS_DENIED,
            request=request,
            outcome=Outcome.FAILURE,
            object_type="mfa_reset",
            detail={"answer": 403, "reason": "not tenant_admin"},
        )
        raise PermissionDenied
    return request.user  # type: ignore[return-value]


@login_required
@require_GET
def approvals(request: HttpRequest) -> HttpResponse:
    _require_tenant_admin(request)
    return render(
        request,
        "helpdesk/approvals.html",
        {
            "pending": selectors.open_resets(),
            "decided": selectors.recent_decided_resets()[:50],
        },
    )


@login_required
@require_POST
def decide(request: HttpRequest, reset_id: int, approve: bool) -> HttpResponse:
    admin = _require_tenant_admin(request)
    decision = actions.do_approve_mfa_reset if approve else actions.do_refuse_mfa_reset
    try:
        reset = decision(request, admin, reset_id)
    except actions.ResetNotOpen:
        messages.info(request, _("This request was decided already or has expired."))
    except actions.OwnRequest:
        messages.error(
            request,
            _("You cannot decide on your own request or your own account."),
        )
    else:
        if approve:
            messages.success(
                request,
                _(
                    "Second factors of %(user)s removed: they set up a new "
                    "authenticator app at their next sign-in."
                )
                % {"user": reset.user.username},
            )
        else:
            messages.info(request, _("MFA reset refused."))
    return redirect("helpdesk_approvals:list")
