"""PostgreSQL restarted (crashed: immediate stop, recovery at start) during
ingest and during report signing.

Nothing in Nimbus is restarted: the listener keeps spooling, ingest tasks
that failed leave their files for the sweep, the web process answers 500
while the database is away and serves again once it is back, and a sign
retried by the radiologist's client signs once and sends one ORU^R01.
"""

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    SWEEP_SECONDS,
    Postgres,
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
    wait_until_ready,
)
from tests.support.ris import RisListener
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.faults

SLICES = 120
DOWN_SECONDS = 8


def restart_after(postgres: Postgres, seconds: float) -> threading.Thread:
    """Crash PostgreSQL now and start it again ``seconds`` later, in a thread."""
    postgres.stop("immediate")

    def start_later() -> None:
        time.sleep(seconds)
        postgres.start()

    thread = threading.Thread(target=start_later)
    thread.start()
    return thread


def test_ingest_survives_a_postgresql_restart_with_nothing_lost_or_duplicated(
    fault_stack: Stack, postgres: Postgres, tmp_path: Path
) -> None:
    files, study_uid = new_series(tmp_path / "series", SLICES)
    failures_before = ingest_failures(fault_stack)
    swept_before = swept(fault_stack)

    sender = start_storescu(fault_stack, files)
    at_crash = wait_for(
        lambda: (count := indexed(fault_stack, study_uid)[0]) >= 5 and count,
        60,
        what="the first instances indexed",
    )
    restarter = restart_after(postgres, DOWN_SECONDS)
    output, _ = sender.communicate(timeout=300)
    restarter.join()
    back_at = time.monotonic()

    # The association outlived the database: every C-STORE answered success.
    assert sender.returncode == 0, output[-2000:]
    assert output.count("Received Store Response (Success)") == SLICES
    assert at_crash < SLICES, "the series was indexed before PostgreSQL went down"
    rows, distinct = wait_until_indexed(fault_stack, study_uid, SLICES, 120)
    all_in = time.monotonic() - back_at
    assert (rows, distinct) == (SLICES, SLICES)
    assert indexed_uids(fault_stack, study_uid) == sop_uids(files)
    wait_for(lambda: not spool_leftovers(fault_stack), 30, what="an empty spool")
    assert ingest_failures(fault_stack) == failures_before
    ready_in = wait_until_ready(fault_stack)
    print(
        f"FAULT postgres restart during ingest: sent={SLICES} "
        f"indexed_at_crash={at_crash} down={DOWN_SECONDS}s rows={rows} "
        f"distinct={distinct} all_in_after_restart={all_in:.1f}s "
        f"ready_again_after={ready_in:.1f}s "
        f"requeued_by_sweep={swept(fault_stack) - swept_before} "
        f"(sweep every {SWEEP_SECONDS}s)"
    )


def test_a_sign_retried_across_a_postgresql_restart_signs_once_and_sends_one_oru(
    fault_stack: Stack, postgres: Postgres, fault_ris: RisListener, tmp_path: Path
) -> None:
    files, study_uid = new_series(tmp_path / "study", 3)
    assert storescu(fault_stack, files).returncode == 0
    wait_until_indexed(fault_stack, study_uid, 3)
    report = f"/api/studies/{study_uid}/report"
    status, body = fault_stack.call(
        "PUT", report, {"text": "Impression: no acute finding."}, fault_stack.token
    )
    assert status == 200, body[:300]
    received_before = len(fault_ris.received)

    restarter = restart_after(postgres, DOWN_SECONDS)
    answers: list[int] = []
    otp = current_otp(fault_stack)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, _ = fault_stack.call(
                "POST", f"{report}/sign", {"otp": otp}, fault_stack.token
            )
        except OSError:
            status = 0
        answers.append(status)
        if status == 200:
            break
        if status in (400, 403):  # the code was used up after all: the next one
            fault_stack.last_otp_step = int(time.time()) // 30
            otp = fault_stack.fresh_otp()
        else:
            otp = current_otp(fault_stack)
            time.sleep(1)
    restarter.join()

    assert answers[-1] == 200, answers
    assert any(status >= 500 or status == 0 for status in answers[:-1]), answers
    status, body = fault_stack.get(report, fault_stack.token)
    state = json.loads(body)
    assert state["status"] == "signed"
    [(signed_versions,)] = fault_stack.sql(
        "SELECT count(*) FROM reporting_reportversion v JOIN reporting_report r"
        " ON v.report_id = r.id JOIN pacs_study s ON r.study_id = s.id"
        " WHERE s.study_instance_uid = %s AND v.status = 'signed'",
        study_uid,
    )
    [(messages, control_id)] = fault_stack.sql(
        "SELECT count(*), max(m.message_control_id) FROM reporting_outboundmessage m"
        " JOIN reporting_report r ON m.report_id = r.id JOIN pacs_study s"
        " ON r.study_id = s.id WHERE s.study_instance_uid = %s",
        study_uid,
    )
    assert (signed_versions, messages) == (1, 1)

    def sent_to_ris() -> list[str]:
        return [
            str(message.segment("MSH")(10))
            for message in fault_ris.received[received_before:]
            if str(message.segments("OBX")[0](5)) == study_uid
        ]

    wait_for(sent_to_ris, 60, what="the ORU^R01 at the RIS")
    time.sleep(3)  # a duplicate would arrive within the retry back-off
    assert sent_to_ris() == [control_id]
    print(
        f"FAULT postgres restart during signing: sign_attempts={len(answers)} "
        f"answers={answers} signed_versions={signed_versions} "
        f"outbound_messages={messages} oru_at_ris={len(sent_to_ris())}"
    )


def test_a_modality_that_connects_while_postgresql_is_down_still_sends(
    fault_stack: Stack, postgres: Postgres, tmp_path: Path
) -> None:
    # One association while the database is up: the listener learns whose
    # AE title it is and who calls.
    first, first_study = new_series(tmp_path / "before", 2)
    assert storescu(fault_stack, first).returncode == 0
    wait_until_indexed(fault_stack, first_study, 2)
    files, study_uid = new_series(tmp_path / "during", 5)

    postgres.stop("immediate")
    try:
        during = storescu(fault_stack, files, timeout=120)
        stranger = subprocess.run(
            [
                "echoscu",
                "-aec",
                "NOBODY_HERE",
                "127.0.0.1",
                str(fault_stack.dicom_port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        postgres.start()

    # A new association, answered from the last known tenant and peer.
    assert during.returncode == 0, during.stdout[-2000:] + during.stderr[-2000:]
    assert (during.stdout + during.stderr).count("Store Response (Success)") == 5
    # An AE title never seen is not guessed at: refused, for now.
    assert stranger.returncode != 0
    rows, distinct = wait_until_indexed(fault_stack, study_uid, 5, 120)
    assert (rows, distinct) == (5, 5)
    assert indexed_uids(fault_stack, study_uid) == sop_uids(files)
    print(
        f"FAULT new association while postgres down: stored={rows} "
        f"stranger_exit={stranger.returncode}"
    )
