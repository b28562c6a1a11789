"""The render cache: rendered PNGs kept in the Django cache (Redis).

Keys are per instance, frame, window or VOI choice, VOI function and size;
the cache's key function adds the tenant's schema, so two hospitals never
share an entry.
"""

from django.core.cache import cache

from pacs.models import Instance
from viewer.rendering import Rendered, Window, render_frame

RENDER_CACHE_SECONDS = 10 * 60


def render_key(
    instance: Instance,
    frame_index: int,
    window: Window | None,
    max_size: int | None,
    voi_index: int = 0,
    voi_function: str | None = None,
) -> str:
    # A chosen window overrides the file's VOI choices, so voi_index only
    # tells entries apart when no window is given.
    window_part = (
        f"voi{voi_index}" if window is None else f"{window[0]!r}:{window[1]!r}"
    )
    return (
        f"viewer:png:{instance.sop_instance_uid}:{frame_index}:"
        f"{window_part}:{voi_function or 'file'}:{max_size or 0}"
    )


def cached_render(
    instance: Instance,
    frame_index: int = 0,
    window: Window | None = None,
    *,
    max_size: int | None = None,
    voi_index: int = 0,
    voi_function: str | None = None,
) -> Rendered:
    """Render through the cache; error images are not kept (storage may recover)."""
    key = render_key(instance, frame_index, window, max_size, voi_index, voi_function)
    rendered = cache.get(key)
    if isinstance(rendered, Rendered):
        return rendered

    rendered = render_frame(
        instance,
        frame_index,
        window,
        max_size=max_size,
        voi_index=voi_index,
        voi_function=voi_function,
    )
    if not rendered.error:
        cache.set(key, rendered, RENDER_CACHE_SECONDS)
    return rendered
