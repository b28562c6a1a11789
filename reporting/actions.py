"""The one write layer of reporting: every change of a report and its delivery.

Each action writes its audit record in the transaction of the change, and
after commit tells every open editor of the report (a Channels group per
report and tenant) and queues HL7 delivery where the change calls for it.
"""

import datetime
import logging
import time
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Role, User
from accounts.otp import verify_fresh_otp
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import ReadingStatus, Study
from reporting import hl7, mllp
from reporting.models import (
    Addendum,
    AddendumStatus,
    DeliveryState,
    KeyImageReference,
    Notification,
    NotificationKind,
    OutboundMessage,
    Report,
    ReportStatus,
    ReportVersion,
    StudyReferral,
    VersionKind,
)
from reporting.selectors import report_state, report_text_with_addenda
from tenants.models import Tenant

logger = logging.getLogger(__name__)

DELIVERY_ACTOR = "hl7-delivery"
# Messages in these states are done: delivered, or refused for good by the
# RIS (resending the same bytes would be refused again).
FINISHED_STATES = frozenset({DeliveryState.DELIVERED, DeliveryState.REJECTED})
EARLY_TASK_TOLERANCE_SECONDS = 5


class ReportError(Exception):
    """A change that the report's state does not allow; the message is for people."""

    def __init__(self, message: Any) -> None:
        super().__init__(str(message))
        self.message = message


class ReportIsSigned(ReportError):
    def __init__(self) -> None:
        super().__init__(_("This report is signed and can no longer be changed."))


class ReportChangedMeanwhile(ReportError):
    def __init__(self, report: Report) -> None:
        super().__init__(
            _("The report changed since you opened it; merge the new text first.")
        )
        self.report = report


class EmptyReport(ReportError):
    def __init__(self) -> None:
        super().__init__(_("An empty report cannot be signed."))


class OneTimePasswordRefused(ReportError):
    def __init__(self) -> None:
        super().__init__(_("The one-time password is wrong or was already used."))


class ReportLocked(ReportError):
    def __init__(self, holder: User) -> None:
        super().__init__(
            _("%(user)s is editing this report.") % {"user": holder.get_username()}
        )
        self.holder = holder


class ReportNotSigned(ReportError):
    def __init__(self) -> None:
        super().__init__(_("Only a signed report takes addenda."))


class ReportNotIssued(ReportError):
    def __init__(self) -> None:
        super().__init__(
            _(
                "Issue the report as preliminary or sign it first, so that the "
                "referring clinician can read it."
            )
        )


class NoDraftAddendum(ReportError):
    def __init__(self) -> None:
        super().__init__(_("There is no addendum to sign."))


class NothingToAcknowledge(ReportError):
    def __init__(self) -> None:
        super().__init__(_("There is no critical finding to acknowledge."))


# How long a lock lives without renewal. The editor renews it every
# LOCK_SECONDS / 4; a closed tab frees the report within this time.
LOCK_SECONDS = 120


def report_group_name(schema: str, report_id: int) -> str:
    """The Channels group of one report; the schema keeps hospitals apart."""
    return f"report.{schema}.{report_id}"


def notice_group_name(schema: str, user_id: int) -> str:
    """The Channels group of one user's notification sockets (referrals/)."""
    return f"notices.{schema}.{user_id}"


def do_get_or_create_report(study: Study) -> Report:
    report, _created = Report.objects.get_or_create(study=study)
    return report


def do_read_report(
    user: User, study: Study, *, request: HttpRequest | None = None, via: str = "api"
) -> Report:
    with transaction.atomic():
        report = do_get_or_create_report(study)
        _record(EventType.REPORT_READ, report, user, request, detail={"via": via})
    return report


