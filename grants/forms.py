from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from grants.selectors import helpdesk_users
from pacs.models import Study

SCOPE_STUDY = "study"
SCOPE_TENANT = "tenant"


class GrantForm(forms.Form):
    helpdesk_user = forms.ModelChoiceField(
        label=_("Helpdesk user"), queryset=helpdesk_users(), empty_label=None
    )
    scope = forms.ChoiceField(
        label=_("Access to"),
        choices=[
            (SCOPE_STUDY, _("One study")),
            (SCOPE_TENANT, _("Every study of this tenant")),
        ],
        initial=SCOPE_STUDY,
    )
    study = forms.CharField(
        label=_("Study Instance UID or accession number"),
        max_length=64,
        required=False,
    )
    hours = forms.IntegerField(label=_("For how many hours"), min_value=1, initial=4)
    reason = forms.CharField(
        label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Evaluated per form: users are added while the process runs.
        self.fields["helpdesk_user"].queryset = helpdesk_users()  # type: ignore[attr-defined]
        most = settings.NIMBUS_HELPDESK_GRANT_MAX_HOURS
        self.fields["hours"].widget.attrs["max"] = most

    def clean_hours(self) -> int:
        hours: int = self.cleaned_data["hours"]
        most = settings.NIMBUS_HELPDESK_GRANT_MAX_HOURS
        if hours > most:
            raise forms.ValidationError(_("At most %(hours)s hours.") % {"hours": most})
        return hours

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        cleaned["study_row"] = None
        if cleaned.get("scope") != SCOPE_STUDY:
            return cleaned
        wanted = (cleaned.get("study") or "").strip()
        matches = _studies_named(wanted) if wanted else []
        if len(matches) != 1:
            self.add_error(
                "study",
                _("No single study has this Study Instance UID or accession number."),
            )
        else:
            cleaned["study_row"] = matches[0]
        return cleaned


def _studies_named(wanted: str) -> list[Study]:
    by_uid = list(Study.objects.filter(study_instance_uid=wanted)[:1])
    return by_uid or list(Study.objects.filter(accession_number=wanted)[:2])
