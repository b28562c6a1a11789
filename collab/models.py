"""Second opinions across tenants: the directory, the shares and their threads.

Every table here lives in the public schema (collab is a shared app only),
because both tenants of a share must read it from their own hosts: the
search path of a tenant's connection ends in public. Nothing here holds
patient data except what people write in notes and comments; the study
itself stays in the owner's schema and is read from there, for the one
shared study only, by ``collab.access`` (docs/decisions.md).

Users live in each tenant's schema, so a user is named here by the id and
user name they have in their own tenant, never by a foreign key.
"""

import datetime
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant


class CollaborationGroup(models.Model):
    """A reading group of a tenant that answers second opinions from others.

    Listed in the directory other tenants choose from while it accepts
    requests: a tenant opts in to collaboration by having such a group.
    """

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="collaboration_groups"
    )
    name = models.CharField(_("name"), max_length=100)
    accepts_requests = models.BooleanField(_("accepts requests"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "name"], name="unique_collaboration_group_name"
            )
        ]
        verbose_name = _("second-opinion group")
        verbose_name_plural = _("second-opinion groups")

    def __str__(self) -> str:
        return f"{self.tenant.name} · {self.name}"


class CollaborationMember(models.Model):
    """A radiologist of the group's tenant, by their id in that tenant's schema."""

    group = models.ForeignKey(
        CollaborationGroup, on_delete=models.CASCADE, related_name="members"
    )
    user_id = models.BigIntegerField()
    username = models.CharField(max_length=150)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group", "user_id"], name="unique_collaboration_member"
            )
        ]

    def __str__(self) -> str:
        return self.username


class ShareState(models.TextChoices):
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")
    EXPIRED = "expired", _("Expired")


class SecondOpinionQuerySet(models.QuerySet["SecondOpinion"]):
    def open(self, now: datetime.datetime) -> "SecondOpinionQuerySet":
        """Shares that give access now: active, not yet past their expiry, and
        between two active tenants (a suspended tenant shares nothing and reads
        nothing, though its shares stay as they were for its reactivation)."""
        return self.filter(
            state=ShareState.ACTIVE,
            expires_at__gt=now,
            owner_tenant__is_active=True,
            receiving_tenant__is_active=True,
        )


class SecondOpinion(models.Model):
    """One study of the owner tenant shared with a group of another tenant."""

    # What every URL of the share carries: the study is found through it, never
    # by its UID (two owners may share studies of one UID with the same group),
    # and it cannot be guessed from another share's.
    key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner_tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="second_opinions_out"
    )
    study_instance_uid = models.CharField(max_length=64, db_index=True)
    requested_by_id = models.BigIntegerField()
    requested_by_username = models.CharField(max_length=150)
    receiving_tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="second_opinions_in"
    )
    receiving_group = models.ForeignKey(
        CollaborationGroup, on_delete=models.PROTECT, related_name="second_opinions"
    )
    note = models.TextField(_("note"))
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    state = models.CharField(
        _("state"),
        max_length=16,
        choices=ShareState.choices,
        default=ShareState.ACTIVE,
        db_index=True,
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by_username = models.CharField(max_length=150, blank=True)
    # Comments the other side has not opened yet: the notice on each side.
    unread_by_owner = models.PositiveIntegerField(default=0)
    unread_by_receiver = models.PositiveIntegerField(default=0)

    objects = SecondOpinionQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("second opinion")
        verbose_name_plural = _("second opinions")

    def __str__(self) -> str:
        return f"second opinion {self.pk}"

    def is_open(self, now: datetime.datetime) -> bool:
        return self.state == ShareState.ACTIVE and self.expires_at > now

    def state_at(self, now: datetime.datetime) -> str:
        """The state as people should see it: past its expiry is expired."""
        if self.state == ShareState.ACTIVE and self.expires_at <= now:
            return ShareState.EXPIRED
        return self.state


class Side(models.TextChoices):
    OWNER = "owner", _("Requesting tenant")
    RECEIVER = "receiver", _("Receiving group")


class SecondOpinionComment(models.Model):
    share = models.ForeignKey(
        SecondOpinion, on_delete=models.CASCADE, related_name="comments"
    )
    side = models.CharField(max_length=16, choices=Side.choices)
    author_id = models.BigIntegerField()
    author_username = models.CharField(max_length=150)
    body = models.TextField(_("comment"))
    posted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["posted_at", "id"]

    def __str__(self) -> str:
        return f"comment {self.pk} on {self.share_id}"
