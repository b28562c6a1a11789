"""The diagnostic viewer: the study page, a series' image list and frames.

Every study, series and instance is loaded through pacs.access, so a user
who may not read the study (a referrer it was not shared with, another
tenant) gets 404. A referrer gets the simplified mode: scroll, window,
zoom, no measurements or key-image marks, and the portal instead of the editor.
"""

from collections.abc import Callable

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

from pacs.access import (
    get_instance_for_user,
    get_series_for_user,
    get_study_for_user,
    studies_for,
)
from pacs.dicom import display_person_name
from pacs.models import Instance, Series
from referrals.selectors import is_referrer
from viewer import views_tiles
from viewer.actions import do_record_frames_viewed, do_record_study_opened
from viewer.cache import cached_render
from viewer.fastpath import do_grant_cached_frames, do_remember_instance_files
from viewer.frame_query import (
    SIZE_STEPS,
    FrameQuery,
    InvalidRenderOption,
    InvalidWindow,
    format_number,
)
from viewer.hanging import Hanging, hang
from viewer.rendering import Rendered
from viewer.selectors import (
    latest_prior,
    ordered_instances,
    study_key_images,
    study_series,
    thumbnail_instance,
    window_presets,
)
from viewer.tiles import LARGE_IMAGE_SIDE

THUMBNAIL = FrameQuery(size_step=128)
VIEWPORT_COUNT = 4  # the 2x2 layout
LAYOUT_SIZES = {"1x1": 1, "1x2": 2, "2x2": 4}
# Placeholders that the page's script replaces with UIDs and frame numbers.
UID_SLOT = "__uid__"
STUDY_SLOT = "__study__"
# The series list's frame URL template (docs/viewer.md, "The series list").
SOP_FIELD = "{sop_instance_uid}"
FRAME_FIELD = "{frame}"

# The page's whole module graph (static/js/viewer.js and what it imports),
# named up front with <link rel="modulepreload">.
VIEWER_MODULES = (
    "js/viewer/config.js",
    "js/viewer/hub.js",
    "js/viewer/pointer.js",
    "js/viewer/geometry.js",
    "js/viewer/marks.js",
    "js/viewer/store.js",
    "js/viewer/sync.js",
    "js/viewer/viewport.js",
    "js/viewer/tiles.js",
    "js/frame-loader.js",
)

# (study UID, series UID, SOP instance UID, frame number) -> a frame's path:
# the staff viewer's, or a second opinion's under its share key.
FrameUrl = Callable[[str, str, str, int], str]


def staff_frame_url(study_uid: str, series_uid: str, sop_uid: str, frame: int) -> str:
    return reverse("viewer:frame", args=[study_uid, series_uid, sop_uid, frame])


@require_GET
@login_required
def study_viewer(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)
    series_list = list(study_series(study))
    prior = latest_prior(study, studies_for(request.user))
    prior_series = list(study_series(prior)) if prior else []
    hanging = hang(study, series_list, prior, prior_series)
    modalities = {s.modality for s in [*series_list, *prior_series] if s.modality}

    simple = is_referrer(request.user)  # type: ignore[arg-type]
    opening = page_opening(request, study_uid, hanging)
    known = {
        (owner.study_instance_uid, series.series_instance_uid): series
        for owner, listed in ((study, series_list), (prior, prior_series))
        for series in listed
        if owner is not None
    }

    do_record_study_opened(request, study)
    if prior is not None and hanging.viewports[1:]:
        do_record_study_opened(request, prior)
    config = {
        "mode": "simple" if simple else "full",
        "studyUid": study_uid,
        "seriesUrl": reverse("viewer:series", args=[STUDY_SLOT, UID_SLOT]),
        # Annotations are each reader's own; the simplified mode makes none.
        "annotationsUrl": (
            "" if simple else reverse("viewer:annotations", args=[STUDY_SLOT])
        ),
        "keyImagesUrl": reverse("viewer:key_images", args=[study_uid]),
        "viewerUrl": reverse("viewer:study", args=[STUDY_SLOT]),
        "reportUrl": reverse(
            "referrals:study" if simple else "reporting:editor", args=[study_uid]
        ),
        "studySlot": STUDY_SLOT,
        "uidSlot": UID_SLOT,
        "layout": hanging.layout,
        "viewports": [
            {"study": study_uid_, "series": series_uid}
            for study_uid_, series_uid in hanging.viewports
        ],
        "linked": hanging.linked,
        "presets": window_presets(sorted(modalities)),
        "sizeSteps": SIZE_STEPS,
        "labels": viewer_labels(),
    }
    context = {
        "study": study,
        "patient": study.patient,
        "patient_name": display_person_name(study.patient.patient_name),
        "series_list": series_list,
        "prior": prior,
        "prior_series": prior_series,
        "key_images": study_key_images(study),
        "viewport_slots": viewport_slots(
            opening, known, staff_frame_url, skip_first="sop" in request.GET
        ),
        "layout": opening.layout,
        "viewer_modules": VIEWER_MODULES,
        "config": config,
        "simple": simple,
    }
    return render(request, "viewer/study.html", context)


