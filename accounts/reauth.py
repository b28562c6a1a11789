"""Re-authentication before patient data leaves Nimbus (exports, downloads).

A person exporting must have entered a one-time password within
NIMBUS_REAUTH_MINUTES (accounts:reauthenticate). Bearer-token clients are
machines, issued by hospital IT for one integration: they have no second
factor to enter and keep working as DESIGN.md describes; every export they
make is audited like any other.

What counts as export: every answer that carries a study's raw data out of
Nimbus (DICOMweb instances, metadata, frames and bulk data, which together
rebuild an instance; report exports; the audit trail as CSV, which names
patients). The in-app viewer renders frames server-side through its own
endpoints and needs no second factor per frame. A refusal is audited.
"""

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy
from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.authentication import BearerTokenAuthentication
from accounts.sessions import reauthenticated_recently
from audit.actions import do_record_event
from audit.models import EventType, Outcome

REAUTH_REQUIRED = gettext_lazy(
    "Enter a one-time password again before exporting patient data."
)


def reauthentication_url(request: HttpRequest) -> str:
    query = urlencode({"next": request.get_full_path()})
    return f"{reverse('accounts:reauthenticate')}?{query}"


def record_missing_reauthentication(request: HttpRequest) -> None:
    """Audit an export refused for want of a fresh one-time password."""
    match = request.resolver_match
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        outcome=Outcome.FAILURE,
        object_type="export",
        object_id=match.view_name if match else "",
        study_instance_uid=str(match.kwargs.get("study_uid", ""))[:64] if match else "",
        detail={
            "reason": "one-time password not re-entered",
            "answer": 403,
            "path": request.path[:500],
        },
    )


class ReauthenticationRequired(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = REAUTH_REQUIRED
    default_code = "reauthentication_required"


class RecentlyReauthenticated(permissions.BasePermission):
    """DRF permission: a browser session must have re-entered a one-time password."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        if isinstance(request.successful_authenticator, BearerTokenAuthentication):
            return True
        if reauthenticated_recently(request.session):
            return True
        record_missing_reauthentication(request._request)
        raise ReauthenticationRequired(
            {
                "detail": REAUTH_REQUIRED,
                "code": "reauthentication_required",
                "reauthenticate": reauthentication_url(request._request),
            }
        )


def reauthenticated_for_export(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """The same rule for plain Django views (DICOMweb downloads).

    Requests with an Authorization header, and anonymous ones, go on to the
    view, whose own authentication answers them.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            "HTTP_AUTHORIZATION" in request.META
            or user is None
            or not user.is_authenticated
            or reauthenticated_recently(request.session)
        ):
            return view(request, *args, **kwargs)
        record_missing_reauthentication(request)
        if request.headers.get("Sec-Fetch-Mode") == "navigate":
            # A link followed in the browser: the page that asks for the code.
            return HttpResponseRedirect(reauthentication_url(request))
        message = f"{REAUTH_REQUIRED} {reauthentication_url(request)}"
        response = HttpResponse(message, status=403, content_type="text/plain")
        response["Cache-Control"] = "no-store"
        return response

    return wrapper
