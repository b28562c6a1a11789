from pathlib import Path

from celery import shared_task
from django.db import connection

from pacs import spool
from pacs.ingest import do_ingest_spooled_files


@shared_task(name="pacs.ingest_spooled_files", acks_late=True)
def ingest_spooled_files(spool_names: list[str], calling_ae_title: str = "") -> int:
    """Index a batch of spooled instances; runs in the schema it was queued from.

    Returns how many instances were new.
    """
    # Only bare file names cross the queue: paths are rebuilt here, so a
    # forged message cannot point the worker at another tenant's files.
    directory = spool.spool_dir(connection.schema_name)
    paths = [directory / Path(name).name for name in spool_names]
    # A file already consumed means a redelivered message: nothing to do.
    waiting = [path for path in paths if path.exists()]
    results = do_ingest_spooled_files(waiting, calling_ae_title)
    return sum(result.created for result in results)
