"""/readyz and /metrics with one ingest queue per listener machine
(NIMBUS_INGEST_QUEUE=ingest.<host>), against a real Celery worker."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client
from kombu import Connection

from config.celery import app as celery_app
from ops.tests.test_metrics import scrape, value
from tests.support.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]
OTHER_QUEUES = "rendering,delivery,celery"


def readyz() -> dict[str, bool]:
    return Client(HTTP_HOST="127.0.0.1").get("/readyz").json()["checks"]


@pytest.fixture(scope="module")
def h1_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    """A worker of machine h1: its ingest queue and the shared ones, on the
    broker this test process's probes ask."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker"]
            + ["--pool", "threads", "--concurrency", "1", "-n", "h1@%h"]
            + ["-Q", f"ingest.h1,{OTHER_QUEUES}", "--without-mingle"]
            + ["--without-gossip", "--loglevel", "WARNING"],
            cwd=ROOT,
            env={**os.environ, "REDIS_URL": str(celery_app.conf.broker_url)},
            stdout=out,
            stderr=out,
        )
    try:
        yield worker
    finally:
        worker.kill()
        worker.wait(30)


@pytest.mark.django_db
def test_a_worker_on_a_per_host_ingest_queue_passes_the_ingest_check(
    h1_worker, storage_dirs
):
    wait_for(lambda: readyz().get("worker:ingest.h1"), 60, what="the worker")

    checks = readyz()
    _, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert "worker:ingest" not in checks  # the deployment uses per-host queues
    assert all(checks[f"worker:{queue}"] for queue in OTHER_QUEUES.split(","))
    assert value(text, "nimbus_worker_up", queue="ingest.h1") == 1
    assert value(text, "nimbus_worker_up", queue="ingest") is None


@pytest.mark.django_db
def test_a_configured_ingest_queue_without_a_worker_is_not_ready(
    h1_worker, storage_dirs, settings
):
    settings.NIMBUS_INGEST_QUEUES = ["ingest.h1", "ingest.h2"]
    wait_for(lambda: readyz().get("worker:ingest.h1"), 60, what="the worker")

    checks = readyz()

    assert checks["worker:ingest.h2"] is False
    assert Client(HTTP_HOST="127.0.0.1").get("/readyz").status_code == 503


@pytest.mark.django_db
def test_the_probe_answers_at_once_when_every_queue_has_a_worker(
    h1_worker, storage_dirs, settings
):
    # It used to wait a whole second for replies that would never come.
    settings.NIMBUS_INGEST_QUEUES = ["ingest.h1"]
    wait_for(lambda: readyz().get("worker:ingest.h1"), 60, what="the worker")

    started = time.monotonic()
    checks = readyz()
    probe = time.monotonic() - started
    started = time.monotonic()
    scrape(REMOTE_ADDR="127.0.0.1")
    metrics = time.monotonic() - started

    assert checks["worker:ingest.h1"] is True
    assert probe < 0.5 and metrics < 0.5, (probe, metrics)


@pytest.mark.django_db
def test_tasks_waiting_in_a_per_host_ingest_queue_show_in_its_depth(own_redis):
    with Connection(own_redis) as broker:
        for _ in range(4):
            celery_app.send_task(
                "pacs.ingest_spooled_files",
                args=[[]],
                queue="ingest.h1",
                connection=broker,
            )

    _, text = scrape(REMOTE_ADDR="127.0.0.1")

    assert value(text, "nimbus_queue_depth", queue="ingest.h1") == 4
    assert value(text, "nimbus_queue_depth", queue="ingest") == 0


@pytest.mark.django_db
def test_a_dead_worker_is_reported(h1_worker, storage_dirs, settings):
    settings.NIMBUS_INGEST_QUEUES = ["ingest.h1"]
    wait_for(lambda: readyz().get("worker:ingest.h1"), 60, what="the worker")

    h1_worker.kill()
    h1_worker.wait(30)

    checks = readyz()
    assert checks["worker:ingest.h1"] is False
    assert checks["worker"] is False
