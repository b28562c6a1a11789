"""The audit trail: who did what to which patient data, and when.

Each tenant's events live in its own schema, written in the same transaction
as the change they record. Event types are numbered in ranges so that a
search can ask for "all security events" by range.
"""

from django.db import models
from django.db.models import Func
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class EventType(models.IntegerChoices):
    # 1xx: authentication and security
    LOGIN_SUCCEEDED = 100, _("Sign-in succeeded")
    LOGIN_FAILED = 101, _("Sign-in failed")
    LOGOUT = 102, _("Signed out")
    ACCESS_DENIED = 110, _("Access denied")
    API_TOKEN_ISSUED = 120, _("API token issued")
    # 15x: DICOM network security (pacs/dimse/, issue 6); choices only, the
    # migration that records them is the audit owner's.
    DICOM_ASSOCIATION_REJECTED = 151, _("DICOM association rejected")
    # --- 17x: patient access links (patients/, issue 6 item 3, issue 7 item 5)
    PATIENT_LINK_CREATED = 170, _("Patient access link created")
    PATIENT_LINK_REVOKED = 171, _("Patient access link revoked")
    PATIENT_CODE_SENT = 172, _("Patient access code sent")
    PATIENT_CODE_FAILED = 173, _("Patient access code refused")
    PATIENT_LINK_LOCKED = 174, _("Patient access link locked after wrong codes")
    PATIENT_LINK_OPENED = 175, _("Patient access link opened")
    # --- 18x: time-limited helpdesk access (grants/, issue 6 item 3) --------
    HELPDESK_GRANT_GIVEN = 180, _("Helpdesk access granted")
    HELPDESK_GRANT_REVOKED = 181, _("Helpdesk access revoked")
    HELPDESK_GRANT_EXPIRED = 182, _("Helpdesk access expired")
    # --- 19x: sign-in protections and sessions (accounts/, issue 6) ---------
    # Choices only: the migration that records them is the audit owner's.
    ACCOUNT_LOCKED_OUT = 190, _("Sign-in locked after repeated failures")
    OTP_DEVICE_ENROLLED = 191, _("Authenticator app enrolled")
    BACKUP_CODES_ISSUED = 192, _("Backup codes issued")
    PASSWORD_CHANGED = 193, _("Password changed")
    SESSIONS_ENDED = 194, _("Signed out everywhere")
    SESSION_EXPIRED = 195, _("Session expired")
    REAUTHENTICATED = 196, _("Re-authenticated with a one-time password")
    # --- end of the 19x block ------------------------------------------------
    # 2xx: reading patient data
    WORKLIST_SEARCHED = 200, _("Worklist searched")
    STUDY_OPENED = 201, _("Study opened")
    FRAMES_VIEWED = 202, _("Frames viewed")
    REPORT_READ = 210, _("Report read")
    DICOMWEB_QUERY = 220, _("DICOMweb query")
    DICOMWEB_RETRIEVE = 221, _("DICOMweb retrieve")
    DICOM_MOVE = 230, _("DICOM C-MOVE retrieve")
    DICOM_GET = 231, _("DICOM C-GET retrieve")
    DICOM_QUERY = 232, _("DICOM C-FIND query")
    HELPDESK_GRANT_USED = 240, _("Patient data read under a helpdesk grant")
    # 3xx: changing clinical data
    INSTANCE_STORED = 300, _("Instance stored")
    ORDER_RECEIVED = 305, _("Order received from RIS")
    REPORT_EDITED = 310, _("Report edited")
    REPORT_DICTATED = 311, _("Dictation added to report")
    REPORT_SIGNED = 312, _("Report signed")
    REPORT_PRELIMINARY = 313, _("Report issued as preliminary")
    REPORT_LOCK_TAKEN = 314, _("Report lock taken")
    REPORT_LOCK_RELEASED = 315, _("Report lock released")
    ADDENDUM_SAVED = 316, _("Addendum saved")
    ADDENDUM_SIGNED = 317, _("Addendum signed")
    KEY_IMAGE_REFERENCED = 318, _("Key image referenced in report")
    ANNOTATION_SAVED = 320, _("Annotation saved")
    ANNOTATION_DELETED = 321, _("Annotation deleted")
    KEY_IMAGE_MARKED = 322, _("Key image marked")
    KEY_IMAGE_UNMARKED = 323, _("Key image unmarked")
    CRITICAL_FINDING_FLAGGED = 330, _("Critical finding flagged")
    CRITICAL_FINDING_ACKNOWLEDGED = 331, _("Critical finding acknowledged")
    # --- 34x: the reading queue (reading/, issue 7 item 2); choices only ----
    READING_CLAIMED = 340, _("Study claimed for reading")
    READING_RELEASED = 341, _("Study claim released")
    READING_TAKEN_BACK = 342, _("Study claim taken back")
    READING_ASSIGNED = 343, _("Study assigned for reading")
    READING_PRIORITY_CHANGED = 344, _("Study priority or due time changed")
    # --- 35x: second opinions across tenants (collab/, issue 7 item 3); each
    # step is written in both tenants' trails; choices only -----------------
    SECOND_OPINION_REQUESTED = 350, _("Second opinion requested")
    SECOND_OPINION_RECEIVED = 351, _("Second opinion request received")
    SECOND_OPINION_REVOKED = 352, _("Second opinion revoked")
    SECOND_OPINION_EXPIRED = 353, _("Second opinion expired")
    SECOND_OPINION_COMMENTED = 354, _("Second opinion comment posted")
    SECOND_OPINION_READ = 355, _("Second opinion thread read")
    # --- 36x: a study shared with a referrer of the tenant, by hand (reading
    # page or admin); choices only -------------------------------------------
    STUDY_REFERRAL_GIVEN = 360, _("Study shared with a referrer")
    STUDY_REFERRAL_ENDED = 361, _("Study no longer shared with a referrer")
    # 4xx: data leaving Nimbus
    HL7_DELIVERED = 400, _("Report delivered to RIS")
    HL7_DELIVERY_FAILED = 401, _("Report delivery to RIS failed")
    HL7_RESEND_REQUESTED = 402, _("Report message resent to RIS")
    PATIENT_IMAGES_DOWNLOADED = 410, _("Images downloaded by the patient")
    # 5xx: configuration
    TENANT_CHANGED = 500, _("Tenant configuration changed")
    USER_CHANGED = 501, _("User changed")
    # Tenant lifecycle (tenants/, issue 7 item 1), in the public schema.
    TENANT_SUSPENDED = 502, _("Tenant suspended")
    TENANT_REACTIVATED = 503, _("Tenant reactivated")
    TENANT_EXPORTED = 504, _("Tenant exported")
    TENANT_DELETED = 505, _("Tenant deleted")
    TENANT_CONNECTION_CHECKED = 506, _("Tenant connection checked")
    # 6xx: the audit trail itself (helpdesk reads, integrity checks)
    AUDIT_SEARCHED = 600, _("Audit trail searched")
    AUDIT_EXPORTED = 601, _("Audit trail exported")
    AUDIT_CHAIN_BROKEN = 610, _("Audit trail integrity check failed")


