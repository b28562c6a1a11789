from django import forms
from django.utils.translation import gettext_lazy as _


class UserSearchForm(forms.Form):
    q = forms.CharField(
        label=_("User name, name or e-mail"),
        min_length=2,
        max_length=150,
        strip=True,
        error_messages={"min_length": _("Type at least 2 characters.")},
    )


class MfaResetForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason (how the user's identity was checked)"),
        max_length=500,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Say why, and how you checked who called.")},
    )