def do_save_report_draft(
    user: User,
    study: Study,
    text: str,
    *,
    base_version: int | None = None,
    request: HttpRequest | None = None,
) -> Report:
    """Save the whole text as a new version; an unchanged text saves nothing.

    ``base_version`` is the version the editor started from. When the report
    moved on since (text dictated elsewhere), saving would silently drop that
    text, so the save is refused and the editor merges first.
    """
    with transaction.atomic():
        report = _locked_report(study)
        if report.is_signed:
            raise ReportIsSigned
        _check_lock(report, user)
        if report.text == text:
            return report
        if base_version is not None and base_version != report.version:
            raise ReportChangedMeanwhile(report)

        previous = report.version
        _save_new_version(report, user, text)
        _mark_study(study, ReadingStatus.IN_PROGRESS)
        _record(
            EventType.REPORT_EDITED,
            report,
            user,
            request,
            detail={"version_from": previous, "version_to": report.version},
        )
        _broadcast_on_commit(report)
    return report


def do_append_report_dictation(
    user: User, study: Study, text: str, *, request: HttpRequest | None = None
) -> Report:
    """Append recognised text to the report, as a new version.

    Spaces around the text go, line breaks stay: a spoken "new paragraph"
    at the end of an utterance must reach the report.
    """
    dictated = text.strip(" \t")
    with transaction.atomic():
        report = _locked_report(study)
        if report.is_signed:
            raise ReportIsSigned
        _check_lock(report, user)
        if not dictated:
            return report

        joined = not report.text or report.text[-1].isspace() or dictated[0].isspace()
        joiner = "" if joined else " "
        previous = report.version
        _save_new_version(report, user, report.text + joiner + dictated)
        _mark_study(study, ReadingStatus.IN_PROGRESS)
        _record(
            EventType.REPORT_DICTATED,
            report,
            user,
            request,
            detail={
                "version_from": previous,
                "version_to": report.version,
                "characters": len(dictated),
            },
        )
        _broadcast_on_commit(report)
    return report


def do_sign_report(
    user: User, study: Study, otp: str, *, request: HttpRequest | None = None
) -> Report:
    """Sign with a fresh one-time password, then queue delivery to the RIS."""
    report = do_get_or_create_report(study)
    if report.is_signed:
        raise ReportIsSigned
    if not report.text.strip():
        raise EmptyReport
    _require_fresh_otp(user, otp, report, EventType.REPORT_SIGNED, request)

    with transaction.atomic():
        report = _locked_report(study)
        if report.is_signed:
            raise ReportIsSigned
        _check_lock(report, user)
        report.status = ReportStatus.SIGNED
        report.signed_by = user
        report.signed_at = timezone.now()
        # Signing ends the editing: nothing is left to hold.
        report.locked_by = None
        report.lock_expires_at = None
        _save_new_version(report, user, report.text)
        _record_issued(report)
        _mark_study(study, ReadingStatus.SIGNED)
        message = _create_outbound_message(report, user)
        _notify_referrers(report, NotificationKind.REPORT_SIGNED)
        _record(
            EventType.REPORT_SIGNED,
            report,
            user,
            request,
            detail={
                "version": report.version,
                "message_control_id": message.message_control_id,
            },
        )
        transaction.on_commit(
            partial(_queue_delivery, connection.schema_name, message.pk), robust=True
        )
        _broadcast_on_commit(report)
    return report


def do_deliver_message(message_id: int) -> int | None:
    """Try once to deliver an HL7 message to the tenant's RIS.

    Returns the seconds to wait before the next try, or None when the message
    needs no more tries (delivered, refused, gone, or carried by another task).
    """
    tenant = Tenant.objects.get(schema_name=connection.schema_name)
    with transaction.atomic():
        message = OutboundMessage.objects.filter(pk=message_id).first()
        if message is None:
            logger.warning(
                "HL7 message %s does not exist; dropping the task", message_id
            )
            return None
        # The report's row lock serialises delivery per study: a redelivered
        # task or a second worker would otherwise send the same message twice
        # at once, or a later message before an earlier one.
        report = (
            Report.objects.select_for_update(of=("self",))
            .select_related("study__patient")
            .get(pk=message.report_id)
        )
        message.refresh_from_db()
        if message.state in FINISHED_STATES or message.state == DeliveryState.HELD:
            return None
        if _carried_by_another_task(message):
            # A requeued or redelivered copy: stopping here keeps one retry
            # chain per message instead of one more per copy.
            return None
        delay = _attempt_delivery(tenant, message, report)
        if delay is not None:
            message.next_attempt_at = timezone.now() + datetime.timedelta(seconds=delay)
            message.save(update_fields=["next_attempt_at"])
    return delay


