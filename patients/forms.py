from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _


class PatientLinkForm(forms.Form):
    email = forms.EmailField(label=_("Patient's e-mail address"))
    days = forms.IntegerField(label=_("Valid for (days)"), min_value=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        most = settings.NIMBUS_PATIENT_LINK_MAX_DAYS
        self.fields["days"].widget.attrs["max"] = most

    def clean_days(self) -> int:
        days: int = self.cleaned_data["days"]
        most = settings.NIMBUS_PATIENT_LINK_MAX_DAYS
        if days > most:
            raise forms.ValidationError(_("At most %(days)s days.") % {"days": most})
        return days


class CodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code from the e-mail"),
        max_length=12,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}
        ),
    )
