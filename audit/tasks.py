"""Periodic work on each tenant's audit trail (beat sends it to every schema)."""

import logging

from celery import shared_task

from audit.actions import EXPORT_BATCH, do_export_audit_messages
from audit.chain import do_seal_all_events
from audit.syslog import configured_repository

logger = logging.getLogger(__name__)


@shared_task(name="audit.seal_and_export")
def seal_and_export() -> int:
    """Chain the new records, then send what the repository has not had yet.

    No Celery retry: the export marker lives in the database and beat runs
    this again every few seconds, which is the retry, and it survives a
    flushed broker. Returns how many messages were sent.
    """
    try:
        do_seal_all_events()
        repository = configured_repository()
        if repository is None:
            return 0
        sent = 0
        while True:
            result = do_export_audit_messages(repository)
            sent += result.sent
            if result.sent < EXPORT_BATCH:
                return sent
    except Exception:
        logger.exception("sealing or exporting the audit trail failed")
        raise
