"""The Celery app. Tasks run in the schema of the tenant that queued them."""

import os

from celery.signals import setup_logging
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = CeleryApp("nimbus")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def keep_django_logging(**_kwargs: object) -> None:
    """Leave logging as Django's LOGGING set it (level, console and file).

    Without a receiver, the worker replaces the root logger's handlers with
    its own and sets the level from ``--loglevel``, which would drop
    NIMBUS_LOG_FILE and NIMBUS_LOG_LEVEL in the worker.
    """
