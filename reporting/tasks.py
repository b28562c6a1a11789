"""Celery tasks of reporting. They run in the schema of the tenant that queued them."""

import logging

from celery import Task, shared_task
from django.conf import settings

from reporting.actions import do_deliver_message, do_requeue_stalled_messages

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="reporting.deliver_message",
    acks_late=True,
    max_retries=None,
)
def deliver_message(self: Task, message_id: int) -> None:
    """Send one HL7 message to the RIS; retry with back-off until it is done."""
    # No retry limit: a signed report must reach the RIS however long it is
    # down; the back-off is capped by NIMBUS_HL7_RETRY_MAX_SECONDS.
    try:
        delay = do_deliver_message(message_id)
    except Exception:
        # A database hiccup must not drop the message from the queue.
        logger.exception("HL7 delivery of message %s failed unexpectedly", message_id)
        delay = settings.NIMBUS_HL7_RETRY_MAX_SECONDS
    if delay is not None:
        raise self.retry(countdown=delay)


@shared_task(name="reporting.requeue_stalled_messages")
def requeue_stalled_messages() -> int:
    """Run by Celery beat in every tenant's schema: nothing signed is left behind."""
    return do_requeue_stalled_messages()
