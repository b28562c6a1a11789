"""Prometheus metrics beyond django-prometheus's request metrics.

Several web processes and workers run on several machines, and Prometheus
scrapes each web process apart. So what is shared is read from the shared
services at scrape time, and any one process reports it whole:

- ``nimbus_ingested_instances_total{worker}``: instances indexed, counted in
  Redis by each worker after each ingest batch (``rate()`` of it is the
  ingest rate; the label shows how ingest spreads over workers);
- ``nimbus_queue_depth{queue}``: tasks waiting in each Celery queue;
- ``nimbus_hl7_backlog{tenant}``: HL7 messages not yet accepted by the RIS,
  and ``nimbus_hl7_oldest_pending_seconds{tenant}``; ``nimbus_hl7_held{tenant}``,
  messages held after a restore until someone resends them;
- ``nimbus_listener_up{kind,host,port}``: listeners that beat recently;
- ``nimbus_database_up``, ``nimbus_redis_up``, ``nimbus_storage_up`` and
  ``nimbus_worker_up{queue}``: the checks of ``/readyz`` (ops/readiness.py),
  1 or 0, so an alert names the dependency that went away.

What happens in the process itself is a local metric: the render latency
histogram ``nimbus_render_seconds{kind}`` (frames and thumbnails).

No label carries patient data: tenants by schema name, workers by host name.
"""

import functools
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import connection
from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from redis import Redis
from redis.exceptions import RedisError

from config.celery import INGEST_QUEUE, QUEUES
from ops import readiness
from ops.heartbeat import live_listeners

logger = logging.getLogger(__name__)

INGESTED_KEY = "nimbus:metrics:ingested"
RECEIVED_KEY = "nimbus:metrics:ingest-received"
# kombu's Redis transport keeps priorities 3, 6 and 9 in lists of their own.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_PENDING_STATES = ("pending", "retrying")
# Held after a restore: waiting for a person, not for the RIS.
_HELD_STATE = "held"

