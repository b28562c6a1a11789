"""Sign-in and sign-out go into the audit trail of the schema they happen in."""

import logging
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import (
    user_logged_in,
    user_logged_out,
    user_login_failed,
)
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.lockout import refused_while_locked
from accounts.sessions import start_clock
from audit.actions import do_record_event
from audit.models import EventType, Outcome

security_logger = logging.getLogger("nimbus.security")


@receiver(user_logged_in)
def record_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if hasattr(request, "session"):
        start_clock(request.session)
    do_record_event(EventType.LOGIN_SUCCEEDED, request=request, actor=user)
    security_logger.info("sign-in succeeded user_id=%s", user.pk)


@receiver(user_logged_out)
def record_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        do_record_event(EventType.LOGOUT, request=request, actor=user)


@receiver(user_login_failed)
def record_login_failure(
    sender: Any,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: Any,
) -> None:
    """Every failed sign-in: wrong password, wrong one-time password, or locked.

    The sign-in view sends this signal itself for a wrong one-time password
    (with ``nimbus_reason="otp"`` and the user), so that django-axes counts
    it like a wrong password.
    """
    username = str(credentials.get("username", ""))[:150]
    reason = kwargs.get("nimbus_reason", "password")
    if refused_while_locked(request):
        reason = "locked"
    do_record_event(
        EventType.LOGIN_FAILED,
        request=request,
        actor=kwargs.get("nimbus_user"),
        actor_username=username,
        outcome=Outcome.FAILURE,
        detail={"reason": reason},
    )
    security_logger.warning("sign-in failed (%s)", reason)


@receiver(user_locked_out)
def record_lockout(
    sender: Any, request: HttpRequest, username: str | None, **kwargs: Any
) -> None:
    # Axes signals again on every refused try; only the start is an event.
    if refused_while_locked(request):
        return
    do_record_event(
        EventType.ACCOUNT_LOCKED_OUT,
        request=request,
        actor_username=(username or "")[:150],
        outcome=Outcome.FAILURE,
        detail={
            "failures": settings.AXES_FAILURE_LIMIT,
            "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
        },
    )
    security_logger.warning("sign-in locked after repeated failures")
