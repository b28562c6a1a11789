from pathlib import Path

from celery import shared_task
from django.db import connection

from pacs import spool
from pacs.ingest import do_ingest_spooled_file


@shared_task(name="pacs.ingest_spooled_file", acks_late=True, max_retries=20)
def ingest_spooled_file(spool_name: str, calling_ae_title: str = "") -> str | None:
    """Index one spooled instance; runs in the schema it was queued from."""
    # Only a bare file name crosses the queue: the path is rebuilt here, so a
    # forged message cannot point the worker at another tenant's files.
    path = spool.spool_dir(connection.schema_name) / Path(spool_name).name
    if not path.exists():
        return None  # already consumed: a redelivered message
    result = do_ingest_spooled_file(path, calling_ae_title)
    return result.sop_instance_uid if result else None