RENDER_SECONDS = Histogram(
    "nimbus_render_seconds",
    "Time to render one frame (or thumbnail) from the stored file, seconds.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

P = ParamSpec("P")
R = TypeVar("R")


def timed_render(function: Callable[P, R]) -> Callable[P, R]:
    """Observe the wrapped renderer's time in :data:`RENDER_SECONDS`."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        kind = "thumbnail" if kwargs.get("max_size") else "frame"
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            RENDER_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)

    return wrapper


def _redis() -> Redis:
    return Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def record_ingest(received: int, created: int, worker: str = "") -> None:
    """Count an ingest batch for ``worker`` (its Celery node name, or this host)."""
    worker = worker or socket.gethostname()
    try:
        with _redis().pipeline() as pipe:
            pipe.hincrby(RECEIVED_KEY, worker, received)
            pipe.hincrby(INGESTED_KEY, worker, created)
            pipe.execute()
    except RedisError as error:
        # A metric is never worth failing an ingest; Redis down shows elsewhere.
        logger.warning("Ingest not counted in the metrics: %s", error)


def connect_worker_signals() -> None:
    from celery.signals import task_success

    task_success.connect(_count_ingest_batch, weak=False)


def _count_ingest_batch(sender: Any = None, result: Any = None, **_: Any) -> None:
    if getattr(sender, "name", "") != "pacs.ingest_spooled_files":
        return
    args = getattr(sender.request, "args", None) or [[]]
    hostname = str(getattr(sender.request, "hostname", "") or "")
    record_ingest(len(args[0]), int(result or 0), hostname)


class SharedStateCollector(Collector):
    """Reads the shared services at each scrape (see the module's docstring)."""

    def collect(self) -> Iterator[Any]:
        yield from self._dependencies()
        try:
            client = _redis()
            yield from self._ingest(client)
            yield self._queues(client)
            yield self._listeners(client)
        except RedisError as error:
            logger.warning("Metrics from Redis left out: %s", error)
        yield from self._hl7_backlog()

    def _dependencies(self) -> Iterator[GaugeMetricFamily]:
        # The same checks as /readyz, each answering within about a second:
        # a scrape with Redis or PostgreSQL gone still answers, with a 0.
        for name, check in (
            ("database", readiness.database_ok),
            ("redis", readiness.redis_ok),
            ("storage", readiness.storage_ok),
        ):
            yield GaugeMetricFamily(
                f"nimbus_{name}_up",
                f"Whether this process reaches the {name} (1) or not (0).",
                value=int(check()),
            )
        consumed = readiness.consumed_queues()
        workers = GaugeMetricFamily(
            "nimbus_worker_up",
            "Whether a Celery worker that consumes the queue answers (1) or not (0).",
            labels=["queue"],
        )
        for queue in readiness.expected_queues(consumed):
            workers.add_metric([queue], int(queue in consumed))
        yield workers

    def _ingest(self, client: Redis) -> Iterator[Any]:
        for key, name, text in (
            (INGESTED_KEY, "nimbus_ingested_instances", "Instances newly indexed."),
            (RECEIVED_KEY, "nimbus_ingest_received_instances", "Spooled files taken."),
        ):
            family = CounterMetricFamily(name, text, labels=["worker"])
            for worker, count in sorted(client.hgetall(key).items()):
                family.add_metric([worker.decode()], int(count))
            yield family

    def _queues(self, client: Redis) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "nimbus_queue_depth",
            "Tasks waiting in each Celery queue.",
            labels=["queue"],
        )
        queues = self._queue_names(client)
        with client.pipeline() as pipe:
            for queue in queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
        steps = len(_PRIORITY_SUFFIXES)
        for index, queue in enumerate(queues):
            depth = sum(lengths[index * steps : (index + 1) * steps])
            family.add_metric([queue], depth)
        return family

    def _queue_names(self, client: Redis) -> list[str]:
        """The fixed queues, the configured ingest queues, and every per-host
        ingest queue that holds tasks, consumed or not (a dead host's): the
        listener may name one that the scraped process was never told of."""
        waiting = {
            key.decode(errors="replace").split("\x06")[0]
            for key in client.scan_iter(match=f"{INGEST_QUEUE}.*", _type="list")
        }
        names = [*QUEUES, *settings.NIMBUS_INGEST_QUEUES, *sorted(waiting)]
        return list(dict.fromkeys(names))

    def _listeners(self, client: Redis) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "nimbus_listener_up",
            "Listeners that beat within the last 30 seconds.",
            labels=["kind", "host", "port"],
        )
        for beat in live_listeners(client):
            labels = [str(beat[name]) for name in ("kind", "host", "port")]
            family.add_metric(labels, 1)
        return family

    def _hl7_backlog(self) -> Iterator[Any]:
        backlog = GaugeMetricFamily(
            "nimbus_hl7_backlog",
            "HL7 messages not yet accepted by the RIS (pending or retrying).",
            labels=["tenant"],
        )
        oldest = GaugeMetricFamily(
            "nimbus_hl7_oldest_pending_seconds",
            "Age of the oldest HL7 message not yet accepted, seconds.",
            labels=["tenant"],
        )
        held = GaugeMetricFamily(
            "nimbus_hl7_held",
            "HL7 messages held after a restore until someone resends them.",
            labels=["tenant"],
        )
        try:
            rows = hl7_backlog()
        except Exception as error:  # noqa: BLE001 - the database may be down
            logger.warning("HL7 backlog left out of the metrics: %s", error)
            return
        for schema, count, age, on_hold in rows:
            backlog.add_metric([schema], count)
            oldest.add_metric([schema], age)
            held.add_metric([schema], on_hold)
        yield backlog
        yield oldest
        yield held


def hl7_backlog() -> list[tuple[str, int, float, int]]:
    """(schema, messages pending, age of the oldest in seconds, messages held)
    for each tenant.

    One query over every tenant's schema rather than one per tenant: a scrape
    every 15 seconds of 50 tenants would otherwise be 50 round trips.
    """
    from tenants.models import Tenant

    schemas = list(
        Tenant.objects.exclude(schema_name="public").values_list(
            "schema_name", flat=True
        )
    )
    if not schemas:
        return []
    # Schema names are identifiers django-tenants validated, quoted besides.
    quote = connection.ops.quote_name
    select = (
        "SELECT %s, count(*) FILTER (WHERE state <> %s), greatest(0, coalesce("
        "extract(epoch FROM clock_timestamp() - min(created_at)"
        " FILTER (WHERE state <> %s)), 0)), count(*) FILTER (WHERE state = %s)"
        " FROM {}.reporting_outboundmessage WHERE state IN (%s, %s, %s)"
    )
    parts = [select.format(quote(schema)) for schema in schemas]
    params: list[str] = []
    for schema in schemas:
        params += [schema, *[_HELD_STATE] * 3, *_PENDING_STATES, _HELD_STATE]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return [(str(s), int(c), float(a), int(h)) for s, c, a, h in cursor.fetchall()]


_collector: SharedStateCollector | None = None


def register_collector() -> None:
    """Register the shared-state collector once per process."""
    global _collector  # noqa: PLW0603 - one registration per process
    if _collector is None:
        _collector = SharedStateCollector()
        REGISTRY.register(_collector)
