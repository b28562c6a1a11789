"""Periodic work on helpdesk grants (beat sends it to every tenant's schema)."""

from celery import shared_task

from grants.actions import do_record_expired_grants


@shared_task(name="grants.record_expired")
def record_expired() -> int:
    return do_record_expired_grants()
