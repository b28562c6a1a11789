"""WADO-RS: retrieve instances, metadata, frames and bulk data (PS3.18 10.4).

Thin views: authenticate (``dicomweb_endpoint``), load through
``pacs.access`` (404 to outsiders), negotiate, then stream. The instance list
is read from the database before streaming starts, so that the response body
only reads files: a study is never held in memory, only one chunk (or, when
transcoding, one instance).
"""

import copy
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from django.core.files.storage import default_storage
from django.core.handlers.asgi import ASGIRequest
from django.http import (
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import get_decoder

from accounts.models import User
from accounts.reauth import reauthenticated_for_export
from audit.actions import do_record_event
from audit.models import EventType
from pacs import deflate, dicom
from pacs.access import (
    get_instance_for_user,
    get_series_for_user,
    get_study_for_user,
)
from pacs.dicomweb.auth import dicomweb_endpoint
from pacs.dicomweb.multipart import (
    as_async,
    content_type_header,
    new_boundary,
    stream_parts,
)
from pacs.dicomweb.rendered import FRAME_LIST_PATTERN
from pacs.dicomweb.responses import dicom_json, negotiate, plain_text
from pacs.dicomweb.wado_media import (
    DICOM,
    EXPLICIT_BE,
    EXPLICIT_LE,
    NATIVE_TRANSFER_SYNTAXES,
    OCTET_STREAM,
    FramePlan,
    frame_plan,
    instance_transfer_syntax,
    parse_accept,
)
from pacs.models import Instance, PixelStatus
from viewer.rendering import MAX_FRAME_PIXELS

logger = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
METADATA_MEDIA_TYPES = (DICOM_JSON, "application/json")
FILE_CHUNK = 256 * 1024
PIXEL_DATA = "7FE00010"


class RetrieveError(Exception):
    """A request that cannot be answered; carries the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- Instances: study, series, instance --------------------------------------


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_study(request: HttpRequest, user: User, study_uid: str) -> HttpResponse:
    """WADO-RS Retrieve Study, ``GET /studies/{study}`` (PS3.18 10.4.1).

    See :func:`retrieve_instance` for the media types and status codes.
    """
    instances = _study_instances(user, study_uid)
    return _instances_response(request, user, instances, "study")


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_series(
    request: HttpRequest, user: User, study_uid: str, series_uid: str
) -> HttpResponse:
    """WADO-RS Retrieve Series, ``GET .../series/{series}`` (PS3.18 10.4.1).

    See :func:`retrieve_instance` for the media types and status codes.
    """
    instances = _series_instances(user, study_uid, series_uid)
    return _instances_response(request, user, instances, "series")


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_instance(
    request: HttpRequest, user: User, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    """WADO-RS Retrieve Instance, ``GET .../instances/{sop}`` (PS3.18 10.4.1).

    The answer is ``multipart/related; type="application/dicom"`` with one
    PS3.10 file per part (PS3.18 8.7.3.5). A file is sent bit for bit when
    the client accepts its stored transfer syntax or ``*``; when the client
    asks for Explicit VR Little Endian (also the default when it names no
    transfer syntax, PS3.18 8.7.3.5.2) another native syntax is re-encoded
    and compressed pixel data is decoded.

    Status codes: 200; 401 without credentials; 404 for what does not exist
    or the caller may not see; 406 when some instance cannot be produced in
    any transfer syntax the client accepts.
    """
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    return _instances_response(request, user, [instance], "instance")


def _instances_response(
    request: HttpRequest, user: User, instances: list[Instance], level: str
) -> HttpResponse:
    wanted = parse_accept(_accept(request), DICOM)
    plan = []
    for instance in instances:
        syntax = instance_transfer_syntax(wanted, instance.transfer_syntax_uid)
        if syntax is None:
            return _not_acceptable(
                _(
                    "An instance is stored in transfer syntax %(uid)s, which "
                    "cannot be sent in any transfer syntax you accept."
                )
                % {"uid": instance.transfer_syntax_uid}
            )
        plan.append((instance.storage_path, instance.transfer_syntax_uid, syntax))
    if not instances:
        return plain_text(_("Nothing to retrieve."), status=404)

    _record_retrieve(request, user, instances[0], level, len(instances), DICOM)
    boundary = new_boundary()
    parts = (
        (
            {"Content-Type": f"{DICOM}; transfer-syntax={syntax}"},
            _file_chunks(path, stored, syntax),
        )
        for path, stored, syntax in plan
    )
    return _streaming(request, stream_parts(parts, boundary), DICOM, boundary)


def _file_chunks(path: str, stored: str, syntax: str) -> Iterator[bytes]:
    if syntax == stored:
        with default_storage.open(path, "rb") as handle:
            while chunk := handle.read(FILE_CHUNK):
                yield chunk
        return
    yield transcode_to_explicit_le(path)


def transcode_to_explicit_le(path: str) -> bytes:
    """A stored file re-encoded as Explicit VR Little Endian (PS3.5 A.2).

    Compressed pixel data is decoded (pydicom's decoders set Photometric
    Interpretation to what they produce; colour JPEG becomes RGB); the SOP
    Instance UID is kept, since the image itself is unchanged (a lossy file
    stays marked lossy by its own Lossy Image Compression attribute).
    """
    with default_storage.open(path, "rb") as handle:
        ds = deflate.read_bounded(handle)
    syntax = ds.file_meta.TransferSyntaxUID
    if syntax.is_compressed and not syntax.is_deflated:
        ds.decompress()
    else:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(EXPLICIT_LE)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --- Metadata -------------------------------------------------------------------


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_study_metadata(
    request: HttpRequest, user: User, study_uid: str
) -> HttpResponse:
    """WADO-RS Retrieve Study Metadata, ``.../studies/{s}/metadata`` (10.4.1).

    See :func:`retrieve_instance_metadata`.
    """
    instances = _study_instances(user, study_uid)
    return _metadata_response(request, user, instances, "study")


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_series_metadata(
    request: HttpRequest, user: User, study_uid: str, series_uid: str
) -> HttpResponse:
    """WADO-RS Retrieve Series Metadata, ``.../series/{se}/metadata`` (10.4.1).

    See :func:`retrieve_instance_metadata`.
    """
    instances = _series_instances(user, study_uid, series_uid)
    return _metadata_response(request, user, instances, "series")


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_instance_metadata(
    request: HttpRequest, user: User, study_uid: str, series_uid: str, sop_uid: str
) -> HttpResponse:
    """WADO-RS Retrieve Instance Metadata, ``.../instances/{i}/metadata``.

    PS3.18 10.4.1 and 8.7.3.4: a JSON array with one object per instance in
    the DICOM JSON model (PS3.18 F.2), from the header indexed at ingest.
    Large binary values and the pixel data carry a ``BulkDataURI`` under
    ``.../instances/{i}/bulkdata/`` (F.2.6).

    Status codes: 200; 401; 404 for what does not exist or may not be seen;
    406 when the client accepts no JSON.
    """
    instance = get_instance_for_user(user, study_uid, series_uid, sop_uid)
    return _metadata_response(request, user, [instance], "instance")


def _metadata_response(
    request: HttpRequest, user: User, instances: list[Instance], level: str
) -> HttpResponse:
    media_type = negotiate(_accept(request), METADATA_MEDIA_TYPES)
    if media_type is None:
        return _not_acceptable(_("Metadata is available as application/dicom+json."))
    if not instances:
        return plain_text(_("Nothing to retrieve."), status=404)

    _record_retrieve(request, user, instances[0], level, len(instances), media_type)
    body = [
        instance_metadata(instance, request.build_absolute_uri(instance_path(instance)))
        for instance in instances
    ]
    return dicom_json(body, media_type)


def instance_path(instance: Instance) -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}"
        f"/series/{series.series_instance_uid}/instances/{instance.sop_instance_uid}"
    )


def instance_metadata(instance: Instance, instance_url: str) -> dict[str, Any]:
    """The indexed header with each empty BulkDataURI filled (PS3.18 F.2.6).

    The bulk data of an attribute nested in sequences is addressed by its
    path: ``bulkdata/{tag}/{item}/{tag}...``, items counted from 0. The
    pixel data is added as ``7FE00010`` with the URI of all its frames.
    """
    header = copy.deepcopy(instance.metadata)
    _fill_bulk_data_uris(header, f"{instance_url}/bulkdata")
    if instance.pixel_status != PixelStatus.NONE:
        native = instance.transfer_syntax_uid in NATIVE_TRANSFER_SYNTAXES
        header[PIXEL_DATA] = {
            "vr": "OW" if native else "OB",
            "BulkDataURI": f"{instance_url}/bulkdata/{PIXEL_DATA}",
        }
    return header


def _fill_bulk_data_uris(dataset: dict[str, Any], prefix: str) -> None:
    for tag, element in dataset.items():
        if not isinstance(element, dict):
            continue
        if element.get("BulkDataURI") == "":
            element["BulkDataURI"] = f"{prefix}/{tag}"
        if element.get("vr") == "SQ":
            for index, item in enumerate(element.get("Value", [])):
                if isinstance(item, dict):
                    _fill_bulk_data_uris(item, f"{prefix}/{tag}/{index}")


# --- Frames and bulk data -----------------------------------------------------------


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_frames(
    request: HttpRequest,
    user: User,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame_list: str,
) -> HttpResponse:
    """WADO-RS Retrieve Frames, ``.../instances/{i}/frames/{list}`` (10.4.1).

    ``frame_list`` is a comma-separated list of frame numbers from 1. The
    answer is multipart/related with one part per frame, in the order asked
    (PS3.18 8.7.3.3.2): native pixels as ``application/octet-stream`` in
    little-endian byte order; encapsulated frames as stored with the image
    media type of their transfer syntax (``image/jpeg``, ``image/jls``,
    ``image/jp2``, ``image/jphc``, ``image/dicom-rle``) and its
    ``transfer-syntax`` parameter, or as octet-stream with
    ``transfer-syntax=*``, or decoded when octet-stream in the default
    syntax is asked for.

    Status codes: 200; 400 for a malformed frame list; 401; 404 for an
    unknown instance or frame, or an instance without pixel data; 406 when
    no acceptable media type can be produced.
    """
    numbers = _frame_numbers(frame_list)
    if numbers is None:
        return plain_text(
            _("Frames are numbered from 1, for example frames/1,2,3."), status=400
        )
    return _frames(request, user, (study_uid, series_uid, sop_uid), numbers)


@reauthenticated_for_export
@require_safe
@dicomweb_endpoint
def retrieve_bulk_data(
    request: HttpRequest,
    user: User,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    tag_path: str,
) -> HttpResponse:
    """WADO-RS Retrieve Bulkdata, the ``BulkDataURI`` of metadata (10.4.1).

    ``tag_path`` is ``GGGGEEEE`` or ``GGGGEEEE/{item}/GGGGEEEE...``. The
    value is sent as one ``application/octet-stream`` part in little-endian
    byte order (PS3.18 8.7.3.3.1); the pixel data (``7FE00010``) is sent as
    all its frames, as :func:`retrieve_frames` would.

    Status codes: 200; 401; 404 for an unknown instance or an attribute
    that the instance does not hold as binary data; 406 as for frames.
    """
    uids = (study_uid, series_uid, sop_uid)
    if tag_path.upper() == PIXEL_DATA:
        return _frames(request, user, uids, None)
    instance = get_instance_for_user(user, *uids)
    wanted = parse_accept(_accept(request), OCTET_STREAM)
    if not any(item.covers(OCTET_STREAM) for item in wanted):
        return _not_acceptable(_("Bulk data is available as application/octet-stream."))

    value = _bulk_value(instance, tag_path)
    if value is None:
        return plain_text(_("The instance holds no such bulk data."), status=404)
    _record_retrieve(request, user, instance, "bulkdata", 1, OCTET_STREAM)
    boundary = new_boundary()
    parts = [({"Content-Type": OCTET_STREAM}, [value])]
    return _streaming(request, stream_parts(parts, boundary), OCTET_STREAM, boundary)


def _bulk_value(instance: Instance, tag_path: str) -> bytes | None:
    if instance.transfer_syntax_uid == EXPLICIT_BE:
        return None  # byte order of the value would need swapping per VR
    segments = tag_path.strip("/").split("/")
    if len(segments) % 2 == 0:
        return None
    dataset = _load(instance)
    try:
        for item_segment in segments[1::2]:
            tag_segment = segments[0]
            dataset = dataset[int(tag_segment, 16)].value[int(item_segment)]
            segments = segments[2:]
        value = dataset[int(segments[0], 16)].value
    except (KeyError, ValueError, IndexError, TypeError):
        return None
    return bytes(value) if isinstance(value, bytes | bytearray) else None


def _frame_numbers(frame_list: str) -> list[int] | None:
    if not FRAME_LIST_PATTERN.match(frame_list):
        return None
    numbers = [int(number) for number in frame_list.split(",")]
    return numbers if all(number >= 1 for number in numbers) else None


def _frames(
    request: HttpRequest,
    user: User,
    uids: tuple[str, str, str],
    numbers: list[int] | None,
) -> HttpResponse:
    instance = get_instance_for_user(user, *uids)
    if instance.pixel_status == PixelStatus.NONE:
        return plain_text(_("The instance has no pixel data."), status=404)
    numbers = numbers or list(range(1, instance.number_of_frames + 1))
    if max(numbers) > instance.number_of_frames:
        return plain_text(_("The instance has no such frame."), status=404)
    plan = frame_plan(
        parse_accept(_accept(request), OCTET_STREAM), instance.transfer_syntax_uid
    )
    if plan is None:
        return _not_acceptable(
            _("The frames cannot be sent in a media type you accept.")
        )

    try:
        frames = FrameSource(_load(instance), instance.number_of_frames, plan)
        first = frames.frame(numbers[0])  # fail before the 200 status is sent
    except RetrieveError as error:
        return plain_text(str(error), status=error.status)
    _record_retrieve(request, user, instance, "frames", len(numbers), plan.part_type)

    parts = _frame_parts(frames, numbers, first, _frame_part_type(plan))
    boundary = new_boundary()
    return _streaming(request, stream_parts(parts, boundary), plan.part_type, boundary)


def _frame_parts(
    frames: "FrameSource", numbers: list[int], first: bytes, part_type: str
) -> Iterator[tuple[dict[str, str], list[bytes]]]:
    header = {"Content-Type": part_type}
    yield header, [first]
    for number in numbers[1:]:
        yield header, [frames.frame(number)]


def _frame_part_type(plan: FramePlan) -> str:
    return f"{plan.part_type}; transfer-syntax={plan.transfer_syntax}"


@dataclass
class FrameSource:
    """The frames of one loaded dataset, as the plan says to send them."""

    ds: Dataset
    number_of_frames: int
    plan: FramePlan

    def frame(self, number: int) -> bytes:
        """Frame ``number`` (from 1), as stored or decoded (PS3.5 8.2, A.4).

        Raises
        ------
        RetrieveError
            When the stored pixel data is shorter than the frame or cannot
            be decoded.
        """
        syntax = str(self.ds.file_meta.TransferSyntaxUID)
        if "PixelData" not in self.ds:
            raise RetrieveError(_("The instance has no pixel data."), 404)
        if syntax in NATIVE_TRANSFER_SYNTAXES:
            return self._native_frame(number, syntax)
        if self.plan.decode:
            return self._decoded_frame(number, syntax)
        try:
            return get_frame(
                self.ds.PixelData, number - 1, number_of_frames=self.number_of_frames
            )
        except (ValueError, IndexError, EOFError) as error:
            raise RetrieveError(_("The stored frame cannot be read."), 500) from error

    def _native_frame(self, number: int, syntax: str) -> bytes:
        rows, columns = int(self.ds.Rows), int(self.ds.Columns)
        samples = int(self.ds.get("SamplesPerPixel", 1))
        bits = int(self.ds.BitsAllocated)
        size = rows * columns * samples * bits // 8
        if self.ds.get("PhotometricInterpretation") == "YBR_FULL_422":
            size = size * 2 // 3
        data = self.ds.PixelData
        start = (number - 1) * size
        if start + size > len(data) or bits % 8:
            raise RetrieveError(_("The stored frame is incomplete."), 500)
        frame = data[start : start + size]
        if syntax == EXPLICIT_BE and bits > 8:
            frame = np.frombuffer(frame, f">u{bits // 8}").astype(f"<u{bits // 8}")
            return frame.tobytes()
        return bytes(frame)

    def _decoded_frame(self, number: int, syntax: str) -> bytes:
        rows = dicom.int_value(self.ds, "Rows") or 0
        columns = dicom.int_value(self.ds, "Columns") or 0
        if rows * columns > MAX_FRAME_PIXELS:
            # The renderer's bound: decoders allocate the frame before they
            # read a byte of it.
            raise RetrieveError(_("The stored frame cannot be decoded."), 500)
        try:
            array, _meta = get_decoder(pydicom.uid.UID(syntax)).as_array(
                self.ds, index=number - 1
            )
        except Exception as error:
            # The edge for third-party decoders: any failure is the file's.
            logger.warning(
                "frame decode failed sop=%s frame=%d: %s",
                self.ds.get("SOPInstanceUID", ""),
                number,
                type(error).__name__,
            )
            raise RetrieveError(
                _("The stored frame cannot be decoded."), 500
            ) from error
        return array.astype(array.dtype.newbyteorder("<")).tobytes()


# --- Shared ---------------------------------------------------------------


def _load(instance: Instance) -> Dataset:
    with default_storage.open(instance.storage_path, "rb") as handle:
        return deflate.read_bounded(handle)


def _streaming(
    request: HttpRequest, chunks: Iterator[bytes], part_type: str, boundary: str
) -> StreamingHttpResponse:
    content: Any = as_async(chunks) if isinstance(request, ASGIRequest) else chunks
    return StreamingHttpResponse(
        content, content_type=content_type_header(part_type, boundary)
    )


def _record_retrieve(
    request: HttpRequest,
    user: User,
    instance: Instance,
    level: str,
    count: int,
    media_type: str,
) -> None:
    study = instance.series.study
    do_record_event(
        EventType.DICOMWEB_RETRIEVE,
        request=request,
        actor=user,
        object_type=level,
        object_id=instance.sop_instance_uid if level != "study" else "",
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={"media_type": media_type, "count": count},
    )


def _accept(request: HttpRequest) -> str:
    # PS3.18 8.3.3.1: the "accept" query parameter overrides the header.
    return request.GET.get("accept") or request.headers.get("Accept", "")


def _not_acceptable(message: str) -> HttpResponse:
    return plain_text(message, status=406)


def _study_instances(user: User, study_uid: str) -> list[Instance]:
    """The instances of a study the user may see; Http404 otherwise."""
    study = get_study_for_user(user, study_uid)
    return list(
        Instance.objects.filter(series__study=study).select_related(
            "series__study__patient"
        )
    )


def _series_instances(user: User, study_uid: str, series_uid: str) -> list[Instance]:
    """The instances of a series the user may see; Http404 otherwise."""
    series = get_series_for_user(user, study_uid, series_uid)
    return list(series.instances.select_related("series__study__patient"))
