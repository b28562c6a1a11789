"""STOW-RS Store Instances, ``POST /studies[/{study}]`` (PS3.18 10.5).

Each part of the multipart/related request is one PS3.10 file. A part is
checked before anything is written (parseable, complete, with valid UIDs,
in the study the path names), then written durably to the spool; the parts are
indexed together in this request, so that the response says only what is
really stored.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.http.request import MediaType
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from pydicom.dataset import Dataset
from pydicom.uid import UID

from accounts.models import Role, User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs import deflate, dicom, spool
from pacs.dicomweb.auth import dicomweb_endpoint
from pacs.dicomweb.multipart import MultipartError, Part, boundary_of, read_parts
from pacs.dicomweb.responses import dicom_json, plain_text
from pacs.ingest import check_pixel_data, do_ingest_spooled_files
from pacs.models import Instance, PixelStatus

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"


class FailureReason:
    """Failure Reason (0008,1197) values of PS3.18 10.5.3 (PS3.4 Annex B)."""

    OUT_OF_RESOURCES = 0xA700
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    # In the "cannot understand" range, as other archives use it: the
    # instance names another study than the request's path.
    STUDY_INSTANCE_UID_MISMATCH = 0xC409
    PROCESSING_FAILURE = 0x0110


@dataclass(frozen=True)
class PartOutcome:
    """What happened to one part."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    failure: int | None = None


