"""DICOMweb endpoints: WADO-RS rendered images (QIDO-RS is in ``search``).

Thin views: each authenticates (``dicomweb_endpoint``), negotiates the media
type, parses the request, loads through ``pacs.access`` and answers.
"""

import logging

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.access import get_instance_for_user
from pacs.dicomweb.auth import dicomweb_endpoint
from pacs.dicomweb.rendered import (
    RenderingParameterError,
    Window,
    parse_frame_number,
    parse_window,
)
from pacs.dicomweb.responses import add_warnings, negotiate, plain_text
from pacs.models import Instance, PixelStatus, Study
from viewer.rendering import render_png

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
SEARCH_MEDIA_TYPES = (DICOM_JSON, "application/json")
RENDERED_MEDIA_TYPES = ("image/png",)
# Rendering parameters (PS3.18 8.3.5.1) that a PNG answer cannot honour yet.
UNSUPPORTED_RENDERING_PARAMETERS = ("viewport", "annotation", "iccprofile")
MORE_RESULTS_WARNING = "There are additional results that can be requested"


@require_safe
@dicomweb_endpoint
def retrieve_rendered_instance(
    request: HttpRequest, user: User, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    """WADO-RS rendered instance, ``.../instances/{sop}/rendered`` (PS3.18 10.4).

    A PNG of the first frame; see ``retrieve_rendered_frames`` for the status
    codes.
    """
    return _rendered(request, user, (study_uid, series_uid, sop_uid), "1")


@require_safe
@dicomweb_endpoint
def retrieve_rendered_frames(
    request: HttpRequest,
    user: User,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame_list: str,
) -> HttpResponse:
    """WADO-RS rendered frame, ``.../frames/{n}/rendered`` (PS3.18 10.4).

    Frames count from 1. ``window=center,width[,LINEAR]`` sets the VOI window
    (PS3.18 8.3.5.1.3). Status codes: 200 with ``image/png``; 400 for a bad
    window or frame list; 401 without credentials; 404 for a study, series,
    instance or frame the caller may not see or that does not exist, or an
    instance without renderable pixel data; 406 when the client accepts no
    PNG; 500 when the pixel data cannot be decoded.
    """
    return _rendered(request, user, (study_uid, series_uid, sop_uid), frame_list)


def _rendered(
    request: HttpRequest, user: User, uids: tuple[str, str, str], frame_list: str
) -> HttpResponse:
    media_type = negotiate(_accept(request), RENDERED_MEDIA_TYPES)
    if media_type is None:
        return _not_acceptable(RENDERED_MEDIA_TYPES)
    try:
        window = parse_window(request.GET.get("window"))
        frame_number = parse_frame_number(frame_list)
    except RenderingParameterError as error:
        return plain_text(str(error), status=400)

    instance = get_instance_for_user(user, *uids)
    if frame_number > instance.number_of_frames:
        return plain_text(_("The instance has no such frame."), status=404)
    if instance.pixel_status != PixelStatus.OK:
        return plain_text(
            _("The instance has no pixel data that can be rendered."), status=404
        )

    png = _render(instance, frame_number, window)
    if png is None:
        return plain_text(_("The image could not be rendered."), status=500)
    do_record_event(
        EventType.DICOMWEB_RETRIEVE,
        request=request,
        actor=user,
        object_type="instance",
        object_id=instance.sop_instance_uid,
        patient_id=instance.series.study.patient.patient_id,
        study_instance_uid=instance.series.study.study_instance_uid,
        detail={
            "rendered": media_type,
            "frame": frame_number,
            "window": [window.center, window.width, window.function]
            if window
            else None,
        },
    )
    warnings = [
        f"{name}: not supported, ignored"
        for name in UNSUPPORTED_RENDERING_PARAMETERS
        if name in request.GET
    ]
    return add_warnings(HttpResponse(png, content_type=media_type), warnings)


def _render(
    instance: Instance, frame_number: int, window: Window | None
) -> bytes | None:
    # The one broad catch at this edge: a file the decoder cannot read must
    # answer 500 with its UID in the log, never take the worker down.
    try:
        return render_png(
            instance,
            frame_index=frame_number - 1,
            window=(window.center, window.width) if window else None,
            # PS3.18 8.3.5.1.4: a window without a function means LINEAR,
            # whatever function the file names.
            voi_function=window.function.value if window else None,
        )
    except Exception:
        logger.exception(
            "dicomweb rendering failed sop=%s frame=%d",
            instance.sop_instance_uid,
            frame_number,
        )
        return None


def _accept(request: HttpRequest) -> str:
    # PS3.18 8.3.3.1: the "accept" query parameter overrides the header.
    return request.GET.get("accept") or request.headers.get("Accept", "")


def _not_acceptable(offered: tuple[str, ...]) -> HttpResponse:
    return plain_text(
        _("This resource is available as %(types)s only.")
        % {"types": ", ".join(offered)},
        status=406,
    )


def _study_url(request: HttpRequest, study: Study) -> str:
    search_url = reverse("dicomweb:studies")
    return request.build_absolute_uri(f"{search_url}/{study.study_instance_uid}")