def _carried_by_another_task(message: OutboundMessage) -> bool:
    # The task that set next_attempt_at retries with a countdown taken after
    # it, so it never comes early; a few seconds allow for workers' clocks.
    due = message.next_attempt_at
    early = datetime.timedelta(seconds=EARLY_TASK_TOLERANCE_SECONDS)
    return due is not None and due > timezone.now() + early


def _attempt_delivery(
    tenant: Tenant, message: OutboundMessage, report: Report
) -> int | None:
    if _has_earlier_undelivered(message, report):
        logger.info("HL7 message %s waits for an earlier one", message.pk)
        return settings.NIMBUS_HL7_RETRY_BASE_SECONDS
    if not tenant.has_ris:
        return _wait_for_ris_configuration(message, report)

    message.attempts += 1
    message.last_attempt_at = timezone.now()
    started = time.monotonic()
    try:
        ack = mllp.send_message(
            tenant.ris_host,
            int(tenant.ris_port or 0),
            message.payload,
            settings.NIMBUS_HL7_TIMEOUT_SECONDS,
            tls=_ris_tls(tenant),
        )
    except mllp.MllpError as error:
        return _delivery_failed_for_now(message, report, str(error))
    if ack.control_id and ack.control_id != message.message_control_id:
        return _delivery_failed_for_now(
            message, report, "The RIS acknowledged another message."
        )

    elapsed_ms = int((time.monotonic() - started) * 1000)
    if ack.accepted:
        _delivered(message, report, ack, elapsed_ms)
    else:
        _refused(message, report, ack)
    _release_next_of_study(message, report)
    _broadcast_on_commit(report)
    return None


def _release_next_of_study(message: OutboundMessage, report: Report) -> None:
    # The study's next message (an addendum) may go now: sent at once rather
    # than at its next poll, even when the task polling for it was lost.
    following = (
        OutboundMessage.objects.filter(
            report__study_id=report.study_id, id__gt=message.pk
        )
        .exclude(state__in=FINISHED_STATES)
        .exclude(state=DeliveryState.HELD)
        .order_by("id")
        .first()
    )
    if following is None:
        return
    following.next_attempt_at = None
    following.save(update_fields=["next_attempt_at"])
    transaction.on_commit(
        partial(_queue_delivery, connection.schema_name, following.pk), robust=True
    )


def retry_delay_seconds(attempts: int) -> int:
    """Exponential back-off: base, 2 x base, 4 x base ... capped at the maximum."""
    base = settings.NIMBUS_HL7_RETRY_BASE_SECONDS
    ceiling = settings.NIMBUS_HL7_RETRY_MAX_SECONDS
    exponent = min(max(attempts - 1, 0), 30)
    return int(min(base * 2**exponent, ceiling))


def _locked_report(study: Study) -> Report:
    # Lock the row so that two saves or dictations on the same report take
    # turns: otherwise both would read version n and one append would be lost.
    do_get_or_create_report(study)
    return (
        Report.objects.select_for_update(of=("self",))
        .select_related("study__patient")
        .get(study=study)
    )


def _save_new_version(report: Report, user: User, text: str) -> None:
    report.text = text
    report.version += 1
    report.last_edited_by = user
    report.save()
    ReportVersion.objects.create(
        report=report,
        version=report.version,
        status=report.status,
        text=text,
        saved_by=user,
    )


def _record_issued(report: Report) -> None:
    # Referrers, patients and exports read this copy, not the live text.
    report.issued_text = report.text
    report.issued_version = report.version
    report.save(update_fields=["issued_text", "issued_version"])


def _save_addendum_version(report: Report, addendum: Addendum, user: User) -> None:
    # Addenda share the report's version counter, so that one list orders
    # every saved state of the record.
    report.version += 1
    report.save(update_fields=["version", "updated_at"])
    ReportVersion.objects.create(
        report=report,
        version=report.version,
        status=report.status,
        kind=VersionKind.ADDENDUM,
        addendum=addendum,
        text=addendum.text,
        saved_by=user,
    )


