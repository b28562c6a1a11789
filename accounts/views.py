import base64
import logging
import time
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.http import require_http_methods, require_POST
from django_otp.decorators import otp_required

from accounts.actions import (
    do_change_password,
    do_confirm_totp_enrolment,
    do_end_all_sessions,
    do_issue_backup_codes,
    do_reauthenticate,
    do_set_language,
    do_start_totp_enrolment,
)
from accounts.authentication import record_csrf_failure
from accounts.forms import OTP_REFUSED, LanguageForm, OneTimePasswordForm, SignInForm
from accounts.language import tenant_languages
from accounts.middleware import DEFAULT_IDLE_MINUTES
from accounts.otp import has_second_factor, verify_fresh_otp
from accounts.sessions import absolute_seconds_left, idle_seconds_left

security_logger = logging.getLogger("nimbus.security")


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: SignInForm) -> HttpResponse:  # type: ignore[override]
        # A right password with a wrong one-time password fails after
        # authenticate(), so Django never sends user_login_failed for it:
        # send it here, so that django-axes counts it and it is audited.
        user = form.get_user()
        if user is not None:
            user_login_failed.send(
                sender=SignInForm,
                credentials={"username": user.get_username()},
                request=self.request,
                nimbus_reason="otp",
                nimbus_user=user,
            )
        return super().form_invalid(form)

    def form_valid(self, form: SignInForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_valid(form)
        # Kept in the cookie too, so the sign-in page after a sign-out
        # speaks the language the user chose; no choice keeps the switcher's.
        if language := form.get_user().language:
            remember_language(response, language)
        return response


class SignOutView(auth_views.LogoutView):
    pass


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return "/"


@login_required
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest) -> HttpResponse:
    """First sign-in: scan a QR code, confirm one code, note the backup codes."""
    if has_second_factor(request.user):  # type: ignore[arg-type]
        return redirect("/")
    device = do_start_totp_enrolment(request.user)  # type: ignore[arg-type]
    form = OneTimePasswordForm(request.POST or None)
    if form.is_valid():
        codes = do_confirm_totp_enrolment(
            request, device, form.cleaned_data["otp_token"]
        )
        if codes is not None:
            return render(request, "accounts/backup_codes.html", {"codes": codes})
        form.add_error("otp_token", OTP_REFUSED)
    qr = segno.make(device.config_url, error="m")
    context = {
        "form": form,
        "qr_svg": qr.svg_inline(scale=5, title=_("QR code for your authenticator app")),
        "secret": _base32_secret(device.bin_key),
    }
    return render(request, "accounts/enrol.html", context)


def _base32_secret(key: bytes) -> str:
    text = base64.b32encode(key).decode().rstrip("=")
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def remember_language(response: HttpResponse, language: str) -> None:
    if not language:
        response.delete_cookie(
            settings.LANGUAGE_COOKIE_NAME, samesite=settings.LANGUAGE_COOKIE_SAMESITE
        )
        return
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The language picker (security page) and the switcher of signed-out pages.

    Only the tenant's languages are accepted. A signed-in user's choice is
    saved on the account; everyone's is kept in the language cookie.
    """
    languages = tenant_languages(getattr(request, "tenant", None))
    form = LanguageForm(request.POST, languages=languages)
    response = redirect(_safe_next(request))
    if not form.is_valid():
        messages.error(request, _("This language is not offered here."))
        return response

    language = form.cleaned_data["language"]
    if request.user.is_authenticated:
        do_set_language(request, request.user, language)  # type: ignore[arg-type]
    remember_language(response, language)
    return response


@otp_required
@require_http_methods(["GET", "POST"])
def security(request: HttpRequest) -> HttpResponse:
    """The user's own page: password, new backup codes, sign out everywhere."""
    form = OneTimePasswordForm(request.POST or None)
    if form.is_valid():
        token = form.cleaned_data["otp_token"]
        if verify_fresh_otp(request.user, token) is not None:  # type: ignore[arg-type]
            codes = do_issue_backup_codes(request.user, request=request)  # type: ignore[arg-type]
            return render(request, "accounts/backup_codes.html", {"codes": codes})
        form.add_error("otp_token", OTP_REFUSED)
    language_form = LanguageForm(
        initial={"language": request.user.language},  # type: ignore[union-attr]
        languages=tenant_languages(getattr(request, "tenant", None)),
    )
    context = {"form": form, "language_form": language_form}
    return render(request, "accounts/security.html", context)


@otp_required
@require_http_methods(["GET", "POST"])
def change_password(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST or None)
    if form.is_valid():
        do_change_password(request, request.user, form.cleaned_data["new_password1"])  # type: ignore[arg-type]
        return render(request, "accounts/password_changed.html")
    return render(request, "accounts/password_change.html", {"form": form})


@otp_required
@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    do_end_all_sessions(request, request.user)  # type: ignore[arg-type]
    return redirect("accounts:login")


@otp_required
@require_http_methods(["GET", "POST"])
def reauthenticate(request: HttpRequest) -> HttpResponse:
    """A fresh one-time password before an export (NIMBUS_REAUTH_MINUTES)."""
    form = OneTimePasswordForm(request.POST or None)
    if form.is_valid():
        token = form.cleaned_data["otp_token"]
        if do_reauthenticate(request, request.user, token):  # type: ignore[arg-type]
            return redirect(_safe_next(request))
        form.add_error("otp_token", OTP_REFUSED)
    context = {"form": form, "next": _safe_next(request)}
    return render(request, "accounts/reauthenticate.html", context)


@require_http_methods(["GET", "POST"])
def session_status(request: HttpRequest) -> JsonResponse:
    """Seconds left for the idle module. GET is not activity; POST is.

    The module POSTs only after keyboard or pointer input on the page.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"signed_in": False}, status=401)
    tenant: Any = getattr(request, "tenant", None)
    idle = getattr(tenant, "idle_timeout_minutes", DEFAULT_IDLE_MINUTES)
    now = time.time()
    return JsonResponse(
        {
            "signed_in": True,
            "idle_seconds_left": int(idle_seconds_left(request.session, idle, now)),
            "absolute_seconds_left": int(absolute_seconds_left(request.session, now)),
        }
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Django's CSRF refusal (settings.CSRF_FAILURE_VIEW), audited first."""
    record_csrf_failure(request)
    return django_csrf_failure(request, reason)