class Outcome(models.TextChoices):
    SUCCESS = "success", _("Success")
    FAILURE = "failure", _("Failure")


class AuditEvent(models.Model):
    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    event_type = models.PositiveIntegerField(choices=EventType.choices, db_index=True)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS
    )
    # The actor is kept by name as well as id: the record must outlive the user row.
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=128, blank=True)
    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    study_instance_uid = models.CharField(max_length=64, blank=True, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    # The inserting transaction, set by PostgreSQL: the sealer finds records
    # committed since its last run by it (see audit/chain.py), since ids are
    # taken before commit and commit out of order.
    xact_id = models.BigIntegerField(
        db_default=Func(function="txid_current", output_field=models.BigIntegerField()),
        editable=False,
        db_index=True,
    )

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

    def __str__(self) -> str:
        when = f"{self.occurred_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.get_event_type_display()} {self.actor_username}"


class AuditSeal(models.Model):
    """One link of the hash chain: an audit record, in the order it was sealed.

    ``chain_hash`` is SHA-256 of the previous link's hash and the record's
    canonical form; ``seq`` has no gaps, so a removed link shows. Append-only
    like the records (database trigger).
    """

    seq = models.BigIntegerField(primary_key=True)
    event_id = models.BigIntegerField(unique=True)
    chain_hash = models.CharField(max_length=64)
    # The oldest transaction still open when this link was made: records
    # committed later all have an ``xact_id`` at or above it.
    horizon_xid = models.BigIntegerField()
    sealed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["seq"]

    def __str__(self) -> str:
        return f"seal {self.seq} of event {self.event_id}"


class AuditExportState(models.Model):
    """How far the tenant's chain has reached the ATNA audit repository.

    One row per schema. The outbox is the chain itself: links after
    ``exported_seq`` are still to be sent, in ``seq`` order.
    """

    exported_seq = models.BigIntegerField(default=0)
    exported_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"exported up to seal {self.exported_seq}"
