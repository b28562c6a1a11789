"""DRF authentication: bearer tokens for machines, OTP-verified sessions for people."""

import datetime

from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiToken, User, hash_token
from audit.actions import do_record_event
from audit.models import EventType, Outcome

LAST_USE_RESOLUTION = datetime.timedelta(minutes=1)


def user_for_bearer_token(raw: str) -> User | None:
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    # A busy client calls many times a second: note the use once a minute,
    # not with a write (and a commit) on every request.
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USE_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def bearer_token_from_header(header: str) -> str | None:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return raw.strip()


class BearerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, ApiToken | None] | None:
        raw = bearer_token_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        if raw is None:
            return None
        user = user_for_bearer_token(raw)
        if user is None:
            # Another tenant's token, a revoked or a guessed one: a probe.
            do_record_event(
                EventType.ACCESS_DENIED,
                request=request._request,
                outcome=Outcome.FAILURE,
                object_type="api",
                detail={"reason": "invalid or revoked bearer token"},
            )
            raise exceptions.AuthenticationFailed(_("Invalid or revoked token."))
        return user, None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="nimbus"'


class VerifiedSessionAuthentication(authentication.SessionAuthentication):
    """A browser session counts only once its second factor is verified."""

    def authenticate(self, request: Request) -> tuple[User, None] | None:
        result = super().authenticate(request)
        if result is None:
            return None
        user = request._request.user
        if not user.is_verified():
            return None
        return result

    def enforce_csrf(self, request: Request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied:
            record_csrf_failure(request._request)
            raise


def record_csrf_failure(request: HttpRequest) -> None:
    """Audit a write refused for its CSRF token: another site driving a session."""
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        outcome=Outcome.FAILURE,
        object_type="csrf",
        object_id=request.path[:128],
        detail={"answer": 403},
    )
