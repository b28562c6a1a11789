"""Redis stopped for a minute while a modality keeps sending.

Redis runs without persistence here, so whatever was queued dies with it.
The listener keeps answering C-STORE success from its durable spool; after
Redis returns, the listener's sweep queues the waiting files again and the
worker, which reconnects by itself, indexes each instance exactly once.
"""

import os
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    SWEEP_SECONDS,
    RedisServer,
    indexed,
    indexed_uids,
    ingest_failures,
    new_series,
    sop_uids,
    spool_leftovers,
    storescu,
    swept,
    wait_until_indexed,
    wait_until_ready,
)
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.faults

# A minute, as a hospital would see it; shorter runs may scale it down.
DOWN_SECONDS = float(os.environ.get("NIMBUS_FAULT_REDIS_DOWN_SECONDS", "60"))
# One association this often while Redis is down, each a series of its own.
SEND_EVERY_SECONDS = DOWN_SECONDS / 6
SLICES_PER_SEND = 10


def test_the_listener_spools_while_redis_is_down_and_the_backlog_drains_after(
    fault_stack: Stack, redis_server: RedisServer, tmp_path: Path
) -> None:
    failures_before = ingest_failures(fault_stack)
    swept_before = swept(fault_stack)

    redis_server.stop()
    stopped_at = time.monotonic()
    sent: list[tuple[str, list[Path]]] = []
    while time.monotonic() - stopped_at < DOWN_SECONDS:
        files, study_uid = new_series(tmp_path / f"series-{len(sent)}", SLICES_PER_SEND)
        result = storescu(fault_stack, files, timeout=120)
        # Every instance accepted with Redis down: success means on disk.
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stderr.count("Received Store Response (Success)") == len(files)
        sent.append((study_uid, files))
        next_send = stopped_at + len(sent) * SEND_EVERY_SECONDS
        time.sleep(max(0.0, next_send - time.monotonic()))
    waiting = len(spool_leftovers(fault_stack))
    indexed_while_down = sum(indexed(fault_stack, uid)[0] for uid, _ in sent)
    assert waiting == sum(len(files) for _, files in sent)
    assert indexed_while_down == 0
    assert fault_stack.get("/readyz")[0] == 503

    redis_server.start()
    restarted_at = time.monotonic()
    figures = []
    for study_uid, files in sent:
        rows, distinct = wait_until_indexed(fault_stack, study_uid, len(files), 120)
        assert (rows, distinct) == (len(files), len(files))
        assert indexed_uids(fault_stack, study_uid) == sop_uids(files)
        figures.append(rows)
    drained_in = time.monotonic() - restarted_at
    wait_for(lambda: not spool_leftovers(fault_stack), 30, what="an empty spool")
    ready_in = wait_until_ready(fault_stack)
    assert ingest_failures(fault_stack) == failures_before

    # Service resumed: a new series goes the normal way, at once.
    files, study_uid = new_series(tmp_path / "after", SLICES_PER_SEND)
    assert storescu(fault_stack, files).returncode == 0
    assert wait_until_indexed(fault_stack, study_uid, len(files), 30) == (
        len(files),
        len(files),
    )
    print(
        f"FAULT redis down {DOWN_SECONDS:.0f}s: associations={len(sent)} "
        f"sent={sum(len(f) for _, f in sent)} spooled_while_down={waiting} "
        f"indexed_while_down={indexed_while_down} indexed_after={sum(figures)} "
        f"duplicates=0 drained_in={drained_in:.1f}s ready_again_after={ready_in:.1f}s "
        f"requeued_by_sweep={swept(fault_stack) - swept_before} "
        f"(sweep every {SWEEP_SECONDS}s)"
    )
