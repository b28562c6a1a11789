"""What the viewer needs to know about one frame besides its pixels."""

from django.core.cache import cache
from pydicom.dataset import Dataset

from pacs.models import Instance
from viewer.measurements import pixel_spacing, value_unit
from viewer.rendering import (
    VoiChoice,
    cine_frame_rate,
    file_voi_choices,
    frame_attributes,
    load_header,
    lut_input_window,
)

INFO_CACHE_SECONDS = 10 * 60


def frame_info(
    instance: Instance, frame_index: int, ds: Dataset | None = None
) -> dict[str, object]:
    """Pixel spacing, value unit, the file's VOI choices and cine rate, cached.

    Read from the file's header (``ds`` when the caller has read it), which
    the index does not hold; cached like rendered frames, per tenant (the
    cache key function adds the schema).
    """
    key = f"viewer:info:{instance.sop_instance_uid}:{frame_index}"
    info = cache.get(key)
    if isinstance(info, dict):
        return info

    ds = ds if ds is not None else load_header(instance)
    spacing = pixel_spacing(ds, frame_index)
    attrs = frame_attributes(ds, frame_index)
    info = {
        "pixel_spacing": [spacing.row, spacing.column] if spacing else None,
        "spacing_source": spacing.source if spacing else None,
        "value_unit": value_unit(ds, frame_index),
        "voi_choices": [
            voi_choice_facts(attrs, position, choice)
            for position, choice in enumerate(file_voi_choices(attrs))
        ],
        "cine_fps": cine_frame_rate(ds) if instance.number_of_frames > 1 else None,
    }
    cache.set(key, info, INFO_CACHE_SECONDS)
    return info


def voi_choice_facts(attrs: Dataset, position: int, choice: VoiChoice) -> dict:
    """One VOI choice; a LUT's center and width span its input range.

    ``index`` counts windows then LUTs, as the frame URL's ``?voi=`` does.
    """
    window = choice.window
    if choice.kind == "lut":
        window = lut_input_window(attrs, choice.index)
    return {
        "index": position,
        "kind": choice.kind,
        "explanation": choice.explanation,
        "center": window[0] if window else None,
        "width": window[1] if window else None,
    }
