"""Reports on studies, their saved versions and their delivery to the RIS.

Also the tools of writing them: templates, pick-lists and macros managed by
each tenant, references to key images, the editing lock, addenda and
critical finding notifications.
"""

import datetime

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
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

    # The editing lock: one editor at a time. It expires on its own, so a
    # closed laptop never keeps a report from the rest of the department.
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    lock_expires_at = models.DateTimeField(null=True, blank=True)
    preliminary_at = models.DateTimeField(null=True, blank=True)
    critical_finding = models.BooleanField(default=False)
    critical_flagged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    critical_flagged_at = models.DateTimeField(null=True, blank=True)
    # The text as last issued (preliminary or signed) and its version: what
    # referrers, patients, exports and the RIS read. A preliminary report
    # stays editable, and its unsigned edits are the radiologists' until
    # issued again or signed.
    issued_text = models.TextField(blank=True)
    issued_version = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"report on {self.study.study_instance_uid}"

    @property
    def is_signed(self) -> bool:
        return self.status == ReportStatus.SIGNED

    @property
    def is_preliminary(self) -> bool:
        return self.status == ReportStatus.PRELIMINARY

    @property
    def visible_to_referrer(self) -> bool:
        """Referrers see preliminary and signed reports, never drafts."""
        return self.status in (ReportStatus.PRELIMINARY, ReportStatus.SIGNED)

    @property
    def text_as_issued(self) -> str:
        """What anyone but a radiologist reads: never an unsigned edit.

        A signed text never changes, so it is its own issued text (also for
        a report written before issued texts were kept, or by hand).
        """
        return self.text if self.is_signed else self.issued_text

    @property
    def version_as_issued(self) -> int | None:
        if self.issued_version is None and self.is_signed:
            return self.version
        return self.issued_version

    @property
    def has_unissued_changes(self) -> bool:
        """A preliminary report edited since it was issued."""
        return self.is_preliminary and self.text != self.issued_text

    @property
    def has_signed_addenda(self) -> bool:
        return self.addenda.filter(status=AddendumStatus.SIGNED).exists()

    @property
    def result_status(self) -> str:
        """HL7 v2 OBR-25 / OBX-11 result status: P, F, or C after a signed addendum."""
        if self.status == ReportStatus.PRELIMINARY:
            return "P"
        if self.status == ReportStatus.SIGNED:
            return "C" if self.has_signed_addenda else "F"
        return ""

    def last_issued_at(self) -> datetime.datetime | None:
        """When the report or an addendum was last issued (preliminary or signed)."""
        moments = [self.preliminary_at, self.signed_at]
        moments += self.addenda.filter(status=AddendumStatus.SIGNED).values_list(
            "signed_at", flat=True
        )
        return max((moment for moment in moments if moment), default=None)

    def lock_holder(self, now: datetime.datetime) -> "AbstractBaseUser | None":
        """The user who holds the lock at ``now``, None when free or expired."""
        if self.locked_by_id is None or self.lock_expires_at is None:
            return None
        if self.lock_expires_at <= now:
            return None
        return self.locked_by


class AddendumStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SIGNED = "signed", _("Signed")


class Addendum(models.Model):
    """Text added to a signed report; the report's own text stays as signed."""

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="addenda")
    number = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=AddendumStatus.choices, default=AddendumStatus.DRAFT
    )
    text = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    signed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "number"], name="unique_addendum_number"
            )
        ]

    def __str__(self) -> str:
        return f"addendum {self.number} to {self.report}"

    @property
    def is_signed(self) -> bool:
        return self.status == AddendumStatus.SIGNED


class VersionKind(models.TextChoices):
    REPORT = "report", _("Report")
    ADDENDUM = "addendum", _("Addendum")


class ReportVersion(models.Model):
    """Every saved state of a report or of one of its addenda, kept for the record."""

    report = models.ForeignKey(
        Report, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ReportStatus.choices)
    kind = models.CharField(
        max_length=16, choices=VersionKind.choices, default=VersionKind.REPORT
    )
    addendum = models.ForeignKey(
        Addendum,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="versions",
    )
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
    # Pending when the tenant was backed up, then restored: the deployment
    # it came from may have sent it since, so a person decides to resend.
    HELD = "held", _("Held after a restore: resend by hand")


