"""The render cache: rendered PNGs kept in the Django cache (Redis).

Keys are per instance, frame, window and size; the cache's key function adds
the tenant's schema, so two hospitals never share an entry.
"""

from django.core.cache import cache

from pacs.models import Instance
from viewer.rendering import Rendered, Window, render_frame

RENDER_CACHE_SECONDS = 10 * 60


def render_key(
    instance: Instance, frame_index: int, window: Window | None, max_size: int | None
) -> str:
    window_part = "default" if window is None else f"{window[0]!r}:{window[1]!r}"
    return (
        f"viewer:png:{instance.sop_instance_uid}:{frame_index}:"
        f"{window_part}:{max_size or 0}"
    )


def cached_render(
    instance: Instance,
    frame_index: int = 0,
    window: Window | None = None,
    *,
    max_size: int | None = None,
) -> Rendered:
    """Render through the cache; error images are not kept (storage may recover)."""
    key = render_key(instance, frame_index, window, max_size)
    rendered = cache.get(key)
    if isinstance(rendered, Rendered):
        return rendered

    rendered = render_frame(instance, frame_index, window, max_size=max_size)
    if not rendered.error:
        cache.set(key, rendered, RENDER_CACHE_SECONDS)
    return rendered
