import datetime
import json
from typing import Any

import pytest
import redis
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from accounts.models import Role, User
from audit.models import AuditEvent, EventType, Outcome
from config.celery import DELIVERY_QUEUE
from conftest import current_totp, make_user
from pacs.models import Study
from reporting import hl7
from reporting.actions import (
    do_deliver_message,
    do_requeue_stalled_messages,
    do_save_report_draft,
    do_sign_report,
    retry_delay_seconds,
)
from reporting.models import DeliveryState, OutboundMessage, Report
from reporting.tasks import deliver_message
from reporting.tests.conftest import free_port, point_ris_at
from reporting.tests.helpers import back_off_elapses
from tenants.models import Tenant
from tests.support.ris import RisListener

pytestmark = pytest.mark.django_db


def signed_message(study: Study, user: User, text: str) -> OutboundMessage:
    do_save_report_draft(user, study, text)
    report = do_sign_report(user, study, current_totp())
    return report.messages.get()


def queued_delivery_tasks(before: set[bytes]) -> list[int]:
    """Message ids of the delivery tasks queued since ``before``, taken off Redis."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    ids = []
    for raw in broker.lrange(DELIVERY_QUEUE, 0, -1):
        if raw not in before:
            ids.append(int(json.loads(raw)["headers"]["argsrepr"][1:-1]))
            broker.lrem(DELIVERY_QUEUE, 1, raw)  # no worker of this test run takes it
    return ids


def test_it_delivers_a_signed_report_and_records_the_ack(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    message = signed_message(study, radiologist, "Line one.\nImpression: A|B")

    with RisListener() as ris:
        point_ris_at(tenant_a, ris.port)
        assert do_deliver_message(message.pk) is None

    message.refresh_from_db()
    assert message.state == DeliveryState.DELIVERED
    assert message.ack_code == "AA"
    assert message.attempts == 1 and message.delivered_at is not None
    [received] = ris.received
    assert str(received.segment("MSH")(10)) == message.message_control_id
    assert str(received.segment("PID")(3)) == study.patient.patient_id
    assert str(received.segment("OBR")(2)) == "ACC-2024-001"
    assert str(received.segment("OBR")(25)) == "F"
    assert str(received.segments("OBX")[0](5)) == study.study_instance_uid
    lines = [received.unescape(str(obx(5))) for obx in received.segments("OBX")[1:]]
    assert lines == ["Line one.", "Impression: A|B"]
    assert AuditEvent.objects.filter(event_type=EventType.HL7_DELIVERED).count() == 1


def test_it_keeps_the_ris_error_when_the_ris_refuses_the_report(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    message = signed_message(study, radiologist, "Impression: normal.")

    with RisListener(ack_code="AE", error_text="Unknown accession ACC-2024-001") as ris:
        point_ris_at(tenant_a, ris.port)
        assert do_deliver_message(message.pk) is None
        assert do_deliver_message(message.pk) is None  # refused for good: not resent

    message.refresh_from_db()
    assert message.state == DeliveryState.REJECTED
    assert message.ack_code == "AE"
    assert message.last_error == "Unknown accession ACC-2024-001"
    assert len(ris.received) == 1
    failure = AuditEvent.objects.get(event_type=EventType.HL7_DELIVERY_FAILED)
    assert failure.outcome == Outcome.FAILURE
    assert failure.study_instance_uid == study.study_instance_uid


def test_it_retries_while_the_ris_is_down_then_delivers_exactly_once(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    message = signed_message(study, radiologist, "Impression: normal.")
    port = free_port()
    point_ris_at(tenant_a, port)

    for _ in range(2):
        with pytest.raises(Retry):
            deliver_message.run(message.pk)
        back_off_elapses(message)

    message.refresh_from_db()
    assert message.state == DeliveryState.RETRYING
    assert message.attempts == 2
    assert "127.0.0.1" in message.last_error and "refused" in message.last_error
    report = Report.objects.get(study=study)
    assert report.messages.get().state == DeliveryState.RETRYING

    with RisListener(port=port) as ris:
        deliver_message.run(message.pk)
        deliver_message.run(message.pk)  # a redelivered task finds it done

    message.refresh_from_db()
    assert message.state == DeliveryState.DELIVERED
    assert message.attempts == 3 and message.last_error == ""
    assert len(ris.received) == 1
    # One failure record when the trouble started, one delivery record.
    assert (
        AuditEvent.objects.filter(event_type=EventType.HL7_DELIVERY_FAILED).count() == 1
    )
    assert AuditEvent.objects.filter(event_type=EventType.HL7_DELIVERED).count() == 1


def test_it_never_sends_a_later_message_before_an_earlier_one_of_the_study(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    first = signed_message(study, radiologist, "Report.")
    second = OutboundMessage.objects.create(
        report=first.report,
        message_control_id=hl7.new_message_control_id(),
        payload=first.payload.replace(first.message_control_id, "ADDENDUM1"),
    )

    with RisListener() as ris:
        point_ris_at(tenant_a, ris.port)
        waited = do_deliver_message(second.pk)
        assert ris.received == []
        do_deliver_message(first.pk)
        back_off_elapses(second)
        do_deliver_message(second.pk)

    assert waited == settings.NIMBUS_HL7_RETRY_BASE_SECONDS
    sent = [str(message.segment("MSH")(10)) for message in ris.received]
    assert sent == [first.message_control_id, "ADDENDUM1"]


def test_it_keeps_the_message_when_no_ris_is_configured(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    message = signed_message(study, radiologist, "Impression: normal.")
    Tenant.objects.filter(pk=tenant_a.pk).update(ris_host="", ris_port=None)

    assert do_deliver_message(message.pk) == settings.NIMBUS_HL7_RETRY_MAX_SECONDS

    message.refresh_from_db()
    assert message.state == DeliveryState.NO_RIS


def test_it_backs_off_exponentially_up_to_the_maximum(settings: Any) -> None:
    settings.NIMBUS_HL7_RETRY_BASE_SECONDS = 10
    settings.NIMBUS_HL7_RETRY_MAX_SECONDS = 600

    delays = [retry_delay_seconds(attempt) for attempt in range(1, 9)]

    assert delays == [10, 20, 40, 80, 160, 320, 600, 600]


def test_it_queues_delivery_on_the_broker_in_the_tenants_schema(
    tenant_a: Tenant,
    radiologist: User,
    study: Study,
    django_capture_on_commit_callbacks: Any,
) -> None:
    do_save_report_draft(radiologist, study, "Impression: normal.")
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = set(broker.lrange(DELIVERY_QUEUE, 0, -1))

    with django_capture_on_commit_callbacks(execute=True):
        report = do_sign_report(radiologist, study, current_totp())

    queued = [raw for raw in broker.lrange(DELIVERY_QUEUE, 0, -1) if raw not in before]
    ours = []
    for raw in queued:
        message = json.loads(raw)
        if message["headers"]["task"] == "reporting.deliver_message":
            ours.append(message)
            broker.lrem(DELIVERY_QUEUE, 1, raw)  # no worker of this test run takes it
    assert len(ours) == 1
    assert ours[0]["headers"]["_schema_name"] == "hospital_a"
    assert ours[0]["headers"]["argsrepr"] == f"[{report.messages.get().pk}]"


def test_it_requeues_a_message_that_no_task_carries_any_more(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    message = signed_message(study, radiologist, "Impression: normal.")
    recent = OutboundMessage.objects.create(
        report=message.report, message_control_id="RECENT1", payload=message.payload
    )
    stale = timezone.now() - datetime.timedelta(
        seconds=3 * settings.NIMBUS_HL7_RETRY_MAX_SECONDS
    )
    OutboundMessage.objects.filter(pk=message.pk).update(
        state=DeliveryState.RETRYING, last_attempt_at=stale
    )
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    before = set(broker.lrange(DELIVERY_QUEUE, 0, -1))

    assert do_requeue_stalled_messages() == 1

    queued = [
        json.loads(raw)
        for raw in broker.lrange(DELIVERY_QUEUE, 0, -1)
        if raw not in before
    ]
    for raw in set(broker.lrange(DELIVERY_QUEUE, 0, -1)) - before:
        broker.lrem(DELIVERY_QUEUE, 1, raw)  # no worker of this test run takes it
    assert [q["headers"]["argsrepr"] for q in queued] == [f"[{message.pk}]"]
    assert queued[0]["headers"]["_schema_name"] == "hospital_a"
    assert recent.pk not in [int(q["headers"]["argsrepr"][1:-1]) for q in queued]


def test_it_requeues_a_lost_retry_a_minute_after_it_was_due(
    tenant_a: Tenant, radiologist: User, study: Study, other_study: Study
) -> None:
    lost = signed_message(study, radiologist, "Impression: normal.")
    colleague = make_user(tenant_a, "rad.b", Role.RADIOLOGIST)
    carried = signed_message(other_study, colleague, "Impression: normal.")
    now = timezone.now()
    # Both tried a few minutes ago, far less than twice the longest back-off.
    OutboundMessage.objects.filter(pk__in=[lost.pk, carried.pk]).update(
        state=DeliveryState.RETRYING,
        attempts=3,
        last_attempt_at=now - datetime.timedelta(seconds=200),
    )
    overdue = settings.NIMBUS_HL7_REQUEUE_AFTER_SECONDS + 5
    OutboundMessage.objects.filter(pk=lost.pk).update(
        next_attempt_at=now - datetime.timedelta(seconds=overdue)
    )
    OutboundMessage.objects.filter(pk=carried.pk).update(
        next_attempt_at=now - datetime.timedelta(seconds=5)
    )
    before = set(
        redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange(DELIVERY_QUEUE, 0, -1)
    )

    assert do_requeue_stalled_messages() == 1

    assert queued_delivery_tasks(before) == [lost.pk]


def test_a_task_that_comes_before_the_next_try_leaves_the_message_to_its_carrier(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    message = signed_message(study, radiologist, "Impression: normal.")
    port = free_port()
    point_ris_at(tenant_a, port)
    with pytest.raises(Retry):
        deliver_message.run(message.pk)
    message.refresh_from_db()
    assert message.next_attempt_at is not None
    assert message.next_attempt_at > timezone.now()

    with RisListener(port=port) as ris:
        # A requeued or redelivered copy, before the back-off ran out.
        assert do_deliver_message(message.pk) is None
        assert ris.received == []
        back_off_elapses(message)
        assert do_deliver_message(message.pk) is None

    message.refresh_from_db()
    assert message.state == DeliveryState.DELIVERED
    assert message.attempts == 2
    assert len(ris.received) == 1


def test_delivering_a_report_queues_its_waiting_addendum_at_once(
    tenant_a: Tenant,
    radiologist: User,
    study: Study,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first = signed_message(study, radiologist, "Report.")
    second = OutboundMessage.objects.create(
        report=first.report,
        message_control_id=hl7.new_message_control_id(),
        payload=first.payload.replace(first.message_control_id, "ADDENDUM2"),
    )
    with RisListener() as ris:
        point_ris_at(tenant_a, ris.port)
        do_deliver_message(second.pk)  # waits, and polls again later
        before = set(
            redis.Redis.from_url(settings.CELERY_BROKER_URL).lrange(
                DELIVERY_QUEUE, 0, -1
            )
        )

        with django_capture_on_commit_callbacks(execute=True):
            do_deliver_message(first.pk)
        assert queued_delivery_tasks(before) == [second.pk]
        do_deliver_message(second.pk)  # the task just queued: not an early copy

    sent = [str(message.segment("MSH")(10)) for message in ris.received]
    assert sent == [first.message_control_id, "ADDENDUM2"]
