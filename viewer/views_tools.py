"""JSON endpoints of the viewer's tools: frame facts, annotations, key images.

Every object is loaded through pacs.access or viewer.access, so a user who
may not read the study, or a reader asking for someone else's annotation,
gets 404. Changes go through viewer.actions, which audits them.
"""

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pacs.access import get_instance_for_user, get_series_for_user, get_study_for_user
from pacs.models import Instance
from viewer.access import check_may_mark, get_annotation_for_user
from viewer.actions import (
    do_delete_annotation,
    do_mark_key_image,
    do_save_annotation,
    do_unmark_key_image,
)
from viewer.image_info import frame_info
from viewer.measure import parse_points
from viewer.measurements import MeasurementError
from viewer.models import Annotation, KeyImage
from viewer.rendering import load_header
from viewer.selectors import ordered_instances, study_key_images, user_annotations

MAX_BODY_BYTES = 16 * 1024


@require_GET
@login_required
def frame_facts(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> JsonResponse:
    """Pixel spacing, value unit, VOI choices and cine rate of one frame."""
    instance = frame_instance(request, study_uid, series_uid, sop_uid, frame)
    try:
        info = frame_info(instance, frame - 1)
    except (OSError, InvalidDicomError):
        info = NO_FACTS
    return JsonResponse(info)


FACTS_BLOCK_MAX = 64
NO_FACTS = {
    "pixel_spacing": None,
    "spacing_source": None,
    "value_unit": "",
    "voi_choices": [],
    "cine_fps": None,
}


@require_GET
@login_required
def series_facts(request: HttpRequest, study_uid: str, series_uid: str) -> JsonResponse:
    """The facts of frames ``start`` to ``start + count - 1`` in reading order.

    The page asks for a block of frames ahead of the reader instead of one
    info.json per scroll step; each entry names its instance and frame.
    """
    series = get_series_for_user(request.user, study_uid, series_uid)
    try:
        start = max(int(request.GET.get("start", "0")), 0)
        count = min(max(int(request.GET.get("count", "32")), 1), FACTS_BLOCK_MAX)
    except ValueError:
        return JsonResponse(
            {"detail": _("start and count must be numbers.")}, status=400
        )

    frames = [
        (instance, frame)
        for instance in ordered_instances(series).defer("metadata")
        for frame in range(1, max(instance.number_of_frames, 1) + 1)
    ][start : start + count]
    headers: dict[int, Dataset | None] = {}
    facts = []
    for instance, frame in frames:
        entry = {"sop_instance_uid": instance.sop_instance_uid, "frame": frame}
        facts.append({**entry, **frame_facts_of(instance, frame, headers)})
    return JsonResponse({"start": start, "facts": facts})


def frame_facts_of(
    instance: Instance, frame: int, headers: dict[int, Dataset | None]
) -> dict[str, object]:
    """One frame's facts; a multi-frame instance's header is read once."""
    try:
        if instance.pk not in headers:
            headers[instance.pk] = None
            if instance.number_of_frames > 1:
                headers[instance.pk] = load_header(instance)
        return frame_info(instance, frame - 1, headers[instance.pk])
    except (OSError, InvalidDicomError):
        return NO_FACTS


@require_POST
@login_required
def frame_annotations(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> JsonResponse:
    """Measure the posted points on the frame and save them as the reader's."""
    instance = frame_instance(request, study_uid, series_uid, sop_uid, frame)
    check_may_mark(request.user, study_uid)
    try:
        body = json_body(request)
        kind = str(body.get("kind", ""))
        points = parse_points(kind, body.get("points"))
        annotation = do_save_annotation(request, instance, frame, kind, points)
    except MeasurementError as error:
        return JsonResponse({"detail": str(error)}, status=400)
    return JsonResponse(annotation_json(annotation), status=201)


@require_GET
@login_required
def study_annotations(request: HttpRequest, study_uid: str) -> JsonResponse:
    """The reader's own annotations on every frame of the study."""
    study = get_study_for_user(request.user, study_uid)
    mine = user_annotations(request.user, study).select_related("instance__series")
    return JsonResponse({"annotations": [annotation_json(a) for a in mine]})


@require_http_methods(["PATCH", "DELETE"])
@login_required
def annotation_detail(
    request: HttpRequest, study_uid: str, annotation_id: int
) -> HttpResponse:
    """PATCH: move the points and measure again; DELETE: remove it."""
    annotation = get_annotation_for_user(request.user, study_uid, annotation_id)
    if request.method == "DELETE":
        do_delete_annotation(request, annotation)
        return HttpResponse(status=204)

    try:
        body = json_body(request)
        points = parse_points(annotation.kind, body.get("points"))
        annotation = do_save_annotation(
            request,
            annotation.instance,
            annotation.frame_number,
            annotation.kind,
            points,
            annotation=annotation,
        )
    except MeasurementError as error:
        return JsonResponse({"detail": str(error)}, status=400)
    return JsonResponse(annotation_json(annotation))


@require_http_methods(["PUT", "DELETE"])
@login_required
def key_image(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> JsonResponse:
    """PUT marks the frame as a key image, DELETE removes the mark."""
    instance = frame_instance(request, study_uid, series_uid, sop_uid, frame)
    check_may_mark(request.user, study_uid)
    if request.method == "DELETE":
        do_unmark_key_image(request, instance, frame)
        return JsonResponse({"key_image": False})

    marked, created = do_mark_key_image(request, instance, frame)
    return JsonResponse(
        {"key_image": True, **key_image_json(marked)}, status=201 if created else 200
    )


@require_GET
@login_required
def key_images(request: HttpRequest, study_uid: str) -> JsonResponse:
    study = get_study_for_user(request.user, study_uid)
    return JsonResponse(
        {"key_images": [key_image_json(k) for k in study_key_images(study)]}
    )


def frame_instance(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frame: int
) -> Instance:
    instance = get_instance_for_user(request.user, study_uid, series_uid, sop_uid)
    if not 1 <= frame <= max(instance.number_of_frames, 1):
        raise Http404(_("No such frame."))
    return instance


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object; MeasurementError for anything else."""
    if len(request.body) > MAX_BODY_BYTES:
        raise MeasurementError(_("The request is too large."))
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise MeasurementError(_("The request is not JSON.")) from error
    if not isinstance(body, dict):
        raise MeasurementError(_("The request is not a JSON object."))
    return body


def annotation_json(annotation: Annotation) -> dict[str, object]:
    instance = annotation.instance
    study_uid = instance.series.study.study_instance_uid
    return {
        "id": annotation.pk,
        "series_instance_uid": instance.series.series_instance_uid,
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": annotation.frame_number,
        "kind": annotation.kind,
        "points": annotation.points,
        "measurement": annotation.measurement,
        "url": reverse("viewer:annotation", args=[study_uid, annotation.pk]),
    }


def key_image_json(marked: KeyImage) -> dict[str, object]:
    instance = marked.instance
    return {
        "series_instance_uid": instance.series.series_instance_uid,
        "series_number": instance.series.series_number,
        "sop_instance_uid": instance.sop_instance_uid,
        "instance_number": instance.instance_number,
        "frame": marked.frame_number,
    }
