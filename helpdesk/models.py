"""What the helpdesk console keeps in each tenant's schema.

The helpdesk's staff live in the public schema; what they ask of a tenant
(an MFA reset) and what they found (a connection test) live with the tenant,
where its administrator decides and its audit trail tells.
"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class ResetState(models.TextChoices):
    PENDING = "pending", _("Waiting for approval")
    APPROVED = "approved", _("Approved")
    REFUSED = "refused", _("Refused")
    EXPIRED = "expired", _("Expired")


class MfaResetRequest(models.Model):
    """Helpdesk asks that a user's second factors be removed; an admin decides.

    The requester is a platform user (public schema), so it is kept by id
    and name rather than as a key into this schema's users.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="mfa_reset_requests",
        verbose_name=_("user"),
    )
    reason = models.CharField(_("reason"), max_length=500)
    requested_by_id = models.BigIntegerField()
    requested_by_username = models.CharField(max_length=150)
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    state = models.CharField(
        max_length=16, choices=ResetState.choices, default=ResetState.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("MFA reset request")
        verbose_name_plural = _("MFA reset requests")
        constraints = [
            # Two open requests for one user would let one be approved by
            # someone who refused the other.
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(state="pending"),
                name="helpdesk_one_pending_reset_per_user",
            )
        ]

    def __str__(self) -> str:
        return f"MFA reset {self.pk} of user {self.user_id} ({self.state})"

    def is_open(self, now: datetime.datetime) -> bool:
        return self.state == ResetState.PENDING and self.expires_at > now


class ConnectionCheck(models.Model):
    """The result of one connection test the helpdesk ran (C-ECHO to a remote AE)."""

    ae_title = models.CharField(max_length=16, db_index=True)
    ok = models.BooleanField()
    # A DICOM status ("0x0000") or what went wrong on the way ("rejected").
    result = models.CharField(max_length=64)
    checked_at = models.DateTimeField(auto_now_add=True)
    checked_by_username = models.CharField(max_length=150)

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"C-ECHO {self.ae_title} {self.result}"
