"""Spooled files are queued for ingest on the listener machine's own queue.

The spool is a local folder: a worker on another machine could not read the
files, so each listener machine may name a queue of its own.
"""

import base64
import json
import uuid

import pytest
import redis
from django.conf import settings

from pacs.dimse.listener import queue_ingest


@pytest.fixture
def broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def test_files_are_queued_on_the_machines_ingest_queue(settings, broker):
    queue = f"ingest.test-{uuid.uuid4().hex[:8]}"
    settings.NIMBUS_INGEST_QUEUE = queue
    try:
        assert queue_ingest("tenant_a", ["a.dcm", "b.dcm"], "MODALITY")

        message = json.loads(broker.lpop(queue))
    finally:
        broker.delete(queue)

    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert message["headers"]["task"] == "pacs.ingest_spooled_files"
    assert message["headers"]["_schema_name"] == "tenant_a"
    assert args == [["a.dcm", "b.dcm"], "MODALITY"]
