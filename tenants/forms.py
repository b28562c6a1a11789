import re
from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import (
    DomainNameValidator,
    MaxValueValidator,
    MinValueValidator,
    validate_ipv46_address,
)
from django.utils.translation import gettext_lazy as _

from pacs.models import RemoteApplicationEntity
from tenants.actions import OnboardingSpec, RemoteAESpec, TenantSpec
from tenants.models import (
    Domain,
    Tenant,
    normalise_host,
    validate_ae_title,
    validate_host,
)

# Stricter than PostgreSQL: the schema name also names export files.
SCHEMA_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_SCHEMAS = {"public", "information_schema"}
PORT_PATTERN = re.compile(r"[0-9]{1,5}")


class OnboardingForm(forms.Form):
    """Everything a hospital needs on its first day, in one form."""

    name = forms.CharField(label=_("Hospital name"), max_length=200)
    schema_name = forms.CharField(
        label=_("Schema"),
        max_length=63,
        help_text=_("Lower-case letters, digits and _; cannot be changed later."),
    )
    domains = forms.CharField(
        label=_("Domains"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One host name per line; the first is the primary one."),
    )
    ae_title = forms.CharField(
        label=_("AE title"),
        max_length=16,
        validators=[validate_ae_title],
        help_text=_("Called AE title that modalities use to send studies."),
    )
    remote_aes = forms.CharField(
        label=_("Known remote AEs"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            "One per line: AE title, host and port, e.g. CT_ROOM1 10.0.4.21 104 "
            "(with commas between them when the title has a space)."
        ),
    )
    ris_host = forms.CharField(
        label=_("RIS host"),
        max_length=255,
        required=False,
        validators=[validate_host],
    )
    ris_port = forms.IntegerField(
        label=_("RIS port"), required=False, min_value=1, max_value=65535
    )
    ris_tls = forms.BooleanField(label=_("MLLP over TLS"), required=False)
    languages = forms.MultipleChoiceField(
        label=_("Languages"),
        choices=settings.LANGUAGES,
        initial=[code for code, _name in settings.LANGUAGES],
        widget=forms.CheckboxSelectMultiple,
    )
    default_language = forms.ChoiceField(
        label=_("Default language"), choices=settings.LANGUAGES
    )
    idle_timeout_minutes = forms.IntegerField(
        label=_("Idle time-out (minutes)"),
        initial=15,
        validators=[MinValueValidator(1), MaxValueValidator(720)],
    )
    retention_days = forms.IntegerField(
        label=_("Retention period (days)"),
        initial=3650,
        validators=[MinValueValidator(0), MaxValueValidator(36500)],
    )
    admin_username = forms.CharField(
        label=_("User name of the first administrator"),
        max_length=150,
        validators=[UnicodeUsernameValidator()],
    )
    admin_email = forms.EmailField(label=_("E-mail of the first administrator"))

    def clean_schema_name(self) -> str:
        schema = self.cleaned_data["schema_name"].strip()
        if not SCHEMA_PATTERN.match(schema) or schema in RESERVED_SCHEMAS:
            raise ValidationError(
                _(
                    "Use lower-case letters, digits and _, starting with a letter "
                    "(at most 63 characters)."
                )
            )
        if (
            schema.startswith("pg_")
            or Tenant.objects.filter(schema_name=schema).exists()
        ):
            raise ValidationError(_("A tenant with this schema already exists."))
        return schema

    def clean_domains(self) -> list[str]:
        domains = [
            normalise_host(line) for line in self.cleaned_data["domains"].splitlines()
        ]
        domains = [domain for domain in domains if domain]
        if not domains:
            raise ValidationError(_("Give at least one host name."))
        for domain in domains:
            _validate_host_name(domain)
        if len(set(domains)) != len(domains):
            raise ValidationError(_("A host name appears twice."))
        taken = Domain.objects.filter(domain__in=domains).values_list(
            "domain", flat=True
        )
        if taken:
            raise ValidationError(
                _("Domain %(domains)s already belongs to another tenant."),
                params={"domains": ", ".join(taken)},
            )
        return domains

    def clean_ae_title(self) -> str:
        ae_title = self.cleaned_data["ae_title"]
        if Tenant.objects.filter(ae_title=ae_title).exists():
            raise ValidationError(_("Another tenant already has this AE title."))
        return ae_title

    def clean_remote_aes(self) -> list[RemoteAESpec]:
        remotes = [
            _remote_ae(number, line)
            for number, line in enumerate(
                self.cleaned_data["remote_aes"].splitlines(), 1
            )
            if line.strip()
        ]
        titles = [remote.ae_title for remote in remotes]
        if len(set(titles)) != len(titles):
            raise ValidationError(_("A remote AE title appears twice."))
        return remotes

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        if bool(cleaned.get("ris_host")) != bool(cleaned.get("ris_port")):
            self.add_error(
                "ris_port" if cleaned.get("ris_host") else "ris_host",
                _("Give both the RIS host and its port, or neither."),
            )
        languages = cleaned.get("languages") or []
        default = cleaned.get("default_language")
        if default and languages and default not in languages:
            self.add_error(
                "default_language",
                _("The default language must be one of the tenant's languages."),
            )
        return cleaned

    def spec(self) -> OnboardingSpec:
        data = self.cleaned_data
        default = data["default_language"]
        languages = [default] + [code for code in data["languages"] if code != default]
        tenant = TenantSpec(
            schema=data["schema_name"],
            name=data["name"],
            domains=tuple(data["domains"]),
            ae_title=data["ae_title"],
            ris_host=data["ris_host"].strip(),
            ris_port=data["ris_port"] or 0,
            ris_tls=data["ris_tls"],
            idle_timeout_minutes=data["idle_timeout_minutes"],
            retention_days=data["retention_days"],
            languages=tuple(languages),
        )
        return OnboardingSpec(
            tenant=tenant,
            admin_username=data["admin_username"],
            admin_email=data["admin_email"],
            remote_aes=tuple(data["remote_aes"]),
        )

    def add_action_errors(self, error: ValidationError) -> None:
        """Errors the action found (a race, a model rule) on their fields."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for field, messages in error.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)


def _validate_host_name(domain: str) -> None:
    try:
        validate_ipv46_address(domain)
        return
    except ValidationError:
        pass
    try:
        DomainNameValidator(accept_idna=False)(domain)
    except ValidationError:
        raise ValidationError(
            _("%(domain)s is not a host name."), params={"domain": domain}
        ) from None


def _remote_ae(number: int, line: str) -> RemoteAESpec:
    # Commas allow an AE title with a space in it ("CT ROOM 1, 10.0.4.21, 104").
    parts = [part.strip() for part in line.split(",")] if "," in line else line.split()
    # str.isdigit() takes "²" and other digits that int() refuses: ASCII only.
    if len(parts) != 3 or not PORT_PATTERN.fullmatch(parts[2]):
        raise ValidationError(
            _("Line %(number)s: give an AE title, a host and a port."),
            params={"number": number},
        )
    title, host, port = parts[0], parts[1], int(parts[2])
    if not 1 <= port <= 65535:
        raise ValidationError(
            _("Line %(number)s: the port is a number from 1 to 65535."),
            params={"number": number},
        )
    _validate_on_line(number, validate_ae_title, title)
    host_field = RemoteApplicationEntity._meta.get_field("host")
    if len(host) > host_field.max_length:  # type: ignore[operator]
        raise ValidationError(
            _("Line %(number)s: the host name is too long."), params={"number": number}
        )
    _validate_on_line(number, validate_host, host)
    return RemoteAESpec(ae_title=title, host=host, port=port)


def _validate_on_line(
    number: int, validator: Callable[[str], None], value: str
) -> None:
    try:
        validator(value)
    except ValidationError as error:
        raise ValidationError(
            _("Line %(number)s: %(reason)s"),
            params={"number": number, "reason": " ".join(error.messages)},
        ) from None
