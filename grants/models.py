"""Time-limited access of helpdesk staff to one study or to the whole tenant.

Helpdesk users read the audit trail and service state, never images or
report text, unless a tenant administrator grants them access here. A grant
is read-only, ends on its own, and every use of it is audited.
"""

import datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from pacs.models import Study


class GrantQuerySet(models.QuerySet["HelpdeskGrant"]):
    def active(self, now: datetime.datetime) -> "GrantQuerySet":
        return self.filter(revoked_at=None, expires_at__gt=now)


class HelpdeskGrant(models.Model):
    helpdesk_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="helpdesk_grants",
        verbose_name=_("helpdesk user"),
    )
    # None: every study of the tenant.
    study = models.ForeignKey(
        Study,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="helpdesk_grants",
    )
    reason = models.TextField(_("reason"))
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # Set when the expiry was written to the audit trail (grants.tasks).
    expiry_recorded_at = models.DateTimeField(null=True, blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-granted_at", "-id"]
        verbose_name = _("helpdesk access grant")
        verbose_name_plural = _("helpdesk access grants")

    def __str__(self) -> str:
        return f"grant {self.pk} to {self.helpdesk_user_id}"

    @property
    def covers_tenant(self) -> bool:
        return self.study_id is None

    def is_active(self, now: datetime.datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
