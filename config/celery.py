"""The Celery app. Tasks run in the schema of the tenant that queued them.

Tasks go to one of four queues so that each kind of work scales (and
stalls) apart: a flood of received studies never delays the delivery of a
signed report, and a busy viewer never delays ingest.

| queue | tasks |
|---|---|
| ``ingest`` | indexing spooled instances |
| ``rendering`` | warming the viewer's caches |
| ``delivery`` | HL7 messages to the RIS |
| ``celery`` (default) | periodic upkeep: audit sealing, expiries, requeues |

A worker started without ``-Q`` consumes every queue (``make run``); a
production worker names its own (deploy/systemd/nimbus-worker@.service).
"""

import os

from celery.signals import setup_logging
from kombu import Exchange, Queue
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

INGEST_QUEUE = "ingest"
RENDERING_QUEUE = "rendering"
DELIVERY_QUEUE = "delivery"
DEFAULT_QUEUE = "celery"
QUEUES = (INGEST_QUEUE, RENDERING_QUEUE, DELIVERY_QUEUE, DEFAULT_QUEUE)

TASK_ROUTES = {
    "pacs.ingest_spooled_files": {"queue": INGEST_QUEUE},
    "viewer.warm_series": {"queue": RENDERING_QUEUE},
    "reporting.deliver_message": {"queue": DELIVERY_QUEUE},
}

app = CeleryApp("nimbus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_default_queue = DEFAULT_QUEUE
app.conf.task_queues = [
    Queue(name, Exchange(name), routing_key=name) for name in QUEUES
]
app.conf.task_routes = TASK_ROUTES
app.autodiscover_tasks()


@setup_logging.connect
def keep_django_logging(**_kwargs: object) -> None:
    """Leave logging as Django's LOGGING set it (level, console and file).

    Without a receiver, the worker replaces the root logger's handlers with
    its own and sets the level from ``--loglevel``, which would drop
    NIMBUS_LOG_FILE and NIMBUS_LOG_LEVEL in the worker.
    """
