"""What ``/readyz`` checks: every dependency of a Nimbus deployment.

Each check answers True or False within about a second; the probe is ready
only when all are. ``checks()`` names each one, so an operator (and the
helpdesk) sees which dependency is missing:

- ``database``: PostgreSQL answers a query;
- ``redis``: the broker, cache and Channels layer answers a ping;
- ``worker``, and ``worker:<queue>`` for each Celery queue: a worker that
  consumes it answers (config/celery.py lists the queues). The ingest queue
  may be one per listener machine (``ingest.<host>``): each of
  ``NIMBUS_INGEST_QUEUES`` is checked, or when that is empty, the per-host
  queues that answering workers consume, else ``NIMBUS_INGEST_QUEUE``;
- ``storage``: the archive folder is writable, or the bucket answers;
- ``listener:<kind>`` for each kind in ``NIMBUS_READY_LISTENERS``: a
  listener of that kind beat within the last 30 seconds (ops/heartbeat.py).
"""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection
from redis import Redis
from redis.exceptions import RedisError

from config.celery import INGEST_QUEUE, QUEUES
from config.celery import app as celery_app
from ops.heartbeat import live_listeners


def checks() -> dict[str, bool]:
    result = {"database": database_ok(), "redis": redis_ok()}
    consumed = consumed_queues()
    result["worker"] = bool(consumed)
    for queue in expected_queues(consumed):
        result[f"worker:{queue}"] = queue in consumed
    result["storage"] = storage_ok()
    kinds = _listener_kinds() if result["redis"] else set()
    for kind in settings.NIMBUS_READY_LISTENERS:
        result[f"listener:{kind}"] = kind in kinds
    return result


def ingest_queues(consumed: Iterable[str]) -> list[str]:
    """The deployment's ingest queues (see the module's docstring)."""
    if settings.NIMBUS_INGEST_QUEUES:
        return list(settings.NIMBUS_INGEST_QUEUES)
    per_host = sorted(queue for queue in consumed if _is_per_host_ingest(queue))
    return per_host or [settings.NIMBUS_INGEST_QUEUE]


def expected_queues(consumed: Iterable[str]) -> list[str]:
    """Every queue a worker must consume: the ingest queues and the others."""
    others = [queue for queue in QUEUES if queue != INGEST_QUEUE]
    return ingest_queues(consumed) + others


def _is_per_host_ingest(queue: str) -> bool:
    return queue.startswith(f"{INGEST_QUEUE}.")


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


class _EveryQueueAnswered(Exception):
    """Stops collecting replies: the rest would only confirm."""


def consumed_queues() -> set[str]:
    """The queues that at least one answering worker consumes.

    Workers answer within milliseconds, but the broadcast waits up to a
    second after the last reply for another: it stops as soon as the
    replies cover every expected queue, so a probe of a healthy deployment
    answers at once and only a missing worker costs the full second.
    """
    consumed: set[str] = set()

    def on_reply(reply: dict[str, list[dict[str, Any]] | None]) -> None:
        for queues in reply.values():
            consumed.update(queue["name"] for queue in queues or [])
        wanted = expected_queues(consumed)
        # Unconfigured per-host queues: wait for every worker's reply.
        if settings.NIMBUS_INGEST_QUEUES or not _per_host_in(consumed):
            if set(wanted) <= consumed:
                raise _EveryQueueAnswered

    try:
        celery_app.control.broadcast(
            "active_queues", reply=True, timeout=1.0, callback=on_reply
        )
    except _EveryQueueAnswered:
        pass
    except Exception:  # noqa: BLE001 - broker down or no worker
        return set()
    finally:
        # Replies that came after the early stop would pile up here.
        celery_app.control.mailbox.unclaimed.clear()
    return consumed


def _per_host_in(queues: Iterable[str]) -> bool:
    return any(_is_per_host_ingest(queue) for queue in queues)


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
