"""A Celery worker killed (SIGKILL) in the middle of its work.

Ingest: the killed worker's tasks die unacknowledged (acks_late) and their
files stay in the durable spool; the listener's sweep queues them again and
the restarted worker indexes every instance exactly once.

HL7 delivery: a retry waiting for its countdown dies with the worker, and a
Redis restart loses the unacknowledged copy too; beat's sweep finds the
message overdue and queues it again, and the RIS gets each ORU once, in
order.
"""

import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    SWEEP_SECONDS,
    RedisServer,
    current_otp,
    indexed,
    indexed_uids,
    ingest_failures,
    new_series,
    sop_uids,
    spool_leftovers,
    start_storescu,
    storescu,
    swept,
    wait_until_indexed,
)
from tests.support.ris import RisListener
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.faults

SLICES = 150
# The production back-off (the stacks' default is seconds long): a lost
# retry then used to wait for twice the longest delay, 20 minutes.
PRODUCTION_BACK_OFF = {
    "NIMBUS_HL7_RETRY_BASE_SECONDS": "10",
    "NIMBUS_HL7_RETRY_MAX_SECONDS": "600",
}
# Beat's sweep runs every minute and takes a message a minute overdue.
RESUMED_WITHIN_SECONDS = 180


def test_a_killed_worker_loses_and_duplicates_no_instance(
    fault_stack: Stack, tmp_path: Path
) -> None:
    files, study_uid = new_series(tmp_path / "series", SLICES)
    failures_before = ingest_failures(fault_stack)
    swept_before = swept(fault_stack)
    assert indexed(fault_stack, study_uid) == (0, 0)

    sender = start_storescu(fault_stack, files)
    # Some of the series indexed, most of it still arriving or queued.
    at_kill = wait_for(
        lambda: (count := indexed(fault_stack, study_uid)[0]) >= 5 and count,
        60,
        what="the first instances indexed",
    )
    worker = fault_stack.restart("worker", kill=True)
    killed_at = time.monotonic()
    output, _ = sender.communicate(timeout=300)

    assert sender.returncode == 0, output[-2000:]
    assert at_kill < SLICES, "the series was indexed before the worker was killed"
    rows, distinct = wait_until_indexed(fault_stack, study_uid, SLICES, seconds=120)
    recovered_in = time.monotonic() - killed_at
    assert worker.poll() is None
    assert (rows, distinct) == (SLICES, SLICES)
    assert indexed_uids(fault_stack, study_uid) == sop_uids(files)
    [(counted,)] = fault_stack.sql(
        "SELECT number_of_study_related_instances FROM pacs_study"
        " WHERE study_instance_uid = %s",
        study_uid,
    )
    assert counted == SLICES
    wait_for(lambda: not spool_leftovers(fault_stack), 30, what="an empty spool")
    assert ingest_failures(fault_stack) == failures_before
    print(
        f"FAULT worker SIGKILL: sent={SLICES} indexed_at_kill={at_kill} "
        f"rows={rows} distinct={distinct} all_in_after={recovered_in:.1f}s "
        f"requeued_by_sweep={swept(fault_stack) - swept_before} "
        f"(sweep every {SWEEP_SECONDS}s)"
    )


def test_a_retry_lost_with_the_worker_and_redis_reaches_the_ris_once_in_minutes(
    fault_stack: Stack,
    redis_server: RedisServer,
    fault_ris: RisListener,
    tmp_path: Path,
) -> None:
    files, study_uid = new_series(tmp_path / "series", 2)
    assert storescu(fault_stack, files).returncode == 0
    wait_until_indexed(fault_stack, study_uid, 2)
    received_before = len(fault_ris.received)
    saved = {name: fault_stack.env[name] for name in PRODUCTION_BACK_OFF}
    fault_stack.env.update(PRODUCTION_BACK_OFF)
    fault_ris.stop()
    ris_down = True
    beat = None
    try:
        fault_stack.restart("worker")
        beat = fault_stack.start("beat", *fault_stack.commands["beat"])
        control_ids = sign_report_and_addendum(fault_stack, study_uid)
        # Two failed tries: the third waits in the worker for its countdown.
        wait_for(
            lambda: attempts(fault_stack, control_ids[0]) >= 2,
            60,
            what="two failed tries",
        )

        killed = fault_stack.named["worker"]
        killed.kill()
        killed.wait(30)
        fault_stack.processes.remove(killed)
        redis_server.stop()  # no persistence: the unacknowledged retry is gone
        redis_server.start()
        fault_stack.start("worker", *fault_stack.commands["worker"])
        back_at = time.monotonic()
        fault_ris.start()
        ris_down = False

        def sent() -> list[str]:
            return [
                str(oru.segment("MSH")(10))
                for oru in fault_ris.received[received_before:]
                if str(oru.segment("MSH")(10)) in control_ids
            ]

        wait_for(
            lambda: len(sent()) >= 2,
            RESUMED_WITHIN_SECONDS,
            what="the report and its addendum at the RIS",
        )
        resumed_in = time.monotonic() - back_at
        time.sleep(5)  # a duplicate would follow within the back-off's base
        assert sent() == control_ids
        states = fault_stack.sql(
            "SELECT state FROM reporting_outboundmessage"
            " WHERE message_control_id = ANY(%s)",
            control_ids,
        )
        assert {state for (state,) in states} == {"delivered"}
    finally:
        if ris_down:
            fault_ris.start()
        if beat is not None:
            beat.terminate()
            beat.wait(30)
            fault_stack.processes.remove(beat)
        fault_stack.env.update(saved)
        fault_stack.restart("worker")
    print(
        f"FAULT worker SIGKILL + Redis restart during HL7 retry: "
        f"messages={len(control_ids)} oru_at_ris={len(sent())} "
        f"resumed_after={resumed_in:.0f}s (requeue after "
        f"NIMBUS_HL7_REQUEUE_AFTER_SECONDS, beat every 60 s)"
    )


def sign_report_and_addendum(stack: Stack, study_uid: str) -> list[str]:
    """Sign the study's report, then an addendum; their MSH-10s in order."""
    report = f"/api/studies/{study_uid}/report"
    stack.call("PUT", report, {"text": "Impression: normal."}, stack.token)
    for path in (f"{report}/sign", f"{report}/addendum/sign"):
        if "addendum" in path:
            stack.call("PUT", f"{report}/addendum", {"text": "Addendum."}, stack.token)
        status, body = stack.call(
            "POST", path, {"otp": current_otp(stack, forget_used=True)}, stack.token
        )
        assert status == 200, body[:300]
    rows = stack.sql(
        "SELECT m.message_control_id FROM reporting_outboundmessage m"
        " JOIN reporting_report r ON m.report_id = r.id JOIN pacs_study s"
        " ON r.study_id = s.id WHERE s.study_instance_uid = %s ORDER BY m.id",
        study_uid,
    )
    return [str(row[0]) for row in rows]


def attempts(stack: Stack, control_id: str) -> int:
    [(count,)] = stack.sql(
        "SELECT attempts FROM reporting_outboundmessage WHERE message_control_id = %s",
        control_id,
    )
    return int(count)  # type: ignore[call-overload]
