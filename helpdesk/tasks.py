"""Periodic work on MFA reset requests (beat sends it to every tenant's schema)."""

from celery import shared_task

from helpdesk.actions import do_record_expired_resets


@shared_task(name="helpdesk.record_expired_resets")
def record_expired_resets() -> int:
    return do_record_expired_resets()
