from collections.abc import Callable

from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

MACHINE_PATHS = ("/api/", "/dicomweb/")


class RequireVerifiedUserMiddleware:
    """Treat a session whose second factor is not verified as signed out.

    A password alone never opens patient data: django-otp marks the user
    verified only after a valid one-time password in the same session.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and not user.is_verified():
            logout(request)
            # Machine clients cannot follow a login page: let the API answer 401.
            if not request.path.startswith(MACHINE_PATHS):
                return redirect("accounts:login")
        return self.get_response(request)
