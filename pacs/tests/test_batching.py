"""The listener's ingest batcher, with a recording sender in place of Celery."""

import threading
import time

from pacs.dimse.batching import IngestBatcher


class Recorder:
    def __init__(self, accept: bool = True) -> None:
        self.batches: list[tuple[str, list[str], str]] = []
        self.accept = accept
        self.sent = threading.Event()

    def __call__(self, schema: str, names: list[str], calling: str) -> bool:
        self.batches.append((schema, names, calling))
        self.sent.set()
        return self.accept


def test_it_sends_a_full_batch_at_once():
    recorder = Recorder()
    batcher = IngestBatcher(recorder, max_files=3, max_delay=60)

    for name in ("a", "b", "c"):
        batcher.add("hospital_a", name, "CT1")

    assert recorder.sent.wait(5)
    assert recorder.batches == [("hospital_a", ["a", "b", "c"], "CT1")]
    batcher.close()


def test_it_sends_a_partial_batch_after_the_delay():
    recorder = Recorder()
    batcher = IngestBatcher(recorder, max_files=100, max_delay=0.1)
    started = time.monotonic()

    batcher.add("hospital_a", "a", "CT1")

    assert recorder.sent.wait(5)
    assert time.monotonic() - started >= 0.1
    assert recorder.batches == [("hospital_a", ["a"], "CT1")]
    batcher.close()


def test_it_keeps_tenants_and_senders_apart():
    recorder = Recorder()
    batcher = IngestBatcher(recorder, max_files=100, max_delay=60)

    batcher.add("hospital_a", "a1", "CT1")
    batcher.add("hospital_b", "b1", "CT1")
    batcher.add("hospital_a", "a2", "MR1")
    batcher.add("hospital_a", "a3", "CT1")
    batcher.close()

    assert sorted(recorder.batches) == [
        ("hospital_a", ["a1", "a3"], "CT1"),
        ("hospital_a", ["a2"], "MR1"),
        ("hospital_b", ["b1"], "CT1"),
    ]


def test_it_goes_on_after_a_send_fails():
    recorder = Recorder(accept=False)
    batcher = IngestBatcher(recorder, max_files=1, max_delay=60)

    batcher.add("hospital_a", "a", "CT1")
    assert recorder.sent.wait(5)
    recorder.sent.clear()
    batcher.add("hospital_a", "b", "CT1")

    assert recorder.sent.wait(5)
    assert [names for _, names, _ in recorder.batches] == [["a"], ["b"]]
    batcher.close()