def _check_lock(report: Report, user: User) -> None:
    """Let ``user`` write only while holding the lock; a free lock is taken.

    A write through the API with nobody holding the lock takes it, so that
    a second reader cannot write over the first one's text the moment after
    (one editor at a time, whatever the client).
    """
    now = timezone.now()
    holder = report.lock_holder(now)
    if holder is not None and holder.pk != user.pk:
        raise ReportLocked(holder)  # type: ignore[arg-type]
    if holder is None:
        report.locked_by = user
        report.lock_expires_at = now + datetime.timedelta(seconds=LOCK_SECONDS)
        report.save(update_fields=["locked_by", "lock_expires_at"])


def _mark_study(study: Study, status: ReadingStatus) -> None:
    Study.objects.filter(pk=study.pk).exclude(
        reading_status=ReadingStatus.SIGNED
    ).update(reading_status=status)


def _require_fresh_otp(
    user: User,
    otp: str,
    report: Report,
    event_type: EventType,
    request: HttpRequest | None,
) -> None:
    """Refuse a signature without a fresh one-time password, and audit the refusal."""
    if not _verify_fresh_otp(user, otp):
        _record(
            event_type,
            report,
            user,
            request,
            outcome=Outcome.FAILURE,
            detail={"reason": "one-time password refused"},
        )
        raise OneTimePasswordRefused


def _verify_fresh_otp(user: User, token: str) -> bool:
    # The one check of a fresh one-time password (exports use it too).
    return verify_fresh_otp(user, token) is not None


def _create_outbound_message(
    report: Report, signer: User, addendum: Addendum | None = None
) -> OutboundMessage:
    tenant = Tenant.objects.get(schema_name=connection.schema_name)
    study = report.study
    patient = study.patient
    content = hl7.OruContent(
        patient_id=patient.patient_id,
        issuer_of_patient_id=patient.issuer_of_patient_id,
        patient_name=patient.patient_name,
        patient_birth_date=patient.patient_birth_date,
        patient_sex=patient.patient_sex,
        accession_number=study.accession_number,
        study_instance_uid=study.study_instance_uid,
        study_description=study.study_description,
        study_date=study.study_date,
        study_time=study.study_time,
        report_text=report_text_with_addenda(report),
        result_status=report.result_status or hl7.ResultStatus.FINAL,
        status_changed_at=(
            (addendum.signed_at if addendum else None)
            or report.signed_at
            or timezone.now()
        ),
        interpreter_id=signer.username,
        interpreter_family_name=signer.last_name,
        interpreter_given_name=signer.first_name,
    )
    endpoints = hl7.Endpoints(
        sending_application=settings.NIMBUS_HL7_SENDING_APPLICATION,
        sending_facility=tenant.schema_name,
        receiving_application=tenant.ris_receiving_application,
        receiving_facility=tenant.ris_receiving_facility,
    )
    control_id = hl7.new_message_control_id()
    return OutboundMessage.objects.create(
        report=report,
        addendum=addendum,
        message_control_id=control_id,
        payload=hl7.build_oru_r01(content, endpoints, control_id),
    )


def _queue_delivery(schema: str, message_id: int) -> None:
    from reporting.tasks import deliver_message

    # The header picks the tenant's schema in the worker (tenant-schemas-celery).
    deliver_message.apply_async(args=[message_id], headers={"_schema_name": schema})


def _has_earlier_undelivered(message: OutboundMessage, report: Report) -> bool:
    return (
        OutboundMessage.objects.filter(
            report__study_id=report.study_id, id__lt=message.pk
        )
        .exclude(state__in=FINISHED_STATES)
        .exists()
    )


def _ris_tls(tenant: Tenant) -> mllp.ClientTls | None:
    """The tenant's TLS files for its RIS, the deployment's where it names none."""
    if not tenant.ris_tls:
        return None
    cert, key = tenant.ris_tls_cert_file, tenant.ris_tls_key_file
    if not cert:
        cert, key = settings.NIMBUS_HL7_TLS_CERT, settings.NIMBUS_HL7_TLS_KEY
    return mllp.ClientTls(
        ca_file=tenant.ris_tls_ca_file or settings.NIMBUS_HL7_TLS_CA,
        cert_file=cert,
        key_file=key,
    )


