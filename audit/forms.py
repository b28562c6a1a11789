from datetime import datetime

from django import forms
from django.utils.translation import gettext_lazy as _

from audit.models import EventType, Outcome
from audit.selectors import AuditQuery

# Ranges first ("all security events"), then each type by its number.
RANGES = {
    "1xx": (100, 200, _("Security (1xx)")),
    "2xx": (200, 300, _("Reading patient data (2xx)")),
    "3xx": (300, 400, _("Changing clinical data (3xx)")),
    "4xx": (400, 500, _("Data leaving Nimbus (4xx)")),
    "5xx": (500, 600, _("Configuration (5xx)")),
    "6xx": (600, 700, _("Audit trail (6xx)")),
}


def event_type_choices() -> list[tuple[str, str]]:
    choices = [("", _("Any event"))]
    choices += [(key, str(label)) for key, (_low, _high, label) in RANGES.items()]
    choices += [(str(value), f"{value} {label}") for value, label in EventType.choices]
    return choices


class AuditSearchForm(forms.Form):
    username = forms.CharField(label=_("User"), max_length=150, required=False)
    patient_id = forms.CharField(label=_("Patient ID"), max_length=64, required=False)
    study_instance_uid = forms.CharField(
        label=_("Study Instance UID"), max_length=64, required=False
    )
    event_type = forms.ChoiceField(label=_("Event"), choices=(), required=False)
    outcome = forms.ChoiceField(
        label=_("Outcome"),
        choices=[("", _("Any outcome")), *Outcome.choices],
        required=False,
    )
    tenant = forms.ChoiceField(label=_("Tenant"), choices=(), required=False)
    since = forms.DateTimeField(
        label=_("From"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    until = forms.DateTimeField(
        label=_("Until"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    page = forms.IntegerField(min_value=1, max_value=10_000, required=False)

    def __init__(self, *args: object, schemas: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.schemas = schemas
        self.fields["event_type"].choices = event_type_choices()  # type: ignore[attr-defined]
        self.fields["tenant"].choices = [("", _("All tenants"))] + [  # type: ignore[attr-defined]
            (schema, schema) for schema in schemas
        ]

    def to_query(self) -> AuditQuery:
        data = self.cleaned_data
        tenant = data.get("tenant")
        return AuditQuery(
            schemas=(tenant,) if tenant else tuple(self.schemas),
            username=data.get("username", "").strip(),
            patient_id=data.get("patient_id", "").strip(),
            study_instance_uid=data.get("study_instance_uid", "").strip(),
            event_types=_event_types(data.get("event_type", "")),
            outcome=data.get("outcome", ""),
            since=_or_none(data.get("since")),
            until=_or_none(data.get("until")),
        )


def _event_types(value: str) -> tuple[int, int] | None:
    if not value:
        return None
    if value in RANGES:
        low, high, _label = RANGES[value]
        return low, high
    return int(value), int(value) + 1


def _or_none(value: datetime | None) -> datetime | None:
    return value or None
