"""Sign-in and sign-out go into the audit trail of the schema they happen in."""

import logging
from typing import Any

from django.contrib.auth.signals import (
    user_logged_in,
    user_logged_out,
    user_login_failed,
)
from django.dispatch import receiver
from django.http import HttpRequest

from audit.actions import do_record_event
from audit.models import EventType, Outcome

security_logger = logging.getLogger("nimbus.security")


@receiver(user_logged_in)
def record_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
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
    username = str(credentials.get("username", ""))[:150]
    do_record_event(
        EventType.LOGIN_FAILED,
        request=request,
        actor_username=username,
        outcome=Outcome.FAILURE,
        detail={"reason": "password"},
    )
    security_logger.warning("sign-in failed (password)")