def _wait_for_ris_configuration(message: OutboundMessage, report: Report) -> int:
    # Kept and retried slowly rather than dropped: nothing signed is lost
    # when hospital IT configures the RIS endpoint later.
    if message.state != DeliveryState.NO_RIS:
        message.state = DeliveryState.NO_RIS
        message.save(update_fields=["state"])
        _record_delivery(message, report, Outcome.FAILURE, {"reason": "no RIS"})
        _broadcast_on_commit(report)
    return settings.NIMBUS_HL7_RETRY_MAX_SECONDS


def _delivery_failed_for_now(
    message: OutboundMessage, report: Report, error: str
) -> int:
    message.state = DeliveryState.RETRYING
    message.last_error = error[:500]
    message.save(update_fields=["state", "attempts", "last_attempt_at", "last_error"])
    delay = retry_delay_seconds(message.attempts)
    logger.warning(
        "HL7 message %s not delivered (attempt %d): %s; next try in %d s",
        message.pk,
        message.attempts,
        error,
        delay,
    )
    # One audit record when the trouble starts, not one per retry.
    if message.attempts == 1:
        _record_delivery(message, report, Outcome.FAILURE, {"error": error[:500]})
    _broadcast_on_commit(report)
    return delay


def _delivered(
    message: OutboundMessage, report: Report, ack: mllp.Acknowledgement, ms: int
) -> None:
    message.state = DeliveryState.DELIVERED
    message.ack_code = ack.code
    message.last_error = ""
    message.delivered_at = timezone.now()
    message.save()
    _record_delivery(message, report, Outcome.SUCCESS, {"ack_code": ack.code})
    logger.info(
        "HL7 message %s delivered for report %s after %d attempts in %d ms",
        message.pk,
        report.pk,
        message.attempts,
        ms,
    )


def _refused(
    message: OutboundMessage, report: Report, ack: mllp.Acknowledgement
) -> None:
    message.state = DeliveryState.REJECTED
    message.ack_code = ack.code
    message.last_error = (ack.text or str(_("No reason given.")))[:500]
    message.save()
    _record_delivery(
        message, report, Outcome.FAILURE, {"ack_code": ack.code, "error": ack.text}
    )
    # The RIS's text may quote patient data: it stays in the database and UI.
    logger.warning("HL7 message %s refused by the RIS with %s", message.pk, ack.code)


def _record_delivery(
    message: OutboundMessage,
    report: Report,
    outcome: Outcome,
    detail: dict[str, Any],
) -> None:
    event = (
        EventType.HL7_DELIVERED
        if outcome == Outcome.SUCCESS
        else EventType.HL7_DELIVERY_FAILED
    )
    do_record_event(
        event,
        actor_username=DELIVERY_ACTOR,
        outcome=outcome,
        object_type="hl7_message",
        object_id=str(message.pk),
        patient_id=report.study.patient.patient_id,
        study_instance_uid=report.study.study_instance_uid,
        detail={
            "message_control_id": message.message_control_id,
            "attempts": message.attempts,
            **detail,
        },
    )


def _record(
    event_type: EventType,
    report: Report,
    user: User,
    request: HttpRequest | None,
    *,
    outcome: Outcome = Outcome.SUCCESS,
    detail: dict[str, Any] | None = None,
) -> None:
    do_record_event(
        event_type,
        request=request,
        actor=user,
        outcome=outcome,
        object_type="report",
        object_id=str(report.pk),
        patient_id=report.study.patient.patient_id,
        study_instance_uid=report.study.study_instance_uid,
        detail=detail,
    )


def _broadcast_on_commit(report: Report) -> None:
    # The state is read now, inside the transaction; it is sent only once the
    # change is committed, so no editor ever shows text that was rolled back.
    payload = report_state(report)
    schema = connection.schema_name
    transaction.on_commit(
        partial(_broadcast, report_group_name(schema, report.pk), payload),
        robust=True,
    )


def _broadcast(group: str, payload: dict[str, Any]) -> None:
    _group_send(group, {"type": "report.update", "report": payload})


def _group_send(group: str, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group, message)


