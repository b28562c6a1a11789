"""The render cache: rendered PNGs kept in the Django cache (Redis).

Keys are per series, instance, frame and rendering (window or VOI choice,
VOI function, size step); the cache's key function adds the tenant's schema,
so two hospitals never share an entry. The series is in the key because the
cached-frame fast path (viewer/fastpath.py) trusts an entry only for the
series it was rendered under: a hit proves the instance belongs to it.
"""

from django.core.cache import cache

from pacs.models import Instance
from viewer.frame_query import FrameQuery
from viewer.rendering import Rendered, render_frame

RENDER_CACHE_SECONDS = 10 * 60
AS_STORED = FrameQuery()


def render_key(
    series_instance_uid: str, sop_instance_uid: str, frame_index: int, query: FrameQuery
) -> str:
    return (
        f"viewer:png:{series_instance_uid}:{sop_instance_uid}:{frame_index}:"
        f"{query.cache_part()}"
    )


def instance_render_key(
    instance: Instance, frame_index: int, query: FrameQuery = AS_STORED
) -> str:
    # Callers load instances through their series (select_related or the
    # series' own manager), so this reads no row.
    series_uid = instance.series.series_instance_uid
    return render_key(series_uid, instance.sop_instance_uid, frame_index, query)


def cached_render(
    instance: Instance, frame_index: int = 0, query: FrameQuery = AS_STORED
) -> Rendered:
    """Render through the cache; error images are not kept (storage may recover)."""
    key = instance_render_key(instance, frame_index, query)
    rendered = cache.get(key)
    if isinstance(rendered, Rendered):
        return rendered

    rendered = render_frame(
        instance,
        frame_index,
        query.window,
        max_size=query.max_size_for(instance.rows, instance.columns),
        voi_index=query.voi_index,
        voi_function=query.voi_function,
    )
    if not rendered.error:
        cache.set(key, rendered, RENDER_CACHE_SECONDS)
    return rendered
