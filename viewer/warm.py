"""Warming the render cache: a series' frames rendered before they are asked for.

When the viewer opens a series it asks for a warm-up; a worker then renders
the frames at their default window into the render cache, nearest to the
start of the series first, so that scrolling finds them ready. Queued once
per series while its frames can still be in the cache.
"""

import logging
import time
from itertools import islice

from django.core.cache import cache

from pacs.models import Series
from viewer.cache import RENDER_CACHE_SECONDS, cached_render
from viewer.selectors import ordered_instances

logger = logging.getLogger(__name__)

# A bound on one warm-up: a 500-slice CT, not a 3,000-frame cine loop.
WARM_MAX_FRAMES = 500
# Queue again only once the first renders may have left the cache.
WARM_INTERVAL_SECONDS = RENDER_CACHE_SECONDS // 2


def do_queue_series_warm(series: Series) -> bool:
    """Queue the warm-up of ``series`` unless one was queued lately; True if queued."""
    from viewer.tasks import warm_series  # viewer.tasks imports this module

    # cache.add is atomic: two viewers opening the series queue one task.
    key = f"viewer:warm:{series.series_instance_uid}"
    if not cache.add(key, 1, timeout=WARM_INTERVAL_SECONDS):
        return False
    warm_series.delay(series.pk)
    return True


def warm_series_frames(series_id: int, limit: int = WARM_MAX_FRAMES) -> int:
    """Render up to ``limit`` frames of the series into the cache; returns how many."""
    series = Series.objects.filter(pk=series_id).first()
    if series is None:
        return 0

    started = time.monotonic()
    frames = (
        (instance, frame_index)
        for instance in ordered_instances(series)
        for frame_index in range(max(instance.number_of_frames, 1))
    )
    rendered = 0
    for instance, frame_index in islice(frames, limit):
        cached_render(instance, frame_index)
        rendered += 1
    logger.info(
        "render cache warmed series=%s frames=%d ms=%d",
        series.series_instance_uid,
        rendered,
        (time.monotonic() - started) * 1000,
    )
    return rendered