def page_opening(request: HttpRequest, study_uid: str, hanging: Hanging) -> Hanging:
    """The layout the page's script will open with (viewer.js, ``opening``).

    A second window (``?series=``) shows that one series of the study alone.
    """
    series_uid = request.GET.get("series")
    if not series_uid:
        return hanging
    return Hanging("1x1", [(study_uid, series_uid)], False)


def viewport_slots(
    opening: Hanging,
    known: dict[tuple[str, str], Series],
    frame_url: FrameUrl,
    skip_first: bool = False,
) -> list[dict[str, object]]:
    """Each viewport of the page: whether it shows, and its first frame's URL.

    The page names the first frame of each series it opens with in its
    ``<img>``, so the browser asks for it while the page's scripts are still
    on their way: on a distant line the first image then costs two round
    trips (page, frame) instead of four or more (page, scripts, series list,
    frame). ``skip_first``: the page opens at another frame (a key image).
    """
    shown = LAYOUT_SIZES.get(opening.layout, 1)
    slots: list[dict[str, object]] = []
    for number in range(VIEWPORT_COUNT):
        first = ""
        if number < min(shown, len(opening.viewports)) and not (
            skip_first and number == 0
        ):
            study_uid, series_uid = opening.viewports[number]
            series = known.get((study_uid, series_uid))
            first = first_frame_url(study_uid, series, frame_url) if series else ""
        slots.append({"number": number, "shown": number < shown, "first_frame": first})
    return slots


def first_frame_url(study_uid: str, series: Series, frame_url: FrameUrl) -> str:
    """The frame the page shows first of ``series``, as its script asks for it.

    Whole at the stored size, or at most LARGE_IMAGE_SIDE a side for a large
    image (static/js/viewer/viewport.js, ``wantedSize``, on a desktop).
    """
    facts = ("sop_instance_uid", "rows", "columns")
    first = ordered_instances(series).only(*facts).first()
    if first is None:
        return ""
    url = frame_url(study_uid, series.series_instance_uid, first.sop_instance_uid, 1)
    if max(first.rows or 0, first.columns or 0) > LARGE_IMAGE_SIDE:
        url += f"?size={LARGE_IMAGE_SIDE}"
    return url


@require_GET
@login_required
def series_images(
    request: HttpRequest, study_uid: str, series_uid: str
) -> JsonResponse:
    """The series' images in reading order, with defaults (docs/viewer.md)."""
    series = get_series_for_user(request.user, study_uid, series_uid)
    # Not the stored headers: parsing 300 of them was most of a series' opening.
    instances = list(ordered_instances(series).defer("metadata"))
    do_remember_instance_files(series, instances)
    facts_url = reverse("viewer:series_facts", args=[study_uid, series_uid])
    return series_listing_response(
        study_uid, series, instances, staff_frame_url, facts_url
    )


def series_listing_response(
    study_uid: str,
    series: Series,
    instances: list[Instance],
    frame_url: FrameUrl,
    facts_url: str = "",
) -> JsonResponse:
    """A series list: each instance once, what they all share once.

    One entry per frame with its full URL was 520 bytes a slice (260 kB for
    500 slices, a fifth of a second on a 10 Mbit/s line before the page
    could show anything); the frame URL is now a template, and facts every
    instance shares (size, frames, window, ...) are sent once in ``common``.
    """
    # reverse() would percent-encode the braces of the fields.
    first = frame_url(study_uid, series.series_instance_uid, UID_SLOT, 1)
    template = first.replace(UID_SLOT, SOP_FIELD).removesuffix("/1.png")
    template += f"/{FRAME_FIELD}.png"
    facts = [instance_facts(instance) for instance in instances]
    common = {
        name: value
        for name, value in (facts[0].items() if facts else ())
        if name in SHAREABLE_FACTS and all(f[name] == value for f in facts)
    }
    listed = [
        {name: value for name, value in f.items() if name not in common} for f in facts
    ]
    return JsonResponse(
        {
            "series_instance_uid": series.series_instance_uid,
            "series_number": series.series_number,
            "series_description": series.series_description,
            "modality": series.modality,
            "default_window": series_default_window(instances),
            "frame_url": template,
            # Frame facts a block at a time (viewer.views_tools.series_facts).
            "facts_url": facts_url,
            "common": common,
            "instances": listed,
        },
        json_dumps_params={"separators": (",", ":")},
    )


