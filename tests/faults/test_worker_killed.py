"""A Celery worker killed (SIGKILL) in the middle of ingesting a series.

The killed worker's tasks die unacknowledged (acks_late) and their files stay
in the durable spool; the listener's sweep queues them again and the
restarted worker indexes every instance exactly once.
"""

import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    SWEEP_SECONDS,
    indexed,
    indexed_uids,
    ingest_failures,
    new_series,
    sop_uids,
    spool_leftovers,
    start_storescu,
    swept,
    wait_until_indexed,
)
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.faults

SLICES = 150


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