class PartRefused(Exception):
    def __init__(self, reason: int, ds: Dataset | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ds = ds


def accepting_stow(search: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Route POST on ``/studies`` to STOW-RS and every other method to ``search``.

    QIDO-RS and STOW-RS share the path (PS3.18 10.5.1, 10.6.1); Django
    routes by path only.
    """

    @csrf_exempt
    def studies(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method == "POST":
            return store_instances(request, *args, **kwargs)
        return search(request, *args, **kwargs)

    return studies


@dicomweb_endpoint
def store_instances(
    request: HttpRequest, user: User, study_uid: str | None = None
) -> HttpResponse:
    """STOW-RS Store Instances (PS3.18 10.5.1).

    Parameters
    ----------
    request : HttpRequest
        ``multipart/related; type="application/dicom"``, one file a part.
    user : User
        The caller; only radiologists may store.
    study_uid : str, optional
        From ``POST /studies/{study}``: every instance must belong to it.

    Returns
    -------
    HttpResponse
        ``application/dicom+json`` with Referenced SOP Sequence (0008,1199)
        and Failed SOP Sequence (0008,1198) (PS3.18 10.5.3). Status 200 when
        every instance is stored, 202 when some failed, 409 when none was
        stored; 400 for a malformed multipart body or one without parts; 401
        without credentials; 403 for a role that may not store or a session
        without a CSRF token; 415 for a request that is not
        ``multipart/related`` of ``application/dicom``.
    """
    if user.role != Role.RADIOLOGIST:
        return plain_text(_("Only radiologists may store instances."), status=403)
    if "HTTP_AUTHORIZATION" not in request.META:
        refused = CsrfViewMiddleware(lambda _r: HttpResponse()).process_view(
            request, store_instances, (), {}
        )
        if refused is not None:
            return refused
    try:
        boundary = _request_boundary(request.META.get("CONTENT_TYPE", ""))
    except _UnsupportedMediaType:
        return plain_text(
            _('Send multipart/related; type="application/dicom".'), status=415
        )
    except MultipartError:
        return plain_text(_("The multipart body has no valid boundary."), status=400)

    outcomes: list[PartOutcome] = []
    spooled: list[tuple[Path, Dataset]] = []
    try:
        for part in read_parts(request, boundary):
            result = _spool_part(part, study_uid)
            if isinstance(result, PartOutcome):
                outcomes.append(result)
            else:
                spooled.append(result)
    except MultipartError as error:
        logger.warning("stow-rs malformed multipart body: %s", error)
        if not outcomes and not spooled:
            return plain_text(_("The multipart body is malformed."), status=400)
    outcomes += _index_spooled(spooled)
    if not outcomes:
        return plain_text(_("The request holds no instance."), status=400)

    _record_store(request, user, outcomes, study_uid)
    return _response(request, outcomes, study_uid)


class _UnsupportedMediaType(Exception):
    pass


def _request_boundary(content_type: str) -> str:
    media = MediaType(content_type)
    if (media.main_type, media.sub_type) != ("multipart", "related"):
        raise _UnsupportedMediaType
    part_type = media.params.get("type", DICOM).strip('"').lower()
    if part_type != DICOM:
        raise _UnsupportedMediaType
    return boundary_of(content_type)


def _spool_part(
    part: Part, study_uid: str | None
) -> PartOutcome | tuple[Path, Dataset]:
    """Check one part and write it to the spool, or say why it was refused."""
    try:
        ds = _checked_dataset(part, study_uid)
    except PartRefused as refused:
        return _failed(refused.ds, refused.reason)
    try:
        return spool.write_durably(connection.schema_name, part.content), ds
    except OSError as error:
        logger.error("stow-rs spool write failed: %s", error)
        return _failed(ds, FailureReason.OUT_OF_RESOURCES)


def _index_spooled(spooled: list[tuple[Path, Dataset]]) -> list[PartOutcome]:
    """Index the spooled parts together, in this request."""
    if not spooled:
        return []
    try:
        results = do_ingest_spooled_files([path for path, _ds in spooled])
    except Exception:
        # The one broad catch at this edge: the answer says which instances
        # failed; their files stay in the spool, where the sweeper finds them.
        logger.exception("stow-rs indexing failed for %d instances", len(spooled))
        results = []
    indexed = {result.sop_instance_uid for result in results}
    return [
        PartOutcome(
            str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.StudyInstanceUID)
        )
        if str(ds.SOPInstanceUID) in indexed
        else _failed(ds, FailureReason.PROCESSING_FAILURE)
        for _path, ds in spooled
    ]


def _checked_dataset(part: Part, study_uid: str | None) -> Dataset:
    if MediaType(part.content_type or DICOM).sub_type.lower() != "dicom":
        raise PartRefused(FailureReason.CANNOT_UNDERSTAND)
    try:
        ds = deflate.read_bounded(part.content, force=False)
        ds.get("PixelData")  # a truncated value raises here, not later
    except deflate.InflateLimitExceeded:
        # Refused, not misunderstood: the same answer as an instance over
        # the size this archive takes (PS3.4 B.2.3 Refused: Out of Resources).
        security_logger.warning("stow-rs part refused: deflated data set over the cap")
        raise PartRefused(FailureReason.OUT_OF_RESOURCES) from None
    except dicom.READ_ERRORS:
        raise PartRefused(FailureReason.CANNOT_UNDERSTAND) from None

    syntax = _text(ds.file_meta, "TransferSyntaxUID")
    if not UID(syntax).is_transfer_syntax:
        raise PartRefused(FailureReason.TRANSFER_SYNTAX_NOT_SUPPORTED, ds)
    if not dicom.is_valid_uid(_text(ds, "SOPClassUID")):
        raise PartRefused(FailureReason.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, ds)
    uids = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
    if not all(dicom.is_valid_uid(_text(ds, keyword)) for keyword in uids):
        raise PartRefused(FailureReason.CANNOT_UNDERSTAND, ds)
    if study_uid is not None and str(ds.StudyInstanceUID) != study_uid:
        raise PartRefused(FailureReason.STUDY_INSTANCE_UID_MISMATCH, ds)
    pixel_status, _detail = check_pixel_data(ds, syntax)
    if pixel_status in (PixelStatus.TRUNCATED, PixelStatus.UNREADABLE):
        raise PartRefused(FailureReason.CANNOT_UNDERSTAND, ds)
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    # Whole, not cut to a column's length: a UID must be checked as sent.
    return str(dicom.get_value(ds, keyword) or "")


def _failed(ds: Dataset | None, reason: int) -> PartOutcome:
    def uid(keyword: str) -> str:
        value = _text(ds, keyword) if ds is not None else ""
        return value if dicom.is_valid_uid(value) else ""

    return PartOutcome(
        uid("SOPClassUID"), uid("SOPInstanceUID"), uid("StudyInstanceUID"), reason
    )


def _response(
    request: HttpRequest, outcomes: list[PartOutcome], study_uid: str | None
) -> HttpResponse:
    stored = [outcome for outcome in outcomes if outcome.failure is None]
    failed = [outcome for outcome in outcomes if outcome.failure is not None]
    body: dict[str, Any] = {}
    studies = {outcome.study_instance_uid for outcome in stored}
    if study_uid or len(studies) == 1:
        body["00081190"] = _url(
            request, f"/dicomweb/studies/{study_uid or studies.pop()}"
        )
    if stored:
        locations = _locations([outcome.sop_instance_uid for outcome in stored])
        body["00081199"] = {
            "vr": "SQ",
            "Value": [
                _reference(request, outcome, locations[outcome.sop_instance_uid])
                for outcome in stored
            ],
        }
    if failed:
        body["00081198"] = {
            "vr": "SQ",
            "Value": [_failure(outcome) for outcome in failed],
        }
    status = 200 if not failed else 202 if stored else 409
    return dicom_json(body, DICOM_JSON, status=status)


def _uid_element(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _url(request: HttpRequest, path: str) -> dict[str, Any]:
    return {"vr": "UR", "Value": [request.build_absolute_uri(path)]}


def _locations(sop_instance_uids: list[str]) -> dict[str, tuple[str, str]]:
    """SOP Instance UID -> (study UID, series UID), as indexed, in one query."""
    rows = Instance.objects.filter(sop_instance_uid__in=sop_instance_uids).values_list(
        "sop_instance_uid",
        "series__study__study_instance_uid",
        "series__series_instance_uid",
    )
    return {sop: (study, series) for sop, study, series in rows}


def _reference(
    request: HttpRequest, outcome: PartOutcome, location: tuple[str, str]
) -> dict[str, Any]:
    study, series = location
    return {
        "00081150": _uid_element(outcome.sop_class_uid),
        "00081155": _uid_element(outcome.sop_instance_uid),
        "00081190": _url(
            request,
            f"/dicomweb/studies/{study}/series/{series}"
            f"/instances/{outcome.sop_instance_uid}",
        ),
    }


def _failure(outcome: PartOutcome) -> dict[str, Any]:
    return {
        "00081150": _uid_element(outcome.sop_class_uid),
        "00081155": _uid_element(outcome.sop_instance_uid),
        "00081197": {"vr": "US", "Value": [outcome.failure]},
    }


def _record_store(
    request: HttpRequest,
    user: User,
    outcomes: list[PartOutcome],
    study_uid: str | None,
) -> None:
    stored = sum(1 for outcome in outcomes if outcome.failure is None)
    do_record_event(
        EventType.INSTANCE_STORED,
        request=request,
        actor=user,
        outcome=Outcome.SUCCESS if stored else Outcome.FAILURE,
        object_type="stow-rs",
        study_instance_uid=study_uid or "",
        detail={
            "stored": stored,
            "failed": [
                f"{outcome.failure:04X}"
                for outcome in outcomes
                if outcome.failure is not None
            ],
        },
    )
