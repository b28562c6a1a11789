import datetime
from typing import Any

from django import forms
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from reading.models import Priority, ReadingGroup
from reading.selectors import COUNT_DAYS_MAX, radiologists, referrers

# A due time is a working day of the queue: a year before the study arrived
# (a late import) up to five years ahead. Outside it a typo like 0001-01-01
# becomes a timestamp PostgreSQL stores but psycopg cannot read back, which
# took down every worklist of the tenant.
DUE_BEFORE_ARRIVAL = datetime.timedelta(days=366)
DUE_AHEAD = datetime.timedelta(days=5 * 366)
# Counts cover the days Nimbus can have worked: none before 1970, none past
# next year (and never the last day of year 9999, whose next day overflows).
COUNTS_FIRST_DAY = datetime.date(1970, 1, 1)
COUNTS_DAYS_AHEAD = 366
DUE_FORMAT = "%Y-%m-%dT%H:%M"


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


class ReferrerChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        name = obj.get_full_name()
        return f"{name} ({obj.username})" if name else obj.username


class ReferralForm(forms.Form):
    referrer = ReferrerChoiceField(
        label=_("Referring clinician"),
        queryset=referrers(),
        empty_label=_("Choose a referring clinician"),
        error_messages={
            "required": _("Choose the referring clinician to share the study with."),
            "invalid_choice": _("That user is not a referring clinician here."),
        },
    )


class PriorityForm(forms.Form):
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices)
    due_at = forms.DateTimeField(
        label=_("Due"),
        required=False,
        help_text=_("Leave empty to derive it from the priority."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DUE_FORMAT),
        input_formats=[DUE_FORMAT, "%Y-%m-%d %H:%M"],
    )

    def __init__(
        self, *args: Any, arrived_at: datetime.datetime, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.arrived_at = arrived_at

    def clean_due_at(self) -> datetime.datetime | None:
        due_at: datetime.datetime | None = self.cleaned_data["due_at"]
        if due_at is None:
            return None
        earliest = self.arrived_at - DUE_BEFORE_ARRIVAL
        latest = timezone.now() + DUE_AHEAD
        if not earliest <= due_at <= latest:
            raise forms.ValidationError(
                _("Choose a due time between %(earliest)s and %(latest)s.")
                % {
                    "earliest": formats.date_format(
                        timezone.localtime(earliest), "SHORT_DATE_FORMAT"
                    ),
                    "latest": formats.date_format(
                        timezone.localtime(latest), "SHORT_DATE_FORMAT"
                    ),
                }
            )
        return due_at


class CountsForm(forms.Form):
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean_date_from(self) -> datetime.date | None:
        return self._within_reach(self.cleaned_data["date_from"])

    def clean_date_to(self) -> datetime.date | None:
        return self._within_reach(self.cleaned_data["date_to"])

    def _within_reach(self, day: datetime.date | None) -> datetime.date | None:
        latest = timezone.localdate() + datetime.timedelta(days=COUNTS_DAYS_AHEAD)
        if day is not None and not COUNTS_FIRST_DAY <= day <= latest:
            raise forms.ValidationError(
                _("Choose a day between %(first)s and %(last)s.")
                % {
                    "first": formats.date_format(COUNTS_FIRST_DAY, "SHORT_DATE_FORMAT"),
                    "last": formats.date_format(latest, "SHORT_DATE_FORMAT"),
                }
            )
        return day

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if self.errors:
            return data
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
