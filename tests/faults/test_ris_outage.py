"""The RIS unreachable for an hour, in simulated time.

An hour of real back-off would not fit a test run, so the hour is
simulated: Django's clock is moved from one due task to the next, and the
queue is a heap of (due time, message) that stands in for Celery's
countdown, fed by the same delays the delivery task would retry with and by
the beat's stalled-message sweep, run every simulated minute. Everything
else is real: PostgreSQL, the row locks, and MLLP over TCP to a port where
nothing listens for the hour, then to a RIS (python-hl7) on that port.

The real Celery path (retry countdowns, a stack's worker) is covered with
seconds-long back-off by tests/e2e and test_ris_down_on_a_stack below.
"""

import datetime
import heapq
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from conftest import current_totp
from pacs.models import Patient, Study
from reporting.actions import (
    do_deliver_message,
    do_requeue_stalled_messages,
    do_save_addendum,
    do_save_report_draft,
    do_sign_addendum,
    do_sign_report,
)
from reporting.models import DeliveryState, OutboundMessage
from tenants.models import Tenant
from tests.faults.conftest import current_otp, new_series, storescu, wait_until_indexed
from tests.support.ris import RisListener
from tests.support.stack import Stack, free_port, wait_for

OUTAGE_SECONDS = 3600
BEAT_SECONDS = 60


@dataclass
class SimulatedQueue:
    """Celery's countdown queue on a simulated clock."""

    start: datetime.datetime
    now_seconds: float = 0.0
    due: list[tuple[float, int, int]] = field(default_factory=list)
    order: Iterator[int] = field(default_factory=itertools.count)

    def now(self) -> datetime.datetime:
        return self.start + datetime.timedelta(seconds=self.now_seconds)

    def push(self, after_seconds: float, message_id: int) -> None:
        when = self.now_seconds + after_seconds
        heapq.heappush(self.due, (when, next(self.order), message_id))

    def queue_delivery(self, _schema: str, message_id: int) -> None:
        self.push(0, message_id)


def sign_fresh(user: User) -> str:
    """A one-time password the device has not seen: signing refuses replays."""
    TOTPDevice.objects.filter(user=user).update(last_t=-1)
    return current_totp()


def make_study(number: int) -> Study:
    patient = Patient.objects.create(patient_id=f"RIS-{number}", patient_name="Doe^Ris")
    return Study.objects.create(
        study_instance_uid=f"1.2.826.0.1.3680043.8.498.777.{number}",
        patient=patient,
        accession_number=f"ACC-RIS-{number}",
    )


@pytest.mark.django_db
@pytest.mark.faults
def test_an_hour_without_the_ris_delivers_every_oru_once_in_order(
    tenant_a: Tenant, radiologist: User, settings: Any
) -> None:
    settings.NIMBUS_HL7_RETRY_BASE_SECONDS = 10
    settings.NIMBUS_HL7_RETRY_MAX_SECONDS = 600
    port = free_port()  # nothing listens there for the hour
    Tenant.objects.filter(pk=tenant_a.pk).update(ris_host="127.0.0.1", ris_port=port)
    studies = [make_study(number) for number in range(3)]
    for study in studies:
        do_save_report_draft(radiologist, study, f"Impression: study {study.pk}.")
        do_sign_report(radiologist, study, sign_fresh(radiologist))
    do_save_addendum(radiologist, studies[0], "Addendum: compared with priors.")
    do_sign_addendum(radiologist, studies[0], sign_fresh(radiologist))
    messages = list(OutboundMessage.objects.order_by("pk"))
    assert len(messages) == 4

    queue = SimulatedQueue(start=timezone.now())
    for message in messages:
        queue.push(0, message.pk)
    delays: dict[int, list[int]] = {message.pk: [] for message in messages}
    requeued = runs = 0
    next_beat = float(BEAT_SECONDS)
    # Half-way, every task runs twice (a redelivered message, a second worker).
    duplicated_at = OUTAGE_SECONDS / 2
    ris = RisListener(port=port)
    ris_up = False
    with (
        mock.patch("django.utils.timezone.now", queue.now),
        mock.patch("reporting.actions._queue_delivery", queue.queue_delivery),
    ):
        while queue.due:
            when, _, message_id = heapq.heappop(queue.due)
            while next_beat <= when:  # Celery beat, every simulated minute
                queue.now_seconds = next_beat
                requeued += do_requeue_stalled_messages()
                next_beat += BEAT_SECONDS
            queue.now_seconds = when
            if duplicated_at is not None and when >= duplicated_at:
                for message in messages:
                    queue.push(0, message.pk)
                duplicated_at = None
            if when >= OUTAGE_SECONDS and not ris_up:
                ris.start()
                ris_up = True
            delay = do_deliver_message(message_id)
            runs += 1
            if delay is not None:
                delays[message_id].append(delay)
                queue.push(delay, message_id)
            if queue.now_seconds > 3 * OUTAGE_SECONDS:
                raise AssertionError(
                    "still undelivered two hours after the RIS came back"
                )
    ris.stop()

    sent = [str(oru.segment("MSH")(10)) for oru in ris.received]
    control_ids = [message.message_control_id for message in messages]
    # Every ORU once; the report of the first study before its addendum.
    assert sorted(sent) == sorted(control_ids)
    assert sent.index(control_ids[0]) < sent.index(control_ids[3])
    finished = list(OutboundMessage.objects.order_by("pk"))
    assert {message.state for message in finished} == {DeliveryState.DELIVERED}
    first_delivery = min(message.delivered_at for message in finished)
    last_delivery = max(message.delivered_at for message in finished)
    assert first_delivery >= queue.start + datetime.timedelta(seconds=OUTAGE_SECONDS)
    # Back-off up to its 10-minute cap: all in within one cap of the RIS's return.
    assert last_delivery <= queue.start + datetime.timedelta(
        seconds=OUTAGE_SECONDS + 600 + 10
    )
    # Exponential back-off up to the cap (the duplicate half-way runs a
    # second chain with the same cap, hence the attempts above the 12 of one).
    assert delays[messages[1].pk][:7] == [10, 20, 40, 80, 160, 320, 600]
    assert max(delays[messages[1].pk]) == 600
    assert all(12 <= message.attempts <= 24 for message in finished[:3])
    # One polling chain per message: the beat's sweep started no more
    # (reports retry more often than it looks; the addendum waits).
    assert requeued == 0
    assert runs < 2 * (3 * 12 + OUTAGE_SECONDS / 10 + 10)
    print(
        f"FAULT RIS down {OUTAGE_SECONDS}s simulated: messages={len(messages)} "
        f"delivery_runs={runs} attempts={[m.attempts for m in finished]} "
        f"requeued_by_beat={requeued} oru_at_ris={len(sent)} "
        f"unique={len(set(sent))} last_in_after_return="
        f"{(last_delivery - queue.start).total_seconds() - OUTAGE_SECONDS:.0f}s"
    )


