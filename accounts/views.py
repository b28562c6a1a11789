import logging

from django.contrib.auth import views as auth_views
from django.http import HttpResponse

from accounts.forms import SignInForm
from audit.actions import do_record_event
from audit.models import EventType, Outcome

security_logger = logging.getLogger("nimbus.security")


class SignInView(auth_views.LoginView):
    form_class = SignInForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: SignInForm) -> HttpResponse:  # type: ignore[override]
        # A right password with a wrong one-time password fails after
        # authenticate(), so user_login_failed never fires for it.
        user = form.get_user() if hasattr(form, "user_cache") else None
        if user is not None:
            do_record_event(
                EventType.LOGIN_FAILED,
                request=self.request,
                actor=user,
                outcome=Outcome.FAILURE,
                detail={"reason": "otp"},
            )
            security_logger.warning(
                "sign-in failed (one-time password) user_id=%s", user.pk
            )
        return super().form_invalid(form)


class SignOutView(auth_views.LogoutView):
    pass
