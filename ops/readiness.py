"""What ``/readyz`` checks: every dependency of a Nimbus deployment.

Each check answers True or False within about a second; the probe is ready
only when all are. ``checks()`` names each one, so an operator (and the
helpdesk) sees which dependency is missing:

- ``database``: PostgreSQL answers a query;
- ``redis``: the broker, cache and Channels layer answers a ping;
- ``worker``, and ``worker:<queue>`` for each Celery queue: a worker that
  consumes it answers (config/celery.py lists the queues);
- ``storage``: the archive folder is writable, or the bucket answers;
- ``listener:<kind>`` for each kind in ``NIMBUS_READY_LISTENERS``: a
  listener of that kind beat within the last 30 seconds (ops/heartbeat.py).
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from redis import Redis
from redis.exceptions import RedisError

from config.celery import QUEUES
from config.celery import app as celery_app
from ops.heartbeat import live_listeners


def checks() -> dict[str, bool]:
    result = {"database": database_ok(), "redis": redis_ok()}
    consumed = consumed_queues()
    result["worker"] = bool(consumed)
    for queue in QUEUES:
        result[f"worker:{queue}"] = queue in consumed
    result["storage"] = storage_ok()
    kinds = _listener_kinds() if result["redis"] else set()
    for kind in settings.NIMBUS_READY_LISTENERS:
        result[f"listener:{kind}"] = kind in kinds
    return result


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def _redis() -> Redis:
    return Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def redis_ok() -> bool:
    try:
        return bool(_redis().ping())
    except RedisError:
        return False


def consumed_queues() -> set[str]:
    """The queues that at least one answering worker consumes."""
    try:
        replies = celery_app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:  # noqa: BLE001 - broker down or no worker
        return set()
    return {queue["name"] for queues in replies.values() for queue in queues or []}


def storage_ok() -> bool:
    try:
        if isinstance(default_storage, FileSystemStorage):
            # Made on the first store otherwise: a fresh deployment is ready.
            root = Path(default_storage.location)
            root.mkdir(parents=True, exist_ok=True)
            return os.access(root, os.W_OK | os.X_OK)
        client = default_storage.connection.meta.client
        client.head_bucket(Bucket=default_storage.bucket_name)
        return True
    except Exception:  # noqa: BLE001 - unreachable, refused, misconfigured
        return False


def _listener_kinds() -> set[str]:
    try:
        return {str(beat["kind"]) for beat in live_listeners(_redis())}
    except RedisError:
        return set()
