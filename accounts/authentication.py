"""DRF authentication: bearer tokens for machines, OTP-verified sessions for people."""

import datetime

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiToken, User, hash_token

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
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
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
