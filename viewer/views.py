"""The diagnostic viewer: the study page, a series' image list and frames.

Every study, series and instance is loaded through pacs.access, so a user
who may not read the study (a referrer, another tenant) gets 404.
"""

import math

from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from pacs.access import get_instance_for_user, get_series_for_user, get_study_for_user
from pacs.models import Instance, Series
from viewer.actions import do_record_frames_viewed, do_record_study_opened
from viewer.cache import cached_render
from viewer.rendering import Rendered, Window
from viewer.selectors import CT_PRESETS, ordered_instances, study_series

THUMBNAIL_SIZE = 128
# Far beyond any real window (16-bit values times a rescale slope), but small
# enough that the arithmetic stays exact in float64.
WINDOW_LIMIT = 1e7
# Placeholders that the page's script replaces with UIDs and frame numbers.
UID_SLOT = "__uid__"


@require_GET
@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    series_list = list(study_series(study))

    do_record_study_opened(request, study)
    config = {
        "seriesUrl": reverse("viewer:series", args=[study_uid, UID_SLOT]),
        "uidSlot": UID_SLOT,
        "firstSeries": series_list[0].series_instance_uid if series_list else None,
        "labels": viewer_labels(),
    }
    context = {
        "study": study,
        "patient": study.patient,
        "patient_name": study.patient.patient_name.replace("^", " ").strip(),
        "series_list": series_list,
        "presets": CT_PRESETS,
        "config": config,
    }
    return render(request, "viewer/study.html", context)


@require_GET
@login_required
def series_images(
    request: HttpRequest, study_uid: str, series_uid: str
) -> JsonResponse:
    """The series' images in reading order, one entry per frame, with defaults."""
    series = get_series_for_user(request.user, study_uid, series_uid)
    instances = list(ordered_instances(series))

    images = [
        image_entry(study_uid, series, instance, frame)
        for instance in instances
        for frame in range(1, max(instance.number_of_frames, 1) + 1)
    ]
    return JsonResponse(
        {
            "series_instance_uid": series.series_instance_uid,
            "series_number": series.series_number,
            "series_description": series.series_description,
            "modality": series.modality,
            "default_window": series_default_window(instances),
            "images": images,
        }
    )


@require_GET
@login_required
def frame_png(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> HttpResponse:
    """One frame (numbered from 1) as PNG; ``?wc=&ww=`` request a window."""
    instance = get_instance_for_user(request.user, study_uid, series_uid, sop_uid)
    if not 1 <= frame <= max(instance.number_of_frames, 1):
        raise Http404("No such frame.")
    try:
        window = parse_window(request)
    except InvalidWindow:
        return HttpResponseBadRequest(
            _("wc and ww must be given together as numbers, with ww at least 1."),
            content_type="text/plain; charset=utf-8",
        )

    rendered = cached_render(instance, frame - 1, window)
    do_record_frames_viewed(request, instance.series)
    return png_response(rendered)


@require_GET
@login_required
def series_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str
) -> HttpResponse:
    series = get_series_for_user(request.user, study_uid, series_uid)
    instances = list(ordered_instances(series))
    if not instances:
        return HttpResponse(status=204)

    middle = instances[len(instances) // 2]
    return png_response(cached_render(middle, 0, None, max_size=THUMBNAIL_SIZE))


class InvalidWindow(ValueError):
    """The query's wc/ww are not a usable window."""


def parse_window(request: HttpRequest) -> Window | None:
    """The ``wc``/``ww`` query window, or None when neither is given.

    Raises InvalidWindow for one without the other, a non-number, NaN or
    infinity, a width below 1 (PS3.3 C.11.2.1.2) or an absurd magnitude.
    """
    center, width = request.GET.get("wc"), request.GET.get("ww")
    if center is None and width is None:
        return None
    try:
        window = (float(center or ""), float(width or ""))
    except ValueError as error:
        raise InvalidWindow from error
    if not all(math.isfinite(v) and abs(v) <= WINDOW_LIMIT for v in window):
        raise InvalidWindow
    if window[1] < 1:
        raise InvalidWindow
    return window


def png_response(rendered: Rendered) -> HttpResponse:
    response = HttpResponse(rendered.png, content_type="image/png")
    if rendered.window is not None:
        response["X-Window-Center"] = format_number(rendered.window[0])
        response["X-Window-Width"] = format_number(rendered.window[1])
    if rendered.error:
        response["X-Render-Error"] = "1"
    return response


def image_entry(study_uid: str, series: Series, instance: Instance, frame: int) -> dict:
    url = reverse(
        "viewer:frame",
        args=[study_uid, series.series_instance_uid, instance.sop_instance_uid, frame],
    )
    return {
        "url": url,
        "sop_instance_uid": instance.sop_instance_uid,
        "instance_number": instance.instance_number,
        "frame": frame,
        "number_of_frames": instance.number_of_frames,
        "slice_position": instance.slice_position,
        "window_center": instance.window_center,
        "window_width": instance.window_width,
        "rows": instance.rows,
        "columns": instance.columns,
        "renderable": instance.pixel_status == "ok",
    }


def series_default_window(instances: list[Instance]) -> dict | None:
    """The first window any instance carries; the viewer starts with it."""
    for instance in instances:
        if instance.window_center is not None and instance.window_width:
            return {"center": instance.window_center, "width": instance.window_width}
    return None


def format_number(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def viewer_labels() -> dict[str, str]:
    """Text the page's script shows, translated here (the script has no gettext)."""
    return {
        "window": _("W: %(ww)s L: %(wc)s"),
        "position": _("Im: %(n)s/%(total)s"),
        "instance": _("Instance: %(number)s"),
        "frame": _("Frame: %(n)s/%(total)s"),
        "location": _("Loc: %(mm)s mm"),
        "series": _("Se: %(number)s %(description)s"),
        "loading": _("Loading…"),
        "failed": _("The image could not be loaded."),
        "empty": _("This series has no images."),
    }
