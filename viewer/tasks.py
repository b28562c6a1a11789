from celery import shared_task

from viewer.warm import warm_series_frames


@shared_task(name="viewer.warm_series", acks_late=True)
def warm_series(series_id: int) -> int:
    """Fill the render cache for one series; runs in the schema it was queued from."""
    return warm_series_frames(series_id)
