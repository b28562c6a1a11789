"""Reports on studies, their saved versions and their delivery to the RIS."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from pacs.models import Study


class ReportStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PRELIMINARY = "preliminary", _("Preliminary")
    SIGNED = "signed", _("Signed")


class Report(models.Model):
    """One report per study. Once signed its text never changes."""

    study = models.OneToOneField(Study, on_delete=models.PROTECT, related_name="report")
    status = models.CharField(
        max_length=16, choices=ReportStatus.choices, default=ReportStatus.DRAFT
    )
    text = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    signed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"report on {self.study.study_instance_uid}"

    @property
    def is_signed(self) -> bool:
        return self.status == ReportStatus.SIGNED


class ReportVersion(models.Model):
    """Every saved state of a report, kept for the record."""

    report = models.ForeignKey(
        Report, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ReportStatus.choices)
    text = models.TextField(blank=True)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+"
    )
    saved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version"]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "version"], name="unique_report_version"
            )
        ]


class DeliveryState(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    RETRYING = "retrying", _("RIS unreachable, retrying")
    DELIVERED = "delivered", _("Delivered")
    REJECTED = "rejected", _("Refused by the RIS")
    NO_RIS = "no_ris", _("No RIS configured")


class OutboundMessage(models.Model):
    """One HL7 v2 message to the tenant's RIS, kept until acknowledged and after."""

    report = models.ForeignKey(
        Report, on_delete=models.PROTECT, related_name="messages"
    )
    message_control_id = models.CharField(max_length=20, unique=True)
    message_type = models.CharField(max_length=16, default="ORU^R01")
    payload = models.TextField()
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    ack_code = models.CharField(max_length=4, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.message_type} {self.message_control_id} ({self.state})"
