import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, logout
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.actions import do_expire_session
from accounts.otp import has_second_factor
from accounts.session_store import names_another_tenant
from accounts.sessions import expiry_reason, note_activity
from accounts.wrong_host import SESSION_OF_ANOTHER_HOST, record_wrong_host

MACHINE_PATHS = ("/api/", "/dicomweb/")
DEFAULT_IDLE_MINUTES = 15


class ForeignSessionMiddleware:
    """Answer 404 to a session cookie another tenant issued, and record it.

    Placed after SessionMiddleware. The session would not load here anyway
    (each tenant's sessions are in its own schema); refusing the request,
    rather than serving it signed out, answers as for another tenant's
    object, and the record shows someone carried a cookie across hosts.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
        schema = connection.schema_name
        if key and names_another_tenant(key, schema):
            record_wrong_host(
                schema,
                address=request.META.get("REMOTE_ADDR"),
                reason=SESSION_OF_ANOTHER_HOST,
                credential=key,
                detail={"answer": 404},
            )
            response = HttpResponseNotFound(content_type="text/plain")
            response["Cache-Control"] = "no-store"
            return response
        return self.get_response(request)


class SessionTimeoutMiddleware:
    """End a browser session after the tenant's idle time-out or its lifetime.

    Every authenticated request is activity, except the idle module's own
    status check (GET on accounts:session), which must not keep a session
    alive on a screen nobody looks at.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and SESSION_KEY in request.session
        ):
            tenant = getattr(request, "tenant", None)
            idle = getattr(tenant, "idle_timeout_minutes", DEFAULT_IDLE_MINUTES)
            now = time.time()
            reason = expiry_reason(request.session, idle, now)
            if reason is not None:
                do_expire_session(request, user, reason)
                messages.info(request, _("You were signed out: your session expired."))
            elif not _is_status_check(request):
                note_activity(request.session, idle, now)
        return self.get_response(request)


def _is_status_check(request: HttpRequest) -> bool:
    return request.method == "GET" and request.path_info == reverse("accounts:session")


def _enrolment_paths() -> tuple[str, ...]:
    return (
        reverse("accounts:enrol"),
        reverse("accounts:logout"),
        reverse("accounts:session"),
    )


class RequireVerifiedUserMiddleware:
    """Treat a session whose second factor is not verified as signed out.

    A password alone never opens patient data, whatever the role: django-otp
    marks the user verified only after a valid one-time password in the same
    session. The one exception is a user who has no authenticator app yet:
    that session reaches the enrolment page and nothing else.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or user.is_verified():
            return self.get_response(request)

        if not has_second_factor(user):
            if request.path_info in _enrolment_paths():
                return self.get_response(request)
            if request.path_info.startswith(MACHINE_PATHS):
                return JsonResponse(
                    {"detail": _("Set up your authenticator app first.")}, status=401
                )
            return redirect("accounts:enrol")

        logout(request)
        # Machine clients cannot follow a login page: let the API answer 401.
        if not request.path_info.startswith(MACHINE_PATHS):
            return redirect("accounts:login")
        return self.get_response(request)
