"""The archive index: patient, study, series and instance (PS3.3 C.7).

Field names are the DICOM keywords in snake_case. The DICOM files themselves
are kept as received in the file storage; these rows only index them.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from tenants.models import validate_ae_title


class ReadingStatus(models.TextChoices):
    UNREAD = "unread", _("Unread")
    IN_PROGRESS = "in_progress", _("In progress")
    PRELIMINARY = "preliminary", _("Preliminary")
    SIGNED = "signed", _("Signed")


class PixelStatus(models.TextChoices):
    OK = "ok", _("Pixel data present")
    NONE = "none", _("No pixel data")
    TRUNCATED = "truncated", _("Pixel data truncated")
    UNREADABLE = "unreadable", _("Pixel data unreadable")


class HeaderField(models.JSONField):
    """A JSON column inserted in bulk as one parameter per row.

    Django inserts many rows on PostgreSQL through UNNEST of one text array
    per column, and psycopg escapes every quote of every JSON document in
    that array with a regular expression: for DICOM headers that costs more
    than the rest of the insert. A field with a placeholder of its own is
    inserted row by row in a VALUES list instead.
    """

    def get_placeholder(
        self, value: object, compiler: object, connection: object
    ) -> str:
        return "%s"


class Patient(models.Model):
    patient_id = models.CharField(_("patient ID"), max_length=64, blank=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True)
    patient_name = models.CharField(_("patient name"), max_length=324, blank=True)
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True)
    # PatientID is type 2: an empty one identifies no one, and sharing a row
    # would show one person's studies under another's name. Such a patient
    # is keyed by its study's Study Instance UID here; '' for a real ID.
    identity_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "issuer_of_patient_id", "identity_key"],
                name="unique_patient_per_issuer",
            )
        ]
        indexes = [
            # The worklist's searches match any part of the ID or name, in any
            # case (icontains: UPPER(...) LIKE '%...%'); trigram indexes find
            # those rows without reading every patient of the tenant.
            GinIndex(
                OpClass(Upper("patient_id"), name="gin_trgm_ops"),
                name="pacs_patient_id_search",
            ),
            GinIndex(
                OpClass(Upper("patient_name"), name="gin_trgm_ops"),
                name="pacs_patient_name_search",
            ),
        ]

    def __str__(self) -> str:
        return self.patient_id or f"patient {self.pk}"


class Study(models.Model):
    study_instance_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="studies"
    )
    study_date = models.DateField(_("study date"), null=True, blank=True, db_index=True)
    study_time = models.TimeField(null=True, blank=True)
    accession_number = models.CharField(
        _("accession number"), max_length=64, blank=True, db_index=True
    )
    study_id = models.CharField(max_length=64, blank=True)
    study_description = models.CharField(_("description"), max_length=200, blank=True)
    referring_physician_name = models.CharField(max_length=324, blank=True)
    # Denormalised for the worklist, which must sort and filter without joins.
    modalities_in_study = models.CharField(_("modalities"), max_length=64, blank=True)
    number_of_study_related_series = models.PositiveIntegerField(default=0)
    number_of_study_related_instances = models.PositiveIntegerField(default=0)
    reading_status = models.CharField(
        _("reading status"),
        max_length=16,
        choices=ReadingStatus.choices,
        default=ReadingStatus.UNREAD,
        db_index=True,
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        ordering = ["-study_date", "-received_at"]
        indexes = [
            # QIDO-RS's study order (pacs.query.engine.find): a page of 100
            # walks this index instead of sorting every study of the tenant.
            models.Index(
                models.F("study_date").desc(nulls_last=True),
                models.F("study_time").desc(nulls_last=True),
                "id",
                name="pacs_study_newest_first",
            ),
        ]

    def __str__(self) -> str:
        return self.study_instance_uid

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities_in_study.split("\\") if m]


class Series(models.Model):
    series_instance_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=200, blank=True)
    body_part_examined = models.CharField(max_length=64, blank=True)
    number_of_series_related_instances = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "series"
        ordering = ["series_number", "pk"]

    def __str__(self) -> str:
        return self.series_instance_uid


class Instance(models.Model):
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    series = models.ForeignKey(
        Series, on_delete=models.CASCADE, related_name="instances"
    )
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    # Along the slice normal; lets the viewer order slices by position, not number.
    slice_position = models.FloatField(null=True, blank=True)
    image_position_patient = models.JSONField(null=True, blank=True)
    image_orientation_patient = models.JSONField(null=True, blank=True)
    window_center = models.FloatField(null=True, blank=True)
    window_width = models.FloatField(null=True, blank=True)
    pixel_status = models.CharField(
        max_length=16, choices=PixelStatus.choices, default=PixelStatus.OK
    )
    pixel_error = models.CharField(max_length=300, blank=True)
    # The dataset in the DICOM JSON model (PS3.18 F.2) without pixel data;
    # large binary values carry an empty "BulkDataURI" that responses fill
    # in. It answers metadata and query requests without opening the file.
    metadata = HeaderField(default=dict, blank=True)
    storage_path = models.CharField(max_length=300)
    file_size = models.PositiveBigIntegerField()
    calling_ae_title = models.CharField(max_length=16, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instance_number", "pk"]
        indexes = [models.Index(fields=["series", "instance_number"])]

    def __str__(self) -> str:
        return self.sop_instance_uid


class IngestFailure(models.Model):
    """A received file that could not be indexed. The file itself is kept."""

    quarantine_path = models.CharField(max_length=300)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    error = models.TextField()
    calling_ae_title = models.CharField(max_length=16, blank=True)
    failed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        what = self.sop_instance_uid or self.quarantine_path
        return f"{self.failed_at:%Y-%m-%d %H:%M} {what}"


class RemoteApplicationEntity(models.Model):
    """A DICOM peer this tenant knows: a C-MOVE destination or a trusted sender.

    The title is what the peer calls itself (calling AE title) and what a
    C-MOVE request names as Move Destination (PS3.4 C.4.2.1.3). Where the
    tenant turns the allow-list on, the peer must also connect from ``host``
    (a name is resolved to its addresses).
    """

    ae_title = models.CharField(
        _("AE title"), max_length=16, unique=True, validators=[validate_ae_title]
    )
    host = models.CharField(_("host"), max_length=255)
    port = models.PositiveIntegerField(
        _("port"), validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    may_store = models.BooleanField(
        _("may store"),
        default=False,
        help_text=_("This peer may send instances to this tenant (C-STORE)."),
    )
    may_retrieve = models.BooleanField(
        _("may retrieve"),
        default=False,
        help_text=_(
            "Instances may be sent to this peer: as a C-MOVE destination, "
            "or to its own C-GET requests."
        ),
    )
    comes_over_internet = models.BooleanField(
        _("comes over the internet"),
        default=False,
        help_text=_(
            "Accept this peer only over DICOM TLS, with a client certificate "
            "signed by the listener's certificate authority."
        ),
    )

    class Meta:
        ordering = ["ae_title"]
        verbose_name = _("remote application entity")
        verbose_name_plural = _("remote application entities")

    def __str__(self) -> str:
        return f"{self.ae_title} ({self.host}:{self.port})"


class OrderStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled, no images yet")
    IMAGES_RECEIVED = "images_received", _("Images received")
    CANCELLED = "cancelled", _("Cancelled by the RIS")


class ScheduledStudy(models.Model):
    """A study that the RIS ordered (HL7 ORM^O01 or OMI^O23) before any image.

    The order creates its Study row at once so that it shows on the worklist.
    When the order names no Study Instance UID, the study gets a placeholder
    UID; the first image with the order's accession number and patient ID
    takes the study over under its own UID (see ``claim_for_images``).
    """

    study = models.OneToOneField(
        Study, on_delete=models.CASCADE, related_name="scheduled_study"
    )
    accession_number = models.CharField(max_length=64, db_index=True)
    patient_id = models.CharField(max_length=64)
    placer_order_number = models.CharField(max_length=64, blank=True)
    filler_order_number = models.CharField(max_length=64, blank=True)
    requested_procedure_id = models.CharField(max_length=64, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # False while the study carries the placeholder UID given by Nimbus.
    uid_from_order = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.SCHEDULED
    )
    message_control_id = models.CharField(max_length=199, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"order {self.accession_number} ({self.status})"

    @classmethod
    def claim_for_images(
        cls, study_instance_uid: str, accession_number: str, patient_id: str
    ) -> Study | None:
        """The scheduled study that images of a new UID join, renamed to that UID.

        Only an order without a UID of its own and without images is claimed:
        its row is locked, so two workers ingesting the first images of the
        same study at once claim it once, and the second finds the new UID.
        """
        if not accession_number:
            return None
        order = (
            cls.objects.select_for_update(of=("self",))
            .select_related("study")
            .filter(
                accession_number=accession_number,
                patient_id=patient_id,
                status=OrderStatus.SCHEDULED,
                uid_from_order=False,
            )
            .order_by("received_at")
            .first()
        )
        if order is None:
            return None
        order.study.study_instance_uid = study_instance_uid
        order.study.save(update_fields=["study_instance_uid", "updated_at"])
        order.uid_from_order = True
        order.status = OrderStatus.IMAGES_RECEIVED
        order.save(update_fields=["uid_from_order", "status", "updated_at"])
        return order.study
