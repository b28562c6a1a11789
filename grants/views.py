"""The tenant administrator's grant page and the helpdesk's list of grants held."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from grants import actions, selectors
from grants.forms import GrantForm
from grants.models import HelpdeskGrant


def _require_role(request: HttpRequest, role: Role) -> None:
    if getattr(request.user, "role", None) != role:
        do_record_event(
            EventType.ACCESS_DENIED,
            request=request,
            outcome=Outcome.FAILURE,
            object_type="helpdesk_grant",
            detail={"answer": 403, "reason": f"not {role}"},
        )
        raise PermissionDenied


@login_required
def manage(request: HttpRequest) -> HttpResponse:
    _require_role(request, Role.TENANT_ADMIN)
    form = GrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        grant = actions.do_grant_helpdesk_access(
            request,
            request.user,  # type: ignore[arg-type]
            form.cleaned_data["helpdesk_user"],
            form.cleaned_data["study_row"],
            form.cleaned_data["hours"],
            form.cleaned_data["reason"],
        )
        messages.success(
            request,
            _("Access granted to %(user)s until %(until)s.")
            % {
                "user": grant.helpdesk_user.username,
                "until": date_format(
                    timezone.localtime(grant.expires_at), "SHORT_DATETIME_FORMAT"
                ),
            },
        )
        return redirect("grants:manage")
    return render(
        request,
        "grants/manage.html",
        {"form": form, "rows": _rows(selectors.all_grants()[:200])},
    )


@login_required
@require_POST
def revoke(request: HttpRequest, grant_id: int) -> HttpResponse:
    _require_role(request, Role.TENANT_ADMIN)
    try:
        actions.do_revoke_helpdesk_grant(request, request.user, grant_id)  # type: ignore[arg-type]
    except (HelpdeskGrant.DoesNotExist, actions.GrantNotActive):
        messages.info(request, _("This grant had ended already."))
    else:
        messages.success(request, _("Access revoked."))
    return redirect("grants:manage")


@login_required
def held(request: HttpRequest) -> HttpResponse:
    """The grants this helpdesk user holds, active ones with a way in."""
    _require_role(request, Role.HELPDESK)
    return render(
        request,
        "grants/held.html",
        {"rows": _rows(selectors.grants_held_by(request.user)[:200])},  # type: ignore[arg-type]
    )


def _rows(grants: object) -> list[dict[str, object]]:
    now = timezone.now()
    return [
        {"grant": grant, "active": grant.is_active(now)}
        for grant in grants  # type: ignore[attr-defined]
    ]
