"""WADO-RS thumbnails of a study, series or instance (PS3.18 10.7.1.3, 8.3.5).

A thumbnail is a small rendering of one representative frame: for an
instance its first frame, for a series its middle instance, for a study the
middle instance of its first series that has pixel data. It is a lossless PNG
unless the client names ``image/jpeg`` itself; only then does ``quality``
apply.
"""

import io
import logging

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from PIL import Image

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.access import get_instance_for_user, get_series_for_user, get_study_for_user
from pacs.dicomweb.auth import dicomweb_endpoint
from pacs.dicomweb.rendered import RenderingParameterError, parse_window
from pacs.dicomweb.responses import negotiate, plain_text
from pacs.models import Instance, PixelStatus
from viewer.rendering import render_frame

logger = logging.getLogger(__name__)

PNG = "image/png"
JPEG = "image/jpeg"
# PNG first: a client that accepts anything gets the lossless image.
THUMBNAIL_MEDIA_TYPES = (PNG, JPEG)
DEFAULT_SIZE = 128
MAX_SIZE = 1024
DEFAULT_QUALITY = 75


class ThumbnailParameterError(ValueError):
    """A viewport or quality value the thumbnail cannot honour."""


@require_safe
@dicomweb_endpoint
def study_thumbnail(request: HttpRequest, user: User, study_uid: str) -> HttpResponse:
    """Study thumbnail, ``.../studies/{s}/thumbnail`` (PS3.18 10.7.1.3).

    See :func:`instance_thumbnail` for parameters and status codes.
    """
    study = get_study_for_user(user, study_uid)
    candidates = Instance.objects.filter(
        series__study=study, pixel_status=PixelStatus.OK
    )
    first_series = candidates.order_by("series__series_number", "series_id").first()
    if first_series is not None:
        candidates = candidates.filter(series_id=first_series.series_id)
    return _thumbnail(request, user, _middle(candidates), "study")


@require_safe
@dicomweb_endpoint
def series_thumbnail(
    request: HttpRequest, user: User, study_uid: str, series_uid: str
) -> HttpResponse:
    """Series thumbnail, ``.../series/{se}/thumbnail`` (PS3.18 10.7.1.3).

    See :func:`instance_thumbnail` for parameters and status codes.
    """
    series = get_series_for_user(user, study_uid, series_uid)
    candidates = series.instances.filter(pixel_status=PixelStatus.OK)
    return _thumbnail(request, user, _middle(candidates), "series")


@require_safe
@dicomweb_endpoint
def instance_thumbnail(
    request: HttpRequest, user: User, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    """Instance thumbnail, ``.../instances/{i}/thumbnail`` (PS3.18 10.7.1.3).

    Query parameters (PS3.18 8.3.5.1): ``viewport=vw,vh`` bounds the image
    (default 128 by 128, at most 1024; the aspect ratio is kept);
    ``window=center,width[,LINEAR]``; ``quality`` (1-100) only with an
    explicit ``image/jpeg`` Accept.

    Status codes: 200 with ``image/png`` (or ``image/jpeg``); 400 for a bad
    viewport, window or quality; 401; 404 for what does not exist or may not
    be seen, or when there is no renderable image; 406 when the client
    accepts neither PNG nor JPEG.
    """
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    if instance.pixel_status != PixelStatus.OK:
        instance = None
    return _thumbnail(request, user, instance, "instance")


def _middle(candidates: QuerySet[Instance]) -> Instance | None:
    ordered = candidates.order_by("instance_number", "pk").select_related(
        "series__study__patient"
    )
    count = ordered.count()
    return ordered[count // 2] if count else None


def _thumbnail(
    request: HttpRequest, user: User, instance: Instance | None, level: str
) -> HttpResponse:
    accept = request.GET.get("accept") or request.headers.get("Accept", "")
    media_type = negotiate(accept, THUMBNAIL_MEDIA_TYPES)
    if media_type is None:
        return plain_text(_("Thumbnails are available as image/png."), status=406)
    try:
        size = parse_viewport(request.GET.get("viewport"))
        quality = parse_quality(request.GET.get("quality"))
        window = parse_window(request.GET.get("window"))
    except (ThumbnailParameterError, RenderingParameterError) as error:
        return plain_text(str(error), status=400)
    if instance is None:
        return plain_text(_("There is no image to show."), status=404)

    rendered = render_frame(
        instance,
        0,
        (window.center, window.width) if window else None,
        max_size=size,
    )
    if rendered.error:
        return plain_text(_("The image could not be rendered."), status=404)
    study = instance.series.study
    do_record_event(
        EventType.DICOMWEB_RETRIEVE,
        request=request,
        actor=user,
        object_type=level,
        object_id=instance.sop_instance_uid,
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={"thumbnail": media_type, "size": size},
    )
    if media_type == JPEG and _names_jpeg(accept):
        return HttpResponse(to_jpeg(rendered.png, quality), content_type=JPEG)
    return HttpResponse(rendered.png, content_type=PNG)


def _names_jpeg(accept: str) -> bool:
    # Lossy only when asked for by name: "*/*" or "image/*" gets PNG.
    return JPEG in accept.lower()


def parse_viewport(raw: str | None) -> int:
    """The largest side of the thumbnail, from ``viewport=vw,vh`` (8.3.5.1.2).

    Raises
    ------
    ThumbnailParameterError
        For anything but two positive integers up to 1024 (the source
        rectangle, ``sx,sy,sw,sh``, is not supported for thumbnails).
    """
    if raw is None:
        return DEFAULT_SIZE
    parts = raw.split(",")
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise ThumbnailParameterError(
            _("viewport must be width,height in pixels, for example 128,128.")
        )
    width, height = (int(part) for part in parts)
    if not (1 <= width <= MAX_SIZE and 1 <= height <= MAX_SIZE):
        raise ThumbnailParameterError(
            _("The viewport must be between 1 and %(max)d pixels.") % {"max": MAX_SIZE}
        )
    return min(width, height)


def parse_quality(raw: str | None) -> int:
    """The JPEG quality, 1 to 100 (PS3.18 8.3.5.1.4)."""
    if raw is None:
        return DEFAULT_QUALITY
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise ThumbnailParameterError(_("quality must be a number from 1 to 100."))
    return int(raw)


def to_jpeg(png: bytes, quality: int) -> bytes:
    picture = Image.open(io.BytesIO(png))
    if picture.mode not in ("L", "RGB"):
        picture = picture.convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
