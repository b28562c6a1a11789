"""/readyz names every dependency and is ready only when all answer."""

import pytest
import redis
from django.test import Client

from ops.heartbeat import start_heartbeat
from tests.support.stack import wait_for


def readyz() -> tuple[int, dict[str, bool]]:
    response = Client(HTTP_HOST="127.0.0.1").get("/readyz")
    return response.status_code, response.json()["checks"]


@pytest.mark.django_db
def test_it_names_each_queue_storage_and_listener(own_redis, storage_dirs):
    status, checks = readyz()

    assert status == 503  # no worker and no listener beside the unit tests
    assert checks["database"] and checks["redis"] and checks["storage"]
    for name in ("worker:ingest", "worker:rendering", "worker:delivery"):
        assert checks[name] is False
    assert checks["listener:dicom"] is False and checks["listener:hl7"] is False


@pytest.mark.django_db
def test_a_listener_counts_while_it_beats_and_not_after(own_redis, storage_dirs):
    stop = start_heartbeat("dicom", 11112)
    wait_for(lambda: readyz()[1]["listener:dicom"], 10, what="the heartbeat")
    assert readyz()[1]["listener:hl7"] is False

    stop.set()

    client = redis.Redis.from_url(own_redis)
    wait_for(lambda: not client.keys("nimbus:listener:*"), 10, what="the key gone")
    assert readyz()[1]["listener:dicom"] is False


@pytest.mark.django_db
def test_an_archive_that_cannot_be_written_is_not_ready(settings, tmp_path, own_redis):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blocker / "storage")},
        },
    }

    assert readyz()[1]["storage"] is False


@pytest.mark.django_db
def test_redis_down_is_not_ready(settings, storage_dirs):
    # A port nothing listens on: the probe must answer, not hang.
    settings.REDIS_URL = "redis://127.0.0.1:9/0"

    status, checks = readyz()

    assert status == 503 and checks["redis"] is False
    assert checks["listener:dicom"] is False