def _notify_referrers(report: Report, kind: NotificationKind) -> None:
    """Tell every referrer who has the study that its report was issued or signed."""
    recipients = _referrers_of(report.study)
    Notification.objects.bulk_create(
        Notification(recipient=recipient, kind=kind, report=report)
        for recipient in recipients
    )
    _push_notices_on_commit(report, kind, recipients)


def _push_notices_on_commit(report: Report, kind: str, recipients: list[User]) -> None:
    # Only the kind and the study go over the socket: the portal's page
    # reads the rest through its access checks.
    schema = connection.schema_name
    message = {
        "type": "notice.new",
        "notice": {"kind": kind, "study_instance_uid": report.study.study_instance_uid},
    }
    for recipient in recipients:
        group = notice_group_name(schema, recipient.pk)
        transaction.on_commit(partial(_group_send, group, message), robust=True)


def do_requeue_stalled_messages() -> int:
    """Queue again every undelivered message that no task seems to be carrying.

    A task can vanish (broker down at signing time, a worker killed and Redis
    restarted before its retry was redelivered): a message whose next try is
    NIMBUS_HL7_REQUEUE_AFTER_SECONDS overdue is queued again. A duplicate
    task is harmless: delivery re-checks the state under the report's row
    lock, and a copy that comes before the next try leaves it to its carrier.
    """
    overdue = datetime.timedelta(seconds=settings.NIMBUS_HL7_REQUEUE_AFTER_SECONDS)
    cutoff = timezone.now() - overdue
    # A message waiting for an earlier one of its study is left to wait: it
    # is queued again once the earlier message is finished, if still stalled
    # (queued each minute of a long RIS outage, it once gained a polling task
    # each time, 40 after an hour).
    earlier_unfinished = OutboundMessage.objects.filter(
        report__study_id=OuterRef("report__study_id"), id__lt=OuterRef("pk")
    ).exclude(state__in=FINISHED_STATES)
    # Never tried: due when created (its task was queued on commit).
    due = Coalesce("next_attempt_at", "last_attempt_at", "created_at")
    stalled = (
        OutboundMessage.objects.exclude(state__in=FINISHED_STATES)
        .exclude(state=DeliveryState.HELD)  # a person resends it
        .alias(due=due)
        .filter(due__lt=cutoff)
        .exclude(Exists(earlier_unfinished))
        .values_list("pk", flat=True)
    )
    count = 0
    for message_id in stalled:
        _queue_delivery(connection.schema_name, message_id)
        count += 1
    if count:
        logger.info("re-queued %d stalled HL7 messages", count)
    return count


# --- Preliminary, lock, addenda ------------------------------------------------


def do_issue_preliminary_report(
    user: User, study: Study, *, request: HttpRequest | None = None
) -> Report:
    """Show the text to the referrer as it is now, marked preliminary.

    The report stays editable; later edits reach the referrer (and the RIS)
    only when the report is issued again or signed. Issuing an unchanged
    preliminary report does nothing.
    """
    with transaction.atomic():
        report = _locked_report(study)
        if report.is_signed:
            raise ReportIsSigned
        _check_lock(report, user)
        if not report.text.strip():
            raise EmptyReport
        if report.is_preliminary and not report.has_unissued_changes:
            return report

        reissued = report.is_preliminary
        report.status = ReportStatus.PRELIMINARY
        report.preliminary_at = timezone.now()
        _save_new_version(report, user, report.text)
        _record_issued(report)
        message = _create_outbound_message(report, user)
        _notify_referrers(report, NotificationKind.REPORT_PRELIMINARY)
        _record(
            EventType.REPORT_PRELIMINARY,
            report,
            user,
            request,
            detail={
                "version": report.version,
                "message_control_id": message.message_control_id,
                "reissued": reissued,
            },
        )
        transaction.on_commit(
            partial(_queue_delivery, connection.schema_name, message.pk), robust=True
        )
        _broadcast_on_commit(report)
    return report


