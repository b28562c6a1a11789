"""The viewer for a study shared in from another tenant (read-only).

The page is the viewer's own template and script in their simplified mode;
its URLs are this module's, under the instance namespace ``collab_viewer``
of the viewer's URL names, so the template's ``{% url 'viewer:...' %}``
tags resolve here. Every URL starts with the share's key: each request
loads that open share for the signed-in member of its group (collab.access),
never a share found by the study's UID, and reads the study's rows
and frames from the owner's schema. No frame gets a fast-path grant: every
one passes the share check, so revoking or expiry ends viewing at once.
"""

from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from collab.access import (
    get_incoming_share,
    get_shared_instance,
    get_shared_series,
    get_shared_study,
    in_owner_schema,
)
from collab.actions import do_record_shared_frames_viewed, do_record_shared_study_opened
from collab.models import SecondOpinion
from viewer.cache import cached_render
from viewer.frame_query import (
    SIZE_STEPS,
    FrameQuery,
    InvalidRenderOption,
    InvalidWindow,
)
from viewer.hanging import Hanging
from viewer.selectors import (
    ordered_instances,
    study_series,
    thumbnail_instance,
    window_presets,
)
from viewer.views import (
    STUDY_SLOT,
    THUMBNAIL,
    UID_SLOT,
    VIEWER_MODULES,
    png_response,
    series_listing_response,
    viewer_labels,
    viewport_slots,
)

NAMESPACE = "collab_viewer"


def _url(name: str, share: SecondOpinion, *args: object) -> str:
    return reverse(f"viewer:{name}", args=[share.key, *args], current_app=NAMESPACE)


@require_GET
@login_required
def study_viewer(request: HttpRequest, share_key: UUID, study_uid: str) -> HttpResponse:
    share = get_incoming_share(request, share_key)
    study = get_shared_study(request, share, study_uid)
    with in_owner_schema(share):
        series_list = list(study_series(study))
        first = series_list[0].series_instance_uid if series_list else ""
        opening = Hanging("1x1", [(study_uid, first)] if first else [], False)
        slots = viewport_slots(
            opening,
            {(study_uid, s.series_instance_uid): s for s in series_list},
            lambda *frame: _url("frame", share, *frame),
        )
    modalities = sorted({s.modality for s in series_list if s.modality})

    do_record_shared_study_opened(request, share, study)
    config = {
        "mode": "simple",
        "studyUid": study_uid,
        "seriesUrl": _url("series", share, STUDY_SLOT, UID_SLOT),
        "annotationsUrl": "",
        "keyImagesUrl": _url("key_images", share, study_uid),
        "viewerUrl": _url("study", share, STUDY_SLOT),
        "reportUrl": reverse("collab:thread", args=[share.key]),
        "studySlot": STUDY_SLOT,
        "uidSlot": UID_SLOT,
        "layout": "1x1",
        "viewports": [{"study": study_uid, "series": first}] if first else [],
        "linked": False,
        "presets": window_presets(modalities),
        "sizeSteps": SIZE_STEPS,
        "labels": viewer_labels(),
    }
    context = {
        "share": share,
        "study": study,
        "patient": study.patient,
        "patient_name": study.patient.patient_name.replace("^", " ").strip(),
        "series_list": series_list,
        "prior": None,
        "prior_series": [],
        "key_images": [],
        "viewport_slots": slots,
        "layout": opening.layout,
        "viewer_modules": VIEWER_MODULES,
        "config": config,
        "simple": True,
    }
    return render(request, "collab/viewer.html", context)


@require_GET
@login_required
def series_images(
    request: HttpRequest, share_key: UUID, study_uid: str, series_uid: str
) -> JsonResponse:
    share = get_incoming_share(request, share_key)
    series = get_shared_series(request, share, study_uid, series_uid)
    with in_owner_schema(share):
        instances = list(ordered_instances(series).defer("metadata"))
    return series_listing_response(
        study_uid, series, instances, lambda *frame: _url("frame", share, *frame)
    )


@require_GET
@login_required
def frame_png(
    request: HttpRequest,
    share_key: UUID,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame: int,
) -> HttpResponse:
    share = get_incoming_share(request, share_key)
    instance = get_shared_instance(request, share, study_uid, series_uid, sop_uid)
    if not 1 <= frame <= max(instance.number_of_frames, 1):
        raise Http404("No such frame.")
    try:
        # A drag preview is answered with the lossless frame: no fast variant here.
        params = request.GET.copy()
        params.pop("preview", None)
        query = FrameQuery.from_params(params)
    except (InvalidWindow, InvalidRenderOption) as error:
        return HttpResponse(
            str(error), status=400, content_type="text/plain; charset=utf-8"
        )

    # The owner's render cache: its keys carry the owner's schema.
    with in_owner_schema(share):
        rendered = cached_render(instance, frame - 1, query)
    do_record_shared_frames_viewed(request, share, instance.series)
    return png_response(rendered)


@require_GET
@login_required
def series_thumbnail(
    request: HttpRequest, share_key: UUID, study_uid: str, series_uid: str
) -> HttpResponse:
    share = get_incoming_share(request, share_key)
    series = get_shared_series(request, share, study_uid, series_uid)
    with in_owner_schema(share):
        middle = thumbnail_instance(series)
        if middle is None:
            return HttpResponse(status=204)
        rendered = cached_render(middle, 0, THUMBNAIL)
    return png_response(rendered)


@require_GET
@login_required
def key_images(request: HttpRequest, share_key: UUID, study_uid: str) -> JsonResponse:
    """None: key images are the owner's reading, not part of the share."""
    get_shared_study(request, get_incoming_share(request, share_key), study_uid)
    return JsonResponse({"key_images": []})


@require_POST
@login_required
def warm_series(
    request: HttpRequest, share_key: UUID, study_uid: str, series_uid: str
) -> HttpResponse:
    """Accepted and ignored: the owner's workers are not queued from here."""
    share = get_incoming_share(request, share_key)
    get_shared_series(request, share, study_uid, series_uid)
    return HttpResponse(status=204)


@require_GET
@login_required
def not_offered(
    request: HttpRequest, share_key: UUID, study_uid: str, series_uid: str
) -> HttpResponse:
    """MPR and 3D are not offered for a shared study (the link is hidden)."""
    share = get_incoming_share(request, share_key)
    get_shared_series(request, share, study_uid, series_uid)
    raise Http404("Not offered for a shared study.")
