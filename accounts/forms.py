from django import forms
from django.utils.translation import gettext_lazy as _
from django_otp.forms import OTPAuthenticationForm, OTPAuthenticationFormMixin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

# One message for every failure: never tell whether the user exists or which
# factor was wrong.
SIGN_IN_FAILED = _("The user name, password or one-time password is not correct.")


class SignInForm(OTPAuthenticationForm):
    """User name, password and one-time password, checked together.

    The device field is hidden: the device is chosen from the token's shape
    (six digits: the authenticator app; anything else: a backup code), so
    that a failed try counts against one device only, as django-otp wants.
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

    otp_token = forms.CharField(
        label=_("One-time password"),
        max_length=16,
        required=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}
        ),
    )

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.fields["otp_device"].widget = forms.HiddenInput()
        self.fields["otp_challenge"].widget = forms.HiddenInput()

    def _chosen_device(self, user):  # type: ignore[no-untyped-def]
        token = (self.cleaned_data.get("otp_token") or "").strip()
        model = TOTPDevice if token.isdigit() and len(token) == 6 else StaticDevice
        return model.objects.filter(user=user, confirmed=True).order_by("pk").first()
