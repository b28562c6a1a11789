"""Queueing spooled instances for indexing in batches.

A CT series arrives as hundreds of C-STOREs a second. One Celery task per
instance would spend more time on the queue round trip and the per-task
transaction than on indexing; one task per batch indexes a series in a few
transactions. A batch is sent when it is full or when its first file has
waited ``max_delay`` seconds, so the last instances of a study become
queryable almost at once.
"""

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# (schema, calling AE title) -> spool file names waiting to be queued.
Pending = dict[tuple[str, str], list[str]]
Send = Callable[[str, list[str], str], bool]


class IngestBatcher:
    """Collect spool file names per tenant and sender; hand them on in batches.

    ``send(schema, names, calling_ae_title)`` queues one batch and returns
    False when the broker is down: the files then wait in the spool for the
    sweeper, so a failed send loses nothing.
    """

    def __init__(self, send: Send, max_files: int = 100, max_delay: float = 0.05):
        self._send = send
        self._max_files = max_files
        self._max_delay = max_delay
        self._pending: Pending = {}
        self._count = 0
        self._oldest = 0.0
        self._closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._run, name="ingest-batcher", daemon=True
        )
        self._thread.start()

    def add(self, schema: str, spool_name: str, calling_ae_title: str) -> None:
        with self._changed:
            if not self._count:
                self._oldest = time.monotonic()
            self._pending.setdefault((schema, calling_ae_title), []).append(spool_name)
            self._count += 1
            # The first file starts the clock; a full batch goes at once.
            if self._count == 1 or self._count >= self._max_files:
                self._changed.notify()

    def close(self) -> None:
        """Send what is pending and stop."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._changed:
                batch = self._wait_for_batch()
            for (schema, calling_ae_title), names in batch.items():
                for start in range(0, len(names), self._max_files):
                    chunk = names[start : start + self._max_files]
                    try:
                        self._send(schema, chunk, calling_ae_title)
                    except Exception:  # the spool keeps the files for the sweeper
                        logger.exception("ingest batch of %d not sent", len(chunk))
            if self._closed and not batch:
                return

    def _wait_for_batch(self) -> Pending:
        """Block until a batch is due (full, old enough or closing); take it."""
        while not self._closed:
            if self._count >= self._max_files:
                break
            if self._count:
                remaining = self._oldest + self._max_delay - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            else:
                self._changed.wait()
        batch, self._pending, self._count = self._pending, {}, 0
        return batch