@require_GET
@login_required
def frame_png(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> HttpResponse:
    """One frame (numbered from 1) as PNG.

    ``?wc=&ww=`` request a window, ``?voi=N`` the file's N-th VOI choice,
    ``?fn=`` a VOI LUT function and ``?size=N`` an image no larger than N
    pixels a side (rounded up to a few fixed sizes, so the cache stays small).
    """
    instance = get_instance_for_user(request.user, study_uid, series_uid, sop_uid)
    if not 1 <= frame <= max(instance.number_of_frames, 1):
        raise Http404("No such frame.")
    try:
        query = FrameQuery.from_params(request.GET)
    except InvalidWindow:
        return HttpResponseBadRequest(
            _("wc and ww must be given together as numbers, with ww at least 1."),
            content_type="text/plain; charset=utf-8",
        )
    except InvalidRenderOption as error:
        return HttpResponseBadRequest(
            str(error), content_type="text/plain; charset=utf-8"
        )

    if request.GET.get("preview") == "1":
        # A small lossy JPEG while the reader drags W/L (viewer/tiles.py).
        return views_tiles.preview_response(request, instance, frame - 1, query.window)
    rendered = cached_render(instance, frame - 1, query)
    do_record_frames_viewed(request, instance.series)
    do_grant_cached_frames(request, instance.series)
    return png_response(rendered)


@require_GET
@login_required
def series_thumbnail(
    request: HttpRequest, study_uid: str, series_uid: str
) -> HttpResponse:
    series = get_series_for_user(request.user, study_uid, series_uid)
    middle = thumbnail_instance(series)
    if middle is None:
        return HttpResponse(status=204)

    return png_response(cached_render(middle, 0, THUMBNAIL))


def png_response(rendered: Rendered) -> HttpResponse:
    response = HttpResponse(rendered.png, content_type="image/png")
    if rendered.window is not None:
        response["X-Window-Center"] = format_number(rendered.window[0])
        response["X-Window-Width"] = format_number(rendered.window[1])
    if rendered.error:
        response["X-Render-Error"] = "1"
    return response


# What the page needs of each instance; all but the UID may go in "common".
SHAREABLE_FACTS = (
    "instance_number",
    "number_of_frames",
    "slice_position",
    "window_center",
    "window_width",
    "rows",
    "columns",
    "renderable",
)


def instance_facts(instance: Instance) -> dict[str, object]:
    return {
        "sop_instance_uid": instance.sop_instance_uid,
        "instance_number": instance.instance_number,
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
        "zoom": _("Zoom: %(percent)s%%"),
        "fps": _("%(fps)s fps"),
        "play": _("Play"),
        "pause": _("Pause"),
        "keyImage": _("Key image"),
        "keyImageEntry": _("Se %(series)s · Im %(image)s · Fr %(frame)s"),
        "noKeyImages": _("None yet"),
        "length": _("%(value)s %(unit)s"),
        "angle": _("%(value)s°"),
        "roi": _("Mean %(mean)s SD %(sd)s %(unit)s · %(area)s %(area_unit)s"),
        "probe": _("%(value)s %(unit)s"),
        "deleteMark": _("Delete this measurement"),
        "detectorSpacing": _("at the detector"),
        "voiChoice": _("Window %(n)s: %(explanation)s"),
        "voiLut": _("VOI LUT %(n)s: %(explanation)s"),
        "voiLutShown": _("VOI LUT %(n)s"),
        "measureFailed": _("The measurement could not be saved."),
        "seriesProgress": _("Series loaded: %(loaded)s of %(total)s images"),
        "lossyPreview": _("Lossy preview"),
    }
