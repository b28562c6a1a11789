import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from reading.models import Priority, ReadingGroup
from reading.selectors import COUNT_DAYS_MAX, radiologists


class AssignForm(forms.Form):
    radiologist = forms.ModelChoiceField(
        label=_("Radiologist"),
        queryset=radiologists(),
        required=False,
        empty_label=_("No one"),
    )
    group = forms.ModelChoiceField(
        label=_("Reading group"),
        queryset=ReadingGroup.objects.all(),
        required=False,
        empty_label=_("No group"),
    )


class PriorityForm(forms.Form):
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    due_at = forms.DateTimeField(
        label=_("Due"),
        required=False,
        help_text=_("Leave empty to derive it from the priority."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )


class CountsForm(forms.Form):
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        last = data.get("date_to") or timezone.localdate()
        first = data.get("date_from") or last - datetime.timedelta(days=6)
        if first > last:
            raise forms.ValidationError(_("The first day comes after the last."))
        if (last - first).days >= COUNT_DAYS_MAX:
            raise forms.ValidationError(
                _("Choose at most %(days)d days.") % {"days": COUNT_DAYS_MAX}
            )
        data["date_from"], data["date_to"] = first, last
        return data

    def window(self) -> tuple[datetime.date, datetime.date]:
        if self.is_valid():
            return self.cleaned_data["date_from"], self.cleaned_data["date_to"]
        last = timezone.localdate()
        return last - datetime.timedelta(days=6), last
