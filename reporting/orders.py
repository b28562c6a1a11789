"""The write layer of orders from the RIS: a scheduled study on the worklist.

An order (ORM^O01 or OMI^O23, read by ``reporting.hl7_inbound``) creates its
patient and study at once, so that the worklist shows the study before any
image arrives and the images join it (``ScheduledStudy.claim_for_images``).
"""

import logging
import uuid

from django.db import transaction

from audit.actions import do_record_event
from audit.models import EventType
from pacs.models import OrderStatus, Patient, ScheduledStudy, Study
from reading.actions import do_note_order_priority
from reporting.hl7_inbound import (
    AckCode,
    ErrorCode,
    OrderContent,
    OrderRefused,
)

logger = logging.getLogger(__name__)

ORDER_ACTOR = "hl7-orders"


def placeholder_study_uid() -> str:
    """A UID under the 2.25 root (PS3.5 B.2) for an order that names none."""
    return f"2.25.{uuid.uuid4().int}"


def do_receive_order(order: OrderContent) -> ScheduledStudy | None:
    """Schedule, update or cancel the study of an order; None when cancelled.

    Raises
    ------
    OrderRefused
        ``AE`` when the order's Study Instance UID or accession number
        belongs to a study of another patient.
    """
    with transaction.atomic():
        scheduled = (
            ScheduledStudy.objects.select_for_update(of=("self",))
            .select_related("study")
            .filter(accession_number=order.accession_number)
            .exclude(status=OrderStatus.CANCELLED)
            .first()
        )
        if order.cancels:
            return _cancel(order, scheduled)
        if scheduled is None:
            scheduled = _schedule(order)
            action = "scheduled"
        else:
            _check_patient(order, scheduled.study)
            _update(order, scheduled)
            action = "updated"
        _record(order, scheduled.study, action)
        do_note_order_priority(scheduled.study, order.priority)
    logger.info(
        "order %s %s for study %s",
        order.header.message_control_id,
        action,
        scheduled.study.study_instance_uid,
    )
    return scheduled


def _schedule(order: OrderContent) -> ScheduledStudy:
    patient, _created = Patient.objects.get_or_create(
        patient_id=order.patient_id,
        issuer_of_patient_id=order.issuer_of_patient_id,
        defaults=_patient_values(order),
    )
    # Images may have come first: a study with the order's UID, or with its
    # accession number and patient ID, is the ordered one.
    study = _existing_study(order)
    if study is None:
        study = Study.objects.create(
            study_instance_uid=order.study_instance_uid or placeholder_study_uid(),
            patient=patient,
            **_study_values(order),
        )
    else:
        _check_patient(order, study)
    has_images = study.number_of_study_related_instances > 0
    return ScheduledStudy.objects.create(
        study=study,
        accession_number=order.accession_number,
        patient_id=order.patient_id,
        uid_from_order=bool(order.study_instance_uid) or has_images,
        status=OrderStatus.IMAGES_RECEIVED if has_images else OrderStatus.SCHEDULED,
        **_order_values(order),
    )


def _existing_study(order: OrderContent) -> Study | None:
    if order.study_instance_uid:
        return Study.objects.filter(study_instance_uid=order.study_instance_uid).first()
    return (
        Study.objects.filter(
            accession_number=order.accession_number,
            patient__patient_id=order.patient_id,
        )
        .order_by("received_at")
        .first()
    )


def _update(order: OrderContent, scheduled: ScheduledStudy) -> None:
    for name, value in _order_values(order).items():
        setattr(scheduled, name, value)
    scheduled.save()
    study = scheduled.study
    # The modality's headers win once images are there; before, the order's.
    if study.number_of_study_related_instances == 0:
        Study.objects.filter(pk=study.pk).update(**_study_values(order))
        Patient.objects.filter(pk=study.patient_id).update(**_patient_values(order))


def _cancel(
    order: OrderContent, scheduled: ScheduledStudy | None
) -> ScheduledStudy | None:
    if scheduled is None:
        raise OrderRefused(
            AckCode.ERROR,
            ErrorCode.UNKNOWN_KEY,
            f"No open order with accession number {order.accession_number}.",
        )
    _check_patient(order, scheduled.study)
    scheduled.status = OrderStatus.CANCELLED
    scheduled.message_control_id = order.header.message_control_id[:199]
    scheduled.save(update_fields=["status", "message_control_id", "updated_at"])
    _record(order, scheduled.study, "cancelled")
    study = scheduled.study
    # A cancelled order without images leaves the worklist; one with images
    # stays a study like any other.
    if study.number_of_study_related_instances == 0 and not hasattr(study, "report"):
        study.delete()
    return None


def _check_patient(order: OrderContent, study: Study) -> None:
    if study.patient.patient_id != order.patient_id:
        raise OrderRefused(
            AckCode.ERROR,
            ErrorCode.UNKNOWN_KEY,
            "The study of this order belongs to another patient ID.",
        )


def _patient_values(order: OrderContent) -> dict[str, object]:
    return {
        "patient_name": order.patient_name,
        "patient_birth_date": order.patient_birth_date,
        "patient_sex": order.patient_sex,
    }


def _study_values(order: OrderContent) -> dict[str, object]:
    scheduled = order.scheduled_at
    return {
        "accession_number": order.accession_number,
        "study_description": order.study_description,
        "referring_physician_name": order.referring_physician_name,
        "study_date": scheduled.date() if scheduled else None,
        "study_time": scheduled.time() if scheduled else None,
        "modalities_in_study": order.modality,
    }


def _order_values(order: OrderContent) -> dict[str, object]:
    return {
        "placer_order_number": order.placer_order_number,
        "filler_order_number": order.filler_order_number,
        "requested_procedure_id": order.requested_procedure_id,
        "modality": order.modality,
        "scheduled_at": order.scheduled_at,
        "message_control_id": order.header.message_control_id[:199],
    }


def _record(order: OrderContent, study: Study, action: str) -> None:
    do_record_event(
        EventType.ORDER_RECEIVED,
        actor_username=ORDER_ACTOR,
        object_type="order",
        object_id=order.accession_number,
        patient_id=order.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={
            "action": action,
            "order_control": order.order_control,
            "message_control_id": order.header.message_control_id[:199],
            "sending_application": order.header.sending_application[:64],
        },
    )
