"""The outbound HL7 queue as people see it: states, the RIS's errors, resending.

Queries for the outbound page and the one action it takes. Delivery itself
stays in ``reporting.actions`` (``do_deliver_message``); a resend only puts
a message back in the queue that delivery works through.
"""

import re
from functools import partial

from django.db import connection, transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _

from accounts.models import Role, User
from audit.actions import do_record_event
from audit.models import EventType
from reporting.models import DeliveryState, OutboundMessage

# Radiologists own their reports and tenant admins run the RIS link; the
# others (referrers, helpdesk) see nothing of the queue.
QUEUE_ROLES = frozenset({Role.RADIOLOGIST, Role.TENANT_ADMIN})
# A delivered message is not sent again: the RIS could receive it after a
# later message of the same study (an addendum) and go back in time.
RESENDABLE_STATES = frozenset(
    {
        DeliveryState.PENDING,
        DeliveryState.RETRYING,
        DeliveryState.REJECTED,
        DeliveryState.NO_RIS,
        DeliveryState.HELD,
    }
)
_RESULT_STATUS = re.compile(r"(?:^|\r)OBR(?:\|[^|\r]*){24}\|([^|\r]*)")


class MessageNotResendable(Exception):
    """Only a message that the RIS has not accepted, nor a later one, can go again."""


def may_see_queue(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role in QUEUE_ROLES)


def outbound_messages(state: str = "") -> QuerySet[OutboundMessage]:
    """The tenant's messages, newest first, optionally in one state."""
    messages = OutboundMessage.objects.select_related(
        "report__study__patient"
    ).order_by("-created_at", "-id")
    if state in DeliveryState.values:
        messages = messages.filter(state=state)
    return messages


def result_status(message: OutboundMessage) -> str:
    """OBR-25 of the message as sent: P, F or C."""
    match = _RESULT_STATUS.search(message.payload)
    return match.group(1) if match else ""


def get_message_for_user(user: User, message_id: int) -> OutboundMessage:
    message = (
        outbound_messages().filter(pk=message_id).first()
        if may_see_queue(user)
        else None
    )
    if message is None:
        raise Http404(_("No such message."))
    return message


def may_resend(message: OutboundMessage) -> bool:
    """Whether ``message`` may be sent again.

    Not once the RIS accepted it, and not once it accepted a later message
    of the same report: a refused preliminary (P) sent after the final (F)
    would turn the result at the RIS back into a preliminary one.
    """
    if message.state not in RESENDABLE_STATES:
        return False
    return not OutboundMessage.objects.filter(
        report_id=message.report_id,
        pk__gt=message.pk,
        state=DeliveryState.DELIVERED,
    ).exists()


def do_resend_message(
    user: User, message: OutboundMessage, *, request: HttpRequest | None = None
) -> OutboundMessage:
    """Put a message back in the queue, unchanged: same bytes, same MSH-10.

    A refused message is sent again once the RIS's error is fixed on its side
    (an order created, a mapping added); a retrying one is sent now rather
    than after its back-off.
    """
    with transaction.atomic():
        message = OutboundMessage.objects.select_for_update().get(pk=message.pk)
        if not may_resend(message):
            raise MessageNotResendable
        previous = message.state
        message.state = DeliveryState.PENDING
        # Sent now, not at the back-off's next try: the new task must not
        # take itself for an early copy of the waiting one.
        message.next_attempt_at = None
        message.save(update_fields=["state", "next_attempt_at"])
        study = message.report.study
        do_record_event(
            EventType.HL7_RESEND_REQUESTED,
            request=request,
            actor=user,
            object_type="hl7_message",
            object_id=str(message.pk),
            patient_id=study.patient.patient_id,
            study_instance_uid=study.study_instance_uid,
            detail={
                "message_control_id": message.message_control_id,
                "state_from": previous,
                "error": message.last_error,
            },
        )
        transaction.on_commit(
            partial(_queue, connection.schema_name, message.pk), robust=True
        )
    return message


def _queue(schema: str, message_id: int) -> None:
    from reporting.tasks import deliver_message

    # The header picks the tenant's schema in the worker (tenant-schemas-celery).
    deliver_message.apply_async(args=[message_id], headers={"_schema_name": schema})
