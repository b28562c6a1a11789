import datetime

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from collab.models import CollaborationGroup

NOTE_MAX = 4000
COMMENT_MAX = 10000
# A second opinion is a short look: another tenant holds access a month at most.
MAX_DAYS = 30


class GroupChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: CollaborationGroup) -> str:
        return f"{obj.tenant.name} · {obj.name}"


class SecondOpinionRequestForm(forms.Form):
    group = GroupChoiceField(
        label=_("Reading group"),
        queryset=CollaborationGroup.objects.none(),
        empty_label=_("Choose a group of another tenant"),
        error_messages={
            "required": _("Choose the group that should give the second opinion."),
            "invalid_choice": _("That group does not take second opinions."),
        },
    )
    note = forms.CharField(
        label=_("Note for the group"),
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 5}),
        error_messages={"required": _("Write a note: what should they look at?")},
    )
    days = forms.IntegerField(
        label=_("Access ends after (days)"),
        min_value=1,
        max_value=MAX_DAYS,
        initial=7,
        error_messages={
            "invalid": _("Give a whole number of days."),
            "min_value": _("Give at least one day."),
            "max_value": _("Give at most %(limit_value)s days."),
        },
    )

    def __init__(self, *args: object, groups: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["group"].queryset = groups  # type: ignore[attr-defined]

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError(_("Write a note: what should they look at?"))
        return note

    def expires_at(self) -> datetime.datetime:
        return timezone.now() + datetime.timedelta(days=self.cleaned_data["days"])


class CommentForm(forms.Form):
    body = forms.CharField(
        label=_("Your answer or question"),
        max_length=COMMENT_MAX,
        widget=forms.Textarea(attrs={"rows": 6}),
        error_messages={"required": _("The comment is empty.")},
    )

    def clean_body(self) -> str:
        body = self.cleaned_data["body"].strip()
        if not body:
            raise forms.ValidationError(_("The comment is empty."))
        return body
