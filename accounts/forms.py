from typing import Any

from django import forms
from django.utils.text import capfirst
from django.utils.translation import get_language_info
from django.utils.translation import gettext_lazy as _
from django_otp.forms import OTPAuthenticationForm, OTPAuthenticationFormMixin

from accounts.models import User
from accounts.otp import device_for_token, has_second_factor, token_for_device

# One message for every failure: never tell whether the user exists, which
# factor was wrong, or that the sign-in is locked.
SIGN_IN_FAILED = _("The user name, password or one-time password is not correct.")
OTP_REFUSED = _("This one-time password is not correct.")


def otp_field(required: bool = True) -> Any:
    return forms.CharField(
        label=_("One-time password"),
        max_length=16,
        required=required,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}
        ),
    )


class SignInForm(OTPAuthenticationForm):
    """User name, password and one-time password, checked together.

    The device field is hidden: the device is chosen from the token's shape
    (six digits: the authenticator app; anything else: a backup code), so
    that a failed try counts against one device only, as django-otp wants.
    A user without an authenticator app yet signs in with the password alone
    and is sent to enrol one before anything else (accounts.middleware).
    """

    otp_error_messages = dict(
        OTPAuthenticationFormMixin.otp_error_messages,
        token_required=SIGN_IN_FAILED,
        invalid_token=SIGN_IN_FAILED,
        device_required=SIGN_IN_FAILED,
        # django-otp says so only after a right password: that would confirm it.
        n_failed_attempts=SIGN_IN_FAILED,
        verification_not_allowed=SIGN_IN_FAILED,
    )
    error_messages = dict(
        OTPAuthenticationForm.error_messages, invalid_login=SIGN_IN_FAILED
    )

    otp_token = otp_field(required=False)

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["otp_device"].widget = forms.HiddenInput()
        self.fields["otp_challenge"].widget = forms.HiddenInput()

    def clean_otp(self, user: User | None) -> None:
        if user is not None and not has_second_factor(user):
            user.otp_device = None  # type: ignore[attr-defined]
            return
        super().clean_otp(user)

    def _chosen_device(self, user):  # type: ignore[no-untyped-def]
        return device_for_token(user, self.cleaned_data.get("otp_token") or "")

    def _verify_token(self, user, token, device=None):  # type: ignore[no-untyped-def]
        if device is not None:
            token = token_for_device(user, device, token)
        return super()._verify_token(user, token, device)


class OneTimePasswordForm(forms.Form):
    """A one-time password on its own: enrolment, re-authentication, new codes."""

    otp_token = otp_field()


class LanguageForm(forms.Form):
    """The language picker: one of the tenant's languages, or the browser's."""

    language = forms.ChoiceField(label=_("Language"), required=False)

    def __init__(self, *args: Any, languages: list[tuple[str, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Each language in its own words, so whoever reads the page finds theirs.
        self.fields["language"].choices = [
            ("", _("As my browser asks")),
            *(
                (code, capfirst(get_language_info(code)["name_local"]))
                for code, _n in languages
            ),
        ]
