"""django-axes, fitted to Nimbus: a lockout looks exactly like a failure.

Failures are counted per user name and client address in the tenant's
schema (settings AXES_*). Unknown user names are counted too, so a lockout
says nothing about whether an account exists.
"""

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

# Set on a request that authenticate() refused because of an earlier
# lockout, as opposed to the failure that starts one.
REFUSED_WHILE_LOCKED = "nimbus_refused_while_locked"


class LockoutBackend(AxesStandaloneBackend):
    """Axes' refusal of a locked-out sign-in, marked on the request for the audit."""

    def authenticate(  # type: ignore[no-untyped-def]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ):
        try:
            return super().authenticate(request, username, password, **kwargs)
        except AxesBackendPermissionDenied:
            setattr(request, REFUSED_WHILE_LOCKED, True)
            raise


def refused_while_locked(request: HttpRequest | None) -> bool:
    return bool(getattr(request, REFUSED_WHILE_LOCKED, False))


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None,
    credentials: dict[str, Any] | None,
) -> HttpResponse:
    """The sign-in page as a wrong password leaves it: same words, same status.

    Axes would answer 429 with its own message, telling an attacker that
    the counter ran out (and when to come back).
    """
    if original_response is not None:
        return original_response
    return redirect("accounts:login")