class OutboundMessage(models.Model):
    """One HL7 v2 message to the tenant's RIS, kept until acknowledged and after."""

    report = models.ForeignKey(
        Report, on_delete=models.PROTECT, related_name="messages"
    )
    # Set when the message carries a signed addendum (result status C).
    addendum = models.ForeignKey(
        Addendum,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="messages",
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
    # When the task that carries the message is due to try again. Beat's
    # sweep finds a lost task by it (a minute overdue), and a second task
    # that comes before it leaves the message to the one that is due.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.message_type} {self.message_control_id} ({self.state})"


class ReportTemplate(models.Model):
    """A tenant's starting text for reports of one modality and body part.

    Sections hold free text; ``[[name]]`` in a section is a field the editor's
    "next field" jumps to, and a pick-list of that name offers its choices.
    """

    name = models.CharField(_("name"), max_length=100)
    modality = models.CharField(
        _("modality"), max_length=16, blank=True, help_text=_("Empty: any modality.")
    )
    body_part = models.CharField(
        _("body part"),
        max_length=64,
        blank=True,
        help_text=_("DICOM Body Part Examined, e.g. CHEST. Empty: any body part."),
    )
    # A database default too: templates are also loaded by SQL (seeding, tests).
    language = models.CharField(
        _("language"),
        max_length=8,
        blank=True,
        default="",
        db_default="",
        choices=settings.LANGUAGES,
        help_text=_(
            "Language the template is written in; the editor offers templates "
            "in the reader's language first. Empty: any language."
        ),
    )
    clinical_information = models.TextField(_("clinical information"), blank=True)
    technique = models.TextField(_("technique"), blank=True)
    comparison = models.TextField(_("comparison"), blank=True)
    findings = models.TextField(_("findings"), blank=True)
    impression = models.TextField(_("impression"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["modality", "body_part", "name"]
        verbose_name = _("report template")
        verbose_name_plural = _("report templates")

    def __str__(self) -> str:
        return self.name


class PickList(models.Model):
    """Choices offered for a ``[[name]]`` field of a template."""

    name = models.SlugField(_("name"), max_length=64, unique=True)
    choices = models.TextField(_("choices"), help_text=_("One choice per line."))

    class Meta:
        ordering = ["name"]
        verbose_name = _("pick-list")
        verbose_name_plural = _("pick-lists")

    def __str__(self) -> str:
        return self.name

    @property
    def choice_list(self) -> list[str]:
        return [line.strip() for line in self.choices.splitlines() if line.strip()]


class ReportMacro(models.Model):
    """Normal text inserted by name, typed or spoken ("macro normal chest")."""

    name = models.CharField(
        _("name"),
        max_length=64,
        unique=True,
        help_text=_("Lower case words, as they are spoken."),
    )
    text = models.TextField(_("text"))

    class Meta:
        ordering = ["name"]
        verbose_name = _("report macro")
        verbose_name_plural = _("report macros")

    def __str__(self) -> str:
        return self.name


class KeyImageReference(models.Model):
    """A key image cited in the report, with the window it was read at."""

    report = models.ForeignKey(
        Report, on_delete=models.CASCADE, related_name="image_references"
    )
    number = models.PositiveIntegerField()
    study_instance_uid = models.CharField(max_length=64)
    series_instance_uid = models.CharField(max_length=64)
    sop_instance_uid = models.CharField(max_length=64)
    frame_number = models.PositiveIntegerField(default=1)
    window_center = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "number"], name="unique_image_reference_number"
            )
        ]

    def __str__(self) -> str:
        return f"image {self.number} of {self.report}"

    @property
    def is_issued(self) -> bool:
        """Cited before the text citing it was issued.

        One cited since belongs to an unsigned edit or a draft addendum: the
        radiologists' until issued, like the text.
        """
        issued_at = self.report.last_issued_at()
        return issued_at is not None and self.created_at <= issued_at


class NotificationKind(models.TextChoices):
    CRITICAL_FINDING = "critical_finding", _("Critical finding")
    REPORT_PRELIMINARY = "report_preliminary", _("Preliminary report")
    REPORT_SIGNED = "report_signed", _("Signed report")
    ADDENDUM_SIGNED = "addendum_signed", _("Addendum signed")


class Notification(models.Model):
    """A message to one user inside Nimbus.

    A critical finding is acknowledged by a person (who and when are kept);
    the others (a report issued or signed) are only read, when the referrer
    opens the study in the portal.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    report = models.ForeignKey(
        Report, on_delete=models.CASCADE, related_name="notifications"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} for {self.recipient_id}"


class StudyReferral(models.Model):
    """A referrer's access to one study: its preliminary and signed report.

    Made by hospital IT (admin) or when the study's Referring Physician's Name
    matches a referrer of the tenant.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    referrer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="referrals"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "referrer"], name="unique_study_referral"
            )
        ]

    def __str__(self) -> str:
        return f"{self.study} for {self.referrer_id}"
