"""What the viewer needs to know about one frame besides its pixels."""

from django.core.cache import cache

from pacs.models import Instance
from viewer.measurements import pixel_spacing, value_unit
from viewer.rendering import cine_frame_rate, load_header, voi_choices

INFO_CACHE_SECONDS = 10 * 60


def frame_info(instance: Instance, frame_index: int) -> dict[str, object]:
    """Pixel spacing, value unit, the file's VOI choices and cine rate, cached.

    Read from the file's header, which the index does not hold; cached like
    rendered frames, per tenant (the cache key function adds the schema).
    """
    key = f"viewer:info:{instance.sop_instance_uid}:{frame_index}"
    info = cache.get(key)
    if isinstance(info, dict):
        return info

    ds = load_header(instance)
    spacing = pixel_spacing(ds, frame_index)
    info = {
        "pixel_spacing": [spacing.row, spacing.column] if spacing else None,
        "spacing_source": spacing.source if spacing else None,
        "value_unit": value_unit(ds, frame_index),
        "voi_choices": [
            {
                "index": position,
                "kind": choice.kind,
                "explanation": choice.explanation,
                "center": choice.window[0] if choice.window else None,
                "width": choice.window[1] if choice.window else None,
            }
            for position, choice in enumerate(voi_choices(ds, frame_index))
        ],
        "cine_fps": cine_frame_rate(ds) if instance.number_of_frames > 1 else None,
    }
    cache.set(key, info, INFO_CACHE_SECONDS)
    return info
