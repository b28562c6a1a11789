"""Who is calling a DICOMweb endpoint: a bearer token or a verified session.

PS3.18 leaves user authentication to the HTTP layer; Nimbus takes RFC 6750
bearer tokens for machines and OTP-verified browser sessions for the viewer.
"""

import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec

from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext as _

from accounts.authentication import bearer_token_from_header, user_for_bearer_token
from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.dicomweb.responses import plain_text

security_logger = logging.getLogger("nimbus.security")

P = ParamSpec("P")
AuthenticatedView = Callable[Concatenate[HttpRequest, User, P], HttpResponse]
View = Callable[Concatenate[HttpRequest, P], HttpResponse]

# RFC 6750 Section 3: the realm is the same one the JSON API announces.
CHALLENGE = 'Bearer realm="nimbus"'


def unauthorized(message: str, error: str = "") -> HttpResponse:
    """A 401 answer that tells the client to come back with a bearer token.

    Parameters
    ----------
    message : str
        A sentence for the person reading the client's output.
    error : str, optional
        The RFC 6750 Section 3.1 error code (``invalid_token`` or
        ``invalid_request``); empty when no credentials were sent at all.

    Returns
    -------
    HttpResponse
        Status 401 with a ``WWW-Authenticate: Bearer`` challenge.
    """
    response = plain_text(message, status=401)
    challenge = CHALLENGE if not error else f'{CHALLENGE}, error="{error}"'
    response["WWW-Authenticate"] = challenge
    return response


def authenticate(request: HttpRequest) -> User | HttpResponse:
    """The user behind a DICOMweb request, or the 401 answer to send instead.

    An ``Authorization`` header wins over the session: a client that sends a
    wrong token is refused even from a signed-in browser, so that a bad token
    never goes unnoticed.

    Parameters
    ----------
    request : HttpRequest
        The incoming request, already routed to its tenant's schema.

    Returns
    -------
    User or HttpResponse
        The active user that owns the token or the verified session; else an
        HTTP 401 response carrying ``WWW-Authenticate: Bearer``.
    """
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        return _user_for_header(request, header)

    user = getattr(request, "user", None)
    is_verified = getattr(user, "is_verified", None)
    if (
        isinstance(user, User)
        and user.is_authenticated
        and callable(is_verified)
        and is_verified()
    ):
        return user
    return unauthorized(_("Authentication required: send a bearer token."))


def _user_for_header(request: HttpRequest, header: str) -> User | HttpResponse:
    raw = bearer_token_from_header(header)
    if raw is None:
        return unauthorized(
            _("Only the Bearer authorization scheme is accepted."),
            error="invalid_request",
        )

    user = user_for_bearer_token(raw)
    if user is None:
        # Never log the token, not even a prefix: it may be a real one mistyped.
        security_logger.warning(
            "dicomweb bearer token refused ip=%s", request.META.get("REMOTE_ADDR")
        )
        do_record_event(
            EventType.ACCESS_DENIED,
            request=request,
            outcome=Outcome.FAILURE,
            object_type="dicomweb",
            detail={"reason": "invalid or revoked bearer token"},
        )
        return unauthorized(
            _("The bearer token is invalid or has been revoked."),
            error="invalid_token",
        )
    return user


def dicomweb_endpoint(view: AuthenticatedView[P]) -> View[P]:
    """Decorate a view so that it runs only for an authenticated caller.

    The wrapped view receives the user as its second argument. No CSRF check
    is needed for the safe methods these endpoints answer.

    Parameters
    ----------
    view : callable
        ``view(request, user, *args, **kwargs)`` returning an HttpResponse.

    Returns
    -------
    callable
        ``view(request, *args, **kwargs)`` answering 401 to strangers.
    """

    @functools.wraps(view)
    def wrapper(
        request: HttpRequest, *args: P.args, **kwargs: P.kwargs
    ) -> HttpResponse:
        caller = authenticate(request)
        if isinstance(caller, HttpResponse):
            return caller
        try:
            return view(request, caller, *args, **kwargs)
        except Http404 as error:
            # The access helpers answer outsiders and unknown UIDs alike.
            return plain_text(str(error) or _("Not found."), status=404)

    return wrapper
