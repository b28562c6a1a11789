"""The helpdesk console's looks and actions, each one audited.

Every look is recorded in the public trail (where the helpdesk's audit
searches are) and, when it concerns one tenant, in that tenant's trail too,
so a hospital sees who of the platform looked at its users and services.
The records in a tenant's trail name the helpdesk user without an id: ids
there point into the tenant's own users.
"""

import datetime
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.actions import close_sockets_on_commit
from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from helpdesk import selectors
from helpdesk.echo import echo
from helpdesk.models import ConnectionCheck, MfaResetRequest, ResetState
from tenants.models import Tenant

# TODO(#7): event types of their own (helpdesk console read, MFA reset
# requested/approved/refused/expired, connection test) once the audit owner
# adds them with a migration; until then the 6xx "helpdesk reads" type and
# "user changed", told apart by detail["action"].
HELPDESK_READ = EventType.AUDIT_SEARCHED
MFA_RESET = EventType.USER_CHANGED


class ResetNotOpen(Exception):
    """Decided already, or expired."""


class ResetPending(Exception):
    """The user has an open MFA reset request already."""


class OwnRequest(Exception):
    """The approver asked for this reset, or it is the approver's own account."""


@dataclass(frozen=True)
class PlatformActor:
    """A helpdesk user as the actor of a record in a tenant's trail."""

    username: str
    pk: None = None


def _record_both(
    event_type: EventType,
    request: HttpRequest,
    tenant: Tenant | None,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    object_type: str = "",
    object_id: str = "",
    detail: dict[str, Any],
) -> None:
    """One record in the public trail and, for a tenant, one in the tenant's."""
    fields: dict[str, Any] = {
        "outcome": outcome,
        "object_type": object_type,
        "object_id": object_id,
    }
    with schema_context("public"):
        tenant_detail = {"tenant": tenant.schema_name} if tenant else {}
        do_record_event(
            event_type, request=request, detail={**detail, **tenant_detail}, **fields
        )
    if tenant is not None:
        with schema_context(tenant.schema_name):
            do_record_event(
                event_type,
                request=request,
                actor=PlatformActor(request.user.get_username()),
                detail={**detail, "via": selectors.VIA_PLATFORM},
                **fields,
            )


def do_record_helpdesk_denial(
    request: HttpRequest, reason: str, tenant: Tenant | None = None, object_id: str = ""
) -> None:
    """A refused look or action (wrong role, unknown tenant or user): audited."""
    with transaction.atomic():
        _record_both(
            EventType.ACCESS_DENIED,
            request,
            tenant,
            outcome=Outcome.FAILURE,
            object_type="helpdesk_console",
            object_id=object_id[:128],
            detail={"reason": reason},
        )


def do_view_overview(request: HttpRequest) -> list[selectors.TenantSummary]:
    with transaction.atomic():
        _record_both(
            HELPDESK_READ,
            request,
            None,
            object_type="helpdesk_console",
            detail={"action": "overview"},
        )
    return selectors.tenant_summaries()


def do_search_users(request: HttpRequest, term: str) -> list[selectors.UserHit]:
    hits = selectors.find_users(term)
    with transaction.atomic():
        _record_both(
            HELPDESK_READ,
            request,
            None,
            object_type="user",
            detail={"action": "user search", "query": term, "results": len(hits)},
        )
    return hits


def do_view_user(
    request: HttpRequest, tenant: Tenant, user_id: int
) -> selectors.UserView:
    with schema_context(tenant.schema_name):
        user = selectors.user_or_404(user_id)
        view = selectors.user_view(tenant.schema_name, user)
    with transaction.atomic():
        _record_both(
            HELPDESK_READ,
            request,
            tenant,
            object_type="user",
            object_id=str(user.pk),
            detail={"action": "user viewed"},
        )
    return view


def do_view_tenant(request: HttpRequest, tenant: Tenant) -> selectors.TenantState:
    state = selectors.tenant_state(tenant)
    with transaction.atomic():
        _record_both(
            HELPDESK_READ,
            request,
            tenant,
            object_type="tenant",
            object_id=tenant.schema_name,
            detail={"action": "service state viewed"},
        )
    return state


def do_echo_remote_ae(
    request: HttpRequest, tenant: Tenant, ae_id: int
) -> ConnectionCheck:
    """C-ECHO one of the tenant's remote AEs; the result is kept and audited."""
    with schema_context(tenant.schema_name):
        peer = selectors.remote_ae_or_404(ae_id)
    result = echo(peer.host, peer.port, peer.ae_title)
    with transaction.atomic():
        with schema_context(tenant.schema_name):
            check = ConnectionCheck.objects.create(
                ae_title=peer.ae_title,
                ok=result.ok,
                result=result.result,
                checked_by_username=request.user.get_username(),
            )
        _record_both(
            HELPDESK_READ,
            request,
            tenant,
            outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
            object_type="remote_ae",
            object_id=peer.ae_title,
            detail={"action": "connection test", "status": result.result},
        )
    return check


# --- MFA resets ----------------------------------------------------------------


def _reset_detail(reset: MfaResetRequest, action: str) -> dict[str, Any]:
    return {
        "action": action,
        "request": reset.pk,
        "requested_by": reset.requested_by_username,
        "expires_at": reset.expires_at.isoformat(),
    }