@pytest.mark.faults
def test_ris_down_on_a_stack_delivers_each_oru_once_in_order_after(
    fault_stack: Stack, fault_ris: RisListener, tmp_path: Path
) -> None:
    """The same on the running stack: real Celery retries, seconds of back-off."""
    studies = []
    for number in range(2):
        files, study_uid = new_series(tmp_path / f"study-{number}", 2)
        assert storescu(fault_stack, files).returncode == 0
        wait_until_indexed(fault_stack, study_uid, 2)
        studies.append(study_uid)
    received_before = len(fault_ris.received)

    fault_ris.stop()
    try:
        for study_uid in studies:
            report = f"/api/studies/{study_uid}/report"
            fault_stack.call(
                "PUT", report, {"text": "Impression: normal."}, fault_stack.token
            )
            status, body = fault_stack.call(
                "POST",
                f"{report}/sign",
                {"otp": current_otp(fault_stack, forget_used=True)},
                fault_stack.token,
            )
            assert status == 200, body[:300]
        first = f"/api/studies/{studies[0]}/report"
        fault_stack.call(
            "PUT", f"{first}/addendum", {"text": "Addendum."}, fault_stack.token
        )
        status, body = fault_stack.call(
            "POST",
            f"{first}/addendum/sign",
            {"otp": current_otp(fault_stack, forget_used=True)},
            fault_stack.token,
        )
        assert status == 200, body[:300]
        wait_for(
            lambda: (
                (
                    fault_stack.sql(
                        "SELECT min(attempts) FROM reporting_outboundmessage"
                        " WHERE state = 'retrying'"
                    )[0][0]
                    or 0
                )
                >= 3
            ),
            60,
            what="three failed attempts each",
        )
    finally:
        fault_ris.start()

    rows = fault_stack.sql(
        "SELECT m.message_control_id, s.study_instance_uid FROM reporting_outboundmessage m"
        " JOIN reporting_report r ON m.report_id = r.id JOIN pacs_study s"
        " ON r.study_id = s.id WHERE s.study_instance_uid = ANY(%s) ORDER BY m.id",
        studies,
    )
    expected = [str(row[0]) for row in rows]
    assert len(expected) == 3

    def sent() -> list[str]:
        return [
            str(oru.segment("MSH")(10))
            for oru in fault_ris.received[received_before:]
            if str(oru.segment("MSH")(10)) in expected
        ]

    wait_for(lambda: len(sent()) >= 3, 60, what="three ORU^R01 at the RIS")
    time.sleep(3)  # a duplicate would arrive within the seconds-long back-off
    assert sorted(sent()) == sorted(expected)
    assert sent().index(expected[0]) < sent().index(expected[2])
    [(attempts,)] = fault_stack.sql(
        "SELECT sum(attempts) FROM reporting_outboundmessage"
        " WHERE message_control_id = ANY(%s)",
        expected,
    )
    print(
        f"FAULT RIS down on a stack: messages={len(expected)} "
        f"attempts={attempts} oru_at_ris={len(sent())} unique={len(set(sent()))}"
    )
