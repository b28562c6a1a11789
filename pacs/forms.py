from django import forms
from django.utils.translation import gettext_lazy as _

from pacs.models import ReadingStatus
from pacs.selectors import (
    QUEUE_MINE,
    QUEUE_MY_GROUPS,
    QUEUE_UNASSIGNED,
    WORKLIST_SORTS,
    WorklistFilter,
)
from reading.models import Priority


class WorklistFilterForm(forms.Form):
    patient_name = forms.CharField(
        label=_("Patient name"), required=False, max_length=64
    )
    patient_id = forms.CharField(label=_("Patient ID"), required=False, max_length=64)
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    modality = forms.CharField(label=_("Modality"), required=False, max_length=16)
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Any status")), *ReadingStatus.choices],
    )
    queue = forms.ChoiceField(
        label=_("Queue"),
        required=False,
        choices=[
            ("", _("All studies")),
            (QUEUE_MINE, _("Mine")),
            (QUEUE_MY_GROUPS, _("My groups")),
            (QUEUE_UNASSIGNED, _("Unassigned")),
        ],
    )
    priority = forms.ChoiceField(
        label=_("Priority"),
        required=False,
        choices=[("", _("Any priority")), *Priority.choices],
    )
    overdue = forms.BooleanField(label=_("Overdue only"), required=False)
    sort = forms.ChoiceField(
        required=False,
        choices=[(k, k) for key in WORKLIST_SORTS for k in (key, "-" + key)],
        widget=forms.HiddenInput(),
    )

    def to_filter(self) -> WorklistFilter:
        data = self.cleaned_data if self.is_valid() else {}
        return WorklistFilter(
            patient_name=data.get("patient_name", ""),
            patient_id=data.get("patient_id", ""),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            modality=data.get("modality", ""),
            status=data.get("status", ""),
            queue=data.get("queue", ""),
            priority=data.get("priority", ""),
            overdue=bool(data.get("overdue")),
            sort=data.get("sort") or "priority",
        )