def do_request_mfa_reset(
    request: HttpRequest, tenant: Tenant, user_id: int, reason: str
) -> MfaResetRequest:
    """Ask the tenant's administrators to remove a user's second factors."""
    requester: User = request.user  # type: ignore[assignment]
    with transaction.atomic():
        with schema_context(tenant.schema_name):
            user = selectors.user_or_404(user_id)
            _expire_lapsed(MfaResetRequest.objects.filter(user=user))
            try:
                with transaction.atomic():
                    reset = MfaResetRequest.objects.create(
                        user=user,
                        reason=reason,
                        requested_by_id=requester.pk,
                        requested_by_username=requester.get_username(),
                        expires_at=timezone.now()
                        + datetime.timedelta(hours=settings.NIMBUS_MFA_RESET_HOURS),
                    )
            except IntegrityError as error:
                raise ResetPending from error
        _record_both(
            MFA_RESET,
            request,
            tenant,
            object_type="user",
            object_id=str(user.pk),
            detail=_reset_detail(reset, "mfa reset requested"),
        )
    return reset


def _open_reset(request: HttpRequest, admin: User, reset_id: int) -> None:
    """Refuse (audited) a decision on a lapsed request, or by its own side.

    Each refusal is recorded in a transaction of its own: the decision's
    transaction rolls back when it is refused.
    """
    with transaction.atomic():
        _expire_lapsed(MfaResetRequest.objects.filter(pk=reset_id))
    reset = MfaResetRequest.objects.filter(pk=reset_id).first()
    if reset is None or reset.state != ResetState.PENDING:
        raise ResetNotOpen
    _refuse_own(request, admin, reset)


def _locked_reset(reset_id: int) -> MfaResetRequest:
    reset = (
        MfaResetRequest.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=reset_id)
        .first()
    )
    # Another administrator may have decided since _open_reset looked.
    if reset is None or not reset.is_open(timezone.now()):
        raise ResetNotOpen
    return reset


def _refuse_own(request: HttpRequest, admin: User, reset: MfaResetRequest) -> None:
    """The person who asked, or whose account it is, never decides.

    The requester is a platform user and the approver a tenant user, so
    the two are compared by user name: the same person with an account on
    each side is refused.
    """
    own_request = reset.requested_by_username.lower() == admin.username.lower()
    if reset.user_id == admin.pk or own_request:
        with transaction.atomic():
            do_record_event(
                EventType.ACCESS_DENIED,
                request=request,
                outcome=Outcome.FAILURE,
                object_type="mfa_reset",
                object_id=str(reset.pk),
                detail={"reason": "own request" if own_request else "own account"},
            )
        raise OwnRequest


def do_approve_mfa_reset(
    request: HttpRequest, admin: User, reset_id: int
) -> MfaResetRequest:
    """Remove the user's authenticator app and backup codes; sessions end.

    At the next sign-in the password alone opens only the enrolment page
    (accounts.middleware), where the user sets up a new authenticator.
    """
    _open_reset(request, admin, reset_id)
    with transaction.atomic():
        reset = _locked_reset(reset_id)
        user = reset.user
        removed = TOTPDevice.objects.filter(user=user).delete()[0]
        removed += StaticDevice.objects.filter(user=user).delete()[0]
        _end_sessions(user)
        _decide(reset, admin, ResetState.APPROVED)
        do_record_event(
            MFA_RESET,
            request=request,
            object_type="user",
            object_id=str(user.pk),
            detail={**_reset_detail(reset, "mfa reset approved"), "count": removed},
        )
    return reset


def do_refuse_mfa_reset(
    request: HttpRequest, admin: User, reset_id: int
) -> MfaResetRequest:
    _open_reset(request, admin, reset_id)
    with transaction.atomic():
        reset = _locked_reset(reset_id)
        _decide(reset, admin, ResetState.REFUSED)
        do_record_event(
            MFA_RESET,
            request=request,
            outcome=Outcome.FAILURE,
            object_type="user",
            object_id=str(reset.user_id),
            detail=_reset_detail(reset, "mfa reset refused"),
        )
    return reset


def _decide(reset: MfaResetRequest, admin: User, state: ResetState) -> None:
    reset.state = state
    reset.decided_by = admin
    reset.decided_at = timezone.now()
    reset.save(update_fields=["state", "decided_by", "decided_at"])


def _end_sessions(user: User) -> None:
    """Every session of the user ends now, and (after commit) every browser socket."""
    User.objects.filter(pk=user.pk).update(session_salt=secrets.token_hex(16))
    close_sockets_on_commit(user)


def _record_expiry(reset: MfaResetRequest) -> None:
    reset.state = ResetState.EXPIRED
    reset.save(update_fields=["state"])
    do_record_event(
        MFA_RESET,
        actor_username="nimbus",
        outcome=Outcome.FAILURE,
        object_type="user",
        object_id=str(reset.user_id),
        detail=_reset_detail(reset, "mfa reset expired"),
    )


def _expire_lapsed(resets: QuerySet[MfaResetRequest]) -> int:
    lapsed = resets.select_for_update(skip_locked=True, of=("self",)).filter(
        state=ResetState.PENDING, expires_at__lte=timezone.now()
    )
    count = 0
    for reset in lapsed:
        _record_expiry(reset)
        count += 1
    return count


def do_record_expired_resets() -> int:
    """Mark (and audit) every request that lapsed unanswered; run by beat per tenant."""
    with transaction.atomic():
        return _expire_lapsed(MfaResetRequest.objects.all())
