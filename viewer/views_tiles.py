"""Tiles of large images, lossy W/L previews and the render-cache warm-up.

Like the frame endpoint, each view loads through pacs.access (404 for a
user who may not read the study) and records FRAMES_VIEWED; the no-store
middleware keeps every answer out of the browser's caches.
"""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from pacs.access import get_series_for_user
from pacs.models import Instance
from viewer.actions import do_record_frames_viewed
from viewer.frame_query import InvalidWindow, format_number, parse_window
from viewer.rendering import RenderError, Window, error_png
from viewer.tiles import (
    TILE_SIZE,
    NoSuchTile,
    is_large,
    pyramid,
    render_preview,
    render_tile,
)
from viewer.views_tools import frame_instance
from viewer.warm import do_queue_series_warm

# Slots in the tile URL template that the page's script fills in.
TILE_SLOTS = (987654321, 987654322, 987654323)


@require_GET
@login_required
def frame_tiles(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> JsonResponse:
    """The frame's zoom levels and the URL template of its tiles."""
    instance = frame_instance(request, study_uid, series_uid, sop_uid, frame)
    levels = pyramid(instance.columns or 0, instance.rows or 0)
    template = reverse(
        "viewer:frame_tile",
        args=[study_uid, series_uid, sop_uid, frame, *TILE_SLOTS],
    )
    for slot, name in zip(TILE_SLOTS, ("{level}", "{x}", "{y}"), strict=True):
        template = template.replace(str(slot), name)
    return JsonResponse(
        {
            "width": instance.columns,
            "height": instance.rows,
            "tile_size": TILE_SIZE,
            "large": is_large(instance),
            "levels": [level.as_json() for level in levels],
            "tile_url": template,
        }
    )


@require_GET
@login_required
def frame_tile(
    request: HttpRequest,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame: int,
    level: int,
    x: int,
    y: int,
) -> HttpResponse:
    """One tile as lossless PNG; ``?wc=&ww=`` as for whole frames."""
    instance = frame_instance(request, study_uid, series_uid, sop_uid, frame)
    try:
        window = parse_window(request.GET)
    except InvalidWindow:
        return bad_window()

    try:
        png, used_window = render_tile(instance, frame - 1, window, level, x, y)
    except NoSuchTile as error:
        raise Http404(_("No such tile.")) from error
    except RenderError as error:
        return image_response(error_png(str(error), TILE_SIZE), "image/png", error=True)

    do_record_frames_viewed(request, instance.series)
    return image_response(png, "image/png", used_window)


def preview_response(
    request: HttpRequest, instance: Instance, frame_index: int, window: Window | None
) -> HttpResponse:
    """The frame endpoint's ``?preview=1``: a small JPEG marked ``X-Lossy-Preview``."""
    try:
        jpeg, used_window = render_preview(instance, frame_index, window)
    except RenderError as error:
        return image_response(error_png(str(error)), "image/png", error=True)

    do_record_frames_viewed(request, instance.series)
    response = image_response(jpeg, "image/jpeg", used_window)
    response["X-Lossy-Preview"] = "1"
    return response


@require_POST
@login_required
def warm_series(request: HttpRequest, study_uid: str, series_uid: str) -> JsonResponse:
    """Have a worker render the series at its default window into the cache."""
    series = get_series_for_user(request.user, study_uid, series_uid)
    queued = do_queue_series_warm(series)
    return JsonResponse({"queued": queued}, status=202)


def image_response(
    body: bytes, content_type: str, window: Window | None = None, error: bool = False
) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    if window is not None:
        response["X-Window-Center"] = format_number(window[0])
        response["X-Window-Width"] = format_number(window[1])
    if error:
        response["X-Render-Error"] = "1"
    return response


def bad_window() -> HttpResponse:
    return HttpResponse(
        _("wc and ww must be given together as numbers, with ww at least 1."),
        status=400,
        content_type="text/plain; charset=utf-8",
    )