def do_acquire_report_lock(
    user: User, study: Study, *, request: HttpRequest | None = None
) -> Report:
    """Take or renew the editing lock; an expired lock of another is taken over."""
    with transaction.atomic():
        # A signed report is locked too: the lock then guards its addendum.
        report = _locked_report(study)
        now = timezone.now()
        holder = report.lock_holder(now)
        if holder is not None and holder.pk != user.pk:
            raise ReportLocked(holder)  # type: ignore[arg-type]

        previous = report.locked_by_id
        report.locked_by = user
        report.lock_expires_at = now + datetime.timedelta(seconds=LOCK_SECONDS)
        report.save(update_fields=["locked_by", "lock_expires_at", "updated_at"])
        if holder is None:
            # A renewal is not worth a record; taking the report is.
            detail: dict[str, Any] = {}
            if previous is not None and previous != user.pk:
                detail["taken_over_from"] = previous
            _record(EventType.REPORT_LOCK_TAKEN, report, user, request, detail=detail)
            _broadcast_on_commit(report)
    return report


def do_release_report_lock(
    user: User, study: Study, *, request: HttpRequest | None = None
) -> Report:
    with transaction.atomic():
        report = _locked_report(study)
        if report.locked_by_id != user.pk:
            return report
        report.locked_by = None
        report.lock_expires_at = None
        report.save(update_fields=["locked_by", "lock_expires_at", "updated_at"])
        _record(EventType.REPORT_LOCK_RELEASED, report, user, request)
        _broadcast_on_commit(report)
    return report


def do_save_addendum(
    user: User, study: Study, text: str, *, request: HttpRequest | None = None
) -> Addendum:
    """Save the text of the report's draft addendum, starting one if needed."""
    with transaction.atomic():
        report = _locked_report(study)
        if not report.is_signed:
            raise ReportNotSigned
        _check_lock(report, user)
        addendum = report.addenda.filter(status=AddendumStatus.DRAFT).first()
        if addendum is None:
            addendum = Addendum.objects.create(
                report=report, number=report.addenda.count() + 1, created_by=user
            )
        elif addendum.text == text:
            return addendum

        addendum.text = text
        addendum.save(update_fields=["text"])
        _save_addendum_version(report, addendum, user)
        _record(
            EventType.ADDENDUM_SAVED,
            report,
            user,
            request,
            detail={"addendum": addendum.number, "version": report.version},
        )
        _broadcast_on_commit(report)
    return addendum


def do_sign_addendum(
    user: User, study: Study, otp: str, *, request: HttpRequest | None = None
) -> Addendum:
    """Sign the draft addendum with a fresh one-time password; queue it (HL7 C)."""
    report = do_get_or_create_report(study)
    addendum = report.addenda.filter(status=AddendumStatus.DRAFT).first()
    if addendum is None:
        raise NoDraftAddendum
    if not addendum.text.strip():
        raise EmptyReport
    _require_fresh_otp(user, otp, report, EventType.ADDENDUM_SIGNED, request)

    with transaction.atomic():
        report = _locked_report(study)
        _check_lock(report, user)
        addendum = (
            report.addenda.select_for_update()
            .filter(status=AddendumStatus.DRAFT)
            .first()
        )
        if addendum is None:
            raise NoDraftAddendum
        addendum.status = AddendumStatus.SIGNED
        addendum.signed_by = user
        addendum.signed_at = timezone.now()
        addendum.save()
        _save_addendum_version(report, addendum, user)
        report.locked_by = None
        report.lock_expires_at = None
        report.save(update_fields=["locked_by", "lock_expires_at", "updated_at"])
        message = _create_outbound_message(report, user, addendum)
        _notify_referrers(report, NotificationKind.ADDENDUM_SIGNED)
        _record(
            EventType.ADDENDUM_SIGNED,
            report,
            user,
            request,
            detail={
                "addendum": addendum.number,
                "message_control_id": message.message_control_id,
            },
        )
        transaction.on_commit(
            partial(_queue_delivery, connection.schema_name, message.pk), robust=True
        )
        _broadcast_on_commit(report)
    return addendum


# --- Key images -----------------------------------------------------------------


