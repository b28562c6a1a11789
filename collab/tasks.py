"""Periodic work on second opinions (beat sends it to the public schema only)."""

from celery import shared_task

from collab.actions import do_record_expired_second_opinions


@shared_task(name="collab.record_expired")
def record_expired() -> int:
    return do_record_expired_second_opinions()
