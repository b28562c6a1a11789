"""Listener heartbeats in Redis, so that any web process can tell which run.

Each DICOM and HL7 listener process writes a key that expires unless renewed;
``/readyz`` and ``/metrics`` list the keys. A listener on another machine is
seen as well as one on this one, and a listener that died is gone from the
list within :data:`TTL_SECONDS`.
"""

import json
import logging
import os
import socket
import threading

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

PREFIX = "nimbus:listener:"
INTERVAL_SECONDS = 10
TTL_SECONDS = 30


def start_heartbeat(kind: str, port: int) -> threading.Event:
    """Beat for a listener of ``kind`` (``dicom``, ``hl7``) until the event is set."""
    stop = threading.Event()
    key = f"{PREFIX}{kind}:{socket.gethostname()}:{port}:{os.getpid()}"
    value = json.dumps({"kind": kind, "host": socket.gethostname(), "port": port})
    thread = threading.Thread(
        target=_beat, args=(key, value, stop), name=f"heartbeat-{kind}", daemon=True
    )
    thread.start()
    return stop


def _beat(key: str, value: str, stop: threading.Event) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)
    while True:
        try:
            client.set(key, value, ex=TTL_SECONDS)
        except redis.RedisError as error:
            # Redis down: readiness says so already; the beat resumes after.
            logger.debug("Heartbeat not written: %s", error)
        if stop.wait(INTERVAL_SECONDS):
            break
    try:
        client.delete(key)
    except redis.RedisError:
        pass


def live_listeners(client: redis.Redis) -> list[dict[str, object]]:
    """The listeners that beat within the last :data:`TTL_SECONDS`."""
    keys = list(client.scan_iter(match=f"{PREFIX}*", count=500))
    values = client.mget(keys) if keys else []
    return [json.loads(value) for value in values if value]