def do_reference_key_image(
    user: User,
    study: Study,
    *,
    series_instance_uid: str,
    sop_instance_uid: str,
    frame_number: int,
    window_center: float | None,
    window_width: float | None,
    request: HttpRequest | None = None,
) -> KeyImageReference:
    """Number a frame of the study for citing in the report ("[Image 2]")."""
    with transaction.atomic():
        report = _locked_report(study)
        _check_lock(report, user)
        reference = KeyImageReference.objects.create(
            report=report,
            number=report.image_references.count() + 1,
            study_instance_uid=study.study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
            frame_number=frame_number,
            window_center=window_center,
            window_width=window_width,
            created_by=user,
        )
        _record(
            EventType.KEY_IMAGE_REFERENCED,
            report,
            user,
            request,
            detail={
                "number": reference.number,
                "sop_instance_uid": sop_instance_uid,
                "frame": frame_number,
            },
        )
        _broadcast_on_commit(report)
    return reference


# --- Critical findings ------------------------------------------------------------


def do_flag_critical_finding(
    user: User, study: Study, *, request: HttpRequest | None = None
) -> Report:
    """Flag the report critical and notify the study's referrers in Nimbus."""
    with transaction.atomic():
        report = _locked_report(study)
        if not report.visible_to_referrer:
            raise ReportNotIssued
        if report.critical_finding:
            return report

        report.critical_finding = True
        report.critical_flagged_by = user
        report.critical_flagged_at = timezone.now()
        report.save()
        recipients = _critical_finding_recipients(study)
        Notification.objects.bulk_create(
            Notification(
                recipient=recipient,
                kind=NotificationKind.CRITICAL_FINDING,
                report=report,
            )
            for recipient in recipients
        )
        _push_notices_on_commit(report, NotificationKind.CRITICAL_FINDING, recipients)
        _record(
            EventType.CRITICAL_FINDING_FLAGGED,
            report,
            user,
            request,
            detail={"notified": [r.get_username() for r in recipients]},
        )
        _broadcast_on_commit(report)
    return report


def do_acknowledge_critical_finding(
    user: User, study: Study, *, request: HttpRequest | None = None
) -> Report:
    """Record who acknowledged the critical finding and when (once, for all)."""
    with transaction.atomic():
        report = _locked_report(study)
        waiting = report.notifications.filter(
            kind=NotificationKind.CRITICAL_FINDING, acknowledged_at=None
        )
        if not report.critical_finding or not waiting.exists():
            raise NothingToAcknowledge

        now = timezone.now()
        recipients = [n.recipient for n in waiting.select_related("recipient")]
        count = waiting.update(acknowledged_by=user, acknowledged_at=now, read_at=now)
        _push_notices_on_commit(report, "acknowledged", recipients)
        _record(
            EventType.CRITICAL_FINDING_ACKNOWLEDGED,
            report,
            user,
            request,
            detail={"notifications": count},
        )
        _broadcast_on_commit(report)
    return report


def _critical_finding_recipients(study: Study) -> list[User]:
    """The referrer named in the study, else every referrer it is shared with.

    The study's Referring Physician's Name (Family^Given) is matched to an
    active referrer of the tenant, who is then given the study. When no
    referrer matches, the referrers who already have the study are told;
    nobody else is, because a notification names a patient.
    """
    named = _referrer_named_in(study)
    if named is not None:
        StudyReferral.objects.get_or_create(study=study, referrer=named)
        return [named]
    return _referrers_of(study)


def _referrers_of(study: Study) -> list[User]:
    return list(
        User.objects.filter(
            referrals__study=study, role=Role.REFERRER, is_active=True
        ).order_by("username")
    )


def _referrer_named_in(study: Study) -> User | None:
    family, _sep, rest = study.referring_physician_name.partition("^")
    given = rest.split("^", 1)[0]
    if not family.strip():
        return None
    candidates = User.objects.filter(
        role=Role.REFERRER, is_active=True, last_name__iexact=family.strip()
    )
    if given.strip():
        candidates = candidates.filter(first_name__iexact=given.strip())
    matches = list(candidates[:2])
    # Two referrers of the same name: guessing would tell the wrong one.
    return matches[0] if len(matches) == 1 else None


def do_send_editor_command(schema: str, report_id: int, command: str) -> None:
    """Tell every open editor of a report to run ``command`` (e.g. next_field).

    For the speech engine: a spoken "next field" arrives as
    ``{"type": "command", "command": "next_field"}`` on the report socket.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(
        report_group_name(schema, report_id),
        {"type": "report.command", "command": command},
    )
