"""The tenant registry, kept in the public schema.

A tenant is one hospital (or reading group) with its own PostgreSQL schema.
It is reached by host name over HTTP and by called AE title over DICOM.
"""

import re
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    validate_ipv46_address,
)
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_tenants.models import DomainMixin, TenantMixin

# PS3.5 6.2: AE is up to 16 characters of the default repertoire, no
# backslash or control characters; leading/trailing spaces are not significant.
AE_TITLE_PATTERN = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def validate_ae_title(value: str) -> None:
    if not AE_TITLE_PATTERN.match(value) or value.strip() != value or not value.strip():
        raise ValidationError(
            _(
                "An AE title is 1 to 16 printable characters, "
                "without backslash or surrounding spaces."
            )
        )


# RFC 1123 2.1: letters, digits and hyphens, 1 to 63 per label, no hyphen at
# either end; the last label is not all digits (that would be an IP address).
HOST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
HOST_NAME_PATTERN = re.compile(rf"(?:{HOST_LABEL}\.)*(?![0-9]+\Z){HOST_LABEL}")


def validate_host(value: str) -> None:
    """A host name or an IP address: what a peer is reached at, nothing else."""
    try:
        validate_ipv46_address(value)
        return
    except ValidationError:
        pass
    if len(value) > 253 or not HOST_NAME_PATTERN.fullmatch(value):
        raise ValidationError(
            _("%(host)s is not a host name or an IP address."),
            params={"host": value},
        )


def normalise_host(name: str) -> str:
    """One spelling per host: lower case (RFC 4343), no trailing dot (FQDN form)."""
    return name.strip().lower().removesuffix(".")


def validate_absolute_path(value: str) -> None:
    # A relative path would depend on the directory each worker starts in.
    if value and not PurePosixPath(value).is_absolute():
        raise ValidationError(_("Give the full path of the file, starting with /."))


class Tenant(TenantMixin):
    name = models.CharField(_("name"), max_length=200)
    ae_title = models.CharField(
        _("AE title"),
        max_length=16,
        unique=True,
        validators=[validate_ae_title],
        help_text=_(
            "Called AE title that modalities use to send studies to this tenant."
        ),
    )
    ris_host = models.CharField(
        _("RIS host"), max_length=255, blank=True, validators=[validate_host]
    )
    ris_port = models.PositiveIntegerField(
        _("RIS port"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(65535)],
    )
    ris_receiving_application = models.CharField(
        _("RIS receiving application"), max_length=180, blank=True, default="RIS"
    )
    ris_receiving_facility = models.CharField(
        _("RIS receiving facility"), max_length=180, blank=True
    )
    # Only paths are kept here: key material in the database would travel
    # with every backup and dump of the public schema.
    ris_tls = models.BooleanField(
        _("MLLP over TLS"),
        default=False,
        help_text=_(
            "Send reports to the RIS over TLS 1.2 or later. Nimbus checks that "
            "the RIS's certificate is signed by a trusted CA and names the RIS "
            "host above; a message that fails the check stays in the queue "
            "and is retried."
        ),
    )
    ris_tls_ca_file = models.CharField(
        _("RIS CA bundle (path)"),
        max_length=500,
        blank=True,
        validators=[validate_absolute_path],
        help_text=_(
            "PEM file, on the Nimbus servers, of the CAs that may sign the "
            "RIS's certificate. Empty: NIMBUS_HL7_TLS_CA, else the system's "
            "trusted CAs."
        ),
    )
    ris_tls_cert_file = models.CharField(
        _("client certificate (path)"),
        max_length=500,
        blank=True,
        validators=[validate_absolute_path],
        help_text=_(
            "PEM certificate (chain) that Nimbus presents to a RIS that asks "
            "for one. Empty: NIMBUS_HL7_TLS_CERT, if set."
        ),
    )
    ris_tls_key_file = models.CharField(
        _("client key (path)"),
        max_length=500,
        blank=True,
        validators=[validate_absolute_path],
        help_text=_(
            "PEM private key of that certificate, readable by the workers only. "
            "Empty: NIMBUS_HL7_TLS_KEY."
        ),
    )
    only_known_peers_may_store = models.BooleanField(
        _("only known peers may store"),
        default=False,
        help_text=_(
            "Accept DICOM associations only from known remote AEs, calling from "
            'their own hosts; storing also needs "may store". A connection '
            "test (C-ECHO) stays open to any peer. Queries and retrieves "
            "(C-FIND, C-MOVE, C-GET) are for known remote AEs only, whether "
            "this is on or off."
        ),
    )
    idle_timeout_minutes = models.PositiveSmallIntegerField(
        _("idle time-out (minutes)"),
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(720)],
        help_text=_("A browser session without activity for this long is signed out."),
    )
    languages = ArrayField(
        models.CharField(max_length=8, choices=settings.LANGUAGES),
        verbose_name=_("languages"),
        default=list,
        blank=True,
        help_text=_(
            "Languages offered to this tenant's users; the first is the default. "
            "Empty: every language Nimbus has."
        ),
    )
    # Ten years: the longest period most European hospitals keep diagnostic
    # images of adults; a tenant sets its own (children's images often longer).
    retention_days = models.PositiveIntegerField(
        _("retention period (days)"),
        default=3650,
        validators=[MaxValueValidator(36500)],
        help_text=_(
            "Studies younger than this are kept: the tenant cannot be deleted "
            "while it has one, unless its export was handed over to the hospital."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Creating the schema runs every tenant migration; the admin form and
    # create_tenant both rely on that.
    auto_create_schema = True

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    def clean(self) -> None:
        super().clean()
        # A certificate of this tenant with the deployment's key (or the
        # reverse) would never match: both or neither.
        if bool(self.ris_tls_cert_file) != bool(self.ris_tls_key_file):
            message = _("Give both the client certificate and its key, or neither.")
            field = (
                "ris_tls_key_file" if self.ris_tls_cert_file else "ris_tls_cert_file"
            )
            raise ValidationError({field: message})

    @property
    def has_ris(self) -> bool:
        return bool(self.ris_host and self.ris_port)


class Domain(DomainMixin):
    class Meta:
        verbose_name = _("domain")
        verbose_name_plural = _("domains")

    # "pacs.example." is "pacs.example": stored twice, the two could belong
    # to two tenants, and a request's Host would pick one of them.
    def clean(self) -> None:
        super().clean()
        self.domain = normalise_host(self.domain)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.domain = normalise_host(self.domain)
        super().save(*args, **kwargs)


class TenantExport(models.Model):
    """An archive of a tenant's studies, reports and audit trail.

    Kept in the public schema, and kept after the tenant is deleted: it is
    the proof of what was handed over.
    """

    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="exports",
        verbose_name=_("tenant"),
    )
    schema_name = models.CharField(_("schema"), max_length=63)
    path = models.CharField(_("archive"), max_length=500)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    size = models.PositiveBigIntegerField(_("size (bytes)"))
    study_count = models.PositiveIntegerField(_("studies"))
    instance_count = models.PositiveIntegerField(_("instances"))
    # The tenant's last change that the archive holds; a later change means
    # the archive is out of date and the tenant may not be deleted.
    covers_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.CharField(_("created by"), max_length=150)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("tenant export")
        verbose_name_plural = _("tenant exports")

    def __str__(self) -> str:
        return f"{self.schema_name} {self.created_at:%Y-%m-%d %H:%M}"
