"""Patient access links: a patient's own signed reports and images (right of access).

A radiologist makes a link for a study with a signed report. The link is an
unguessable token (only its SHA-256 is stored), bound to that one study,
and expires. Opening it asks for a one-time code e-mailed to the address
given when the link was made; too many wrong codes lock the link.
"""

import datetime
import enum

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from pacs.models import Patient, Study


class LinkState(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    LOCKED = "locked"


class PatientLink(models.Model):
    # What the link opens: this study's signed report and its images, and no
    # other study of the same Patient row (a patient ID identifies no one
    # across studies when it is empty or a placeholder such as "0").
    study = models.ForeignKey(
        Study, on_delete=models.PROTECT, related_name="patient_links"
    )
    # The study's patient when the link was made, for the audit trail.
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="access_links"
    )
    email = models.EmailField(_("patient's e-mail address"))
    token_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"))
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    locked_at = models.DateTimeField(null=True, blank=True)
    # The current one-time code, as an HMAC; a new code replaces the old.
    code_hash = models.CharField(max_length=64, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    codes_sent = models.PositiveSmallIntegerField(default=0)
    last_code_sent_at = models.DateTimeField(null=True, blank=True)
    # Wrong codes over the link's life, whichever code they were meant for.
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    last_opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("patient access link")
        verbose_name_plural = _("patient access links")

    def __str__(self) -> str:
        return f"patient link {self.pk}"

    def state(self, now: datetime.datetime) -> LinkState:
        if self.revoked_at is not None:
            return LinkState.REVOKED
        if self.locked_at is not None:
            return LinkState.LOCKED
        if self.expires_at <= now:
            return LinkState.EXPIRED
        return LinkState.ACTIVE

    def is_usable(self, now: datetime.datetime) -> bool:
        return self.state(now) == LinkState.ACTIVE

    @property
    def audit_actor(self) -> str:
        """How the trail names the patient behind this link (there is no user)."""
        return f"patient-link:{self.pk}"


class PatientAccessSettings(models.Model):
    """The tenant's defaults for patient links (one row, edited in the admin)."""

    link_days = models.PositiveSmallIntegerField(
        _("link lifetime (days)"),
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text=_("How long a new patient access link can be used."),
    )

    class Meta:
        verbose_name = _("patient access settings")
        verbose_name_plural = _("patient access settings")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)
