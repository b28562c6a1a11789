"""Query/Retrieve SCP: C-MOVE and C-GET for every tenant (PS3.4 C.4.2, C.4.3).

pynetdicom runs the DIMSE exchange (pending responses with sub-operation
counts, the final status, C-CANCEL); the handlers here choose the tenant's
instances by the unique keys of the identifier and hand them over one at a
time, read from the archive as stored. Compressed pixel data is sent as it
is whenever the peer accepted the stored transfer syntax, and only decoded
for a peer that accepted nothing but native little endian.
"""

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pydicom
from django.core.files.storage import default_storage
from django.db import connection
from django_tenants.utils import schema_context
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs import dicom
from pacs.dimse import peers, trail
from pacs.models import Instance

logger = logging.getLogger(__name__)

# PS3.4 C.4.2.1.5 and C.4.3.1.4 status codes; PS3.7 C.5 for the general ones.
STATUS_PENDING = 0xFF00
STATUS_CANCEL = 0xFE00
STATUS_MOVE_DESTINATION_UNKNOWN = 0xA801
STATUS_IDENTIFIER_DOES_NOT_MATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000

MOVE_SOP_CLASSES = [
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
]
GET_SOP_CLASSES = [
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
]
PATIENT_ROOT = {
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
}

# The unique key of each level (PS3.4 C.6.1.1 and C.6.2.1) and the index
# field it matches.
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
UNIQUE_KEYS = {
    "PATIENT": ("PatientID", "series__study__patient__patient_id"),
    "STUDY": ("StudyInstanceUID", "series__study__study_instance_uid"),
    "SERIES": ("SeriesInstanceUID", "series__series_instance_uid"),
    "IMAGE": ("SOPInstanceUID", "sop_instance_uid"),
}
NATIVE_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
# PS3.8 9.3.2.2: presentation context IDs are odd numbers 1 to 255.
MAX_PRESENTATION_CONTEXTS = 128


class RetrieveRefused(Exception):
    """The request cannot be served; ``status`` is the DIMSE failure to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Match:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    storage_path: str
    study_instance_uid: str
    patient_id: str


@dataclass
class RetrievePlan:
    """What one C-MOVE or C-GET request will send, or why it sends nothing."""

    matches: list[Match] = field(default_factory=list)
    refused: RetrieveRefused | None = None


def configure_retrieve(ae: AE) -> None:
    """Offer the Patient and Study Root MOVE and GET SOP classes (PS3.4 C.6).

    Also turns off pynetdicom's logging of request identifiers, which would
    write patient IDs to the log.
    """
    _config.LOG_REQUEST_IDENTIFIERS = False
    for sop_class in MOVE_SOP_CLASSES + GET_SOP_CLASSES:
        ae.add_supported_context(sop_class)


def instance_filter(identifier: Dataset | None, sop_class_uid: str) -> dict[str, Any]:
    """Index filters for the unique keys of a retrieve identifier.

    Follows PS3.4 C.4.2.2.1 and C.6.1.2.3 (Patient Root) / C.6.2.2.3 (Study
    Root): the unique key of the Query/Retrieve Level is required and may be
    a list of UIDs; the unique keys of the levels above narrow the match
    when present and are not required (a lenient reading many SCUs need).

    Parameters
    ----------
    identifier : pydicom.dataset.Dataset or None
        The decoded identifier of the C-MOVE or C-GET request.
    sop_class_uid : str
        The Affected SOP Class UID, which fixes the information model.

    Returns
    -------
    dict
        Keyword arguments for ``Instance.objects.filter``.

    Raises
    ------
    RetrieveRefused
        0xA900 (identifier does not match SOP class) for a missing or
        unknown level, a missing unique key or a malformed UID.
    """
    if identifier is None:
        raise RetrieveRefused(STATUS_IDENTIFIER_DOES_NOT_MATCH, "no identifier")
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    patient_root = sop_class_uid in PATIENT_ROOT
    if level not in LEVELS or (level == "PATIENT" and not patient_root):
        raise RetrieveRefused(STATUS_IDENTIFIER_DOES_NOT_MATCH, "bad level")

    filters: dict[str, Any] = {}
    top = 0 if patient_root else 1
    for current in LEVELS[top : LEVELS.index(level) + 1]:
        keyword, lookup = UNIQUE_KEYS[current]
        values = key_values(identifier, keyword)
        if not values:
            if current == level:
                raise RetrieveRefused(STATUS_IDENTIFIER_DOES_NOT_MATCH, f"no {keyword}")
            continue
        if current != "PATIENT" and not all(map(dicom.is_valid_uid, values)):
            raise RetrieveRefused(STATUS_IDENTIFIER_DOES_NOT_MATCH, "malformed UID")
        filters[f"{lookup}__in"] = values
    return filters


def key_values(identifier: Dataset, keyword: str) -> list[str]:
    value = identifier.get(keyword)
    if value is None:
        return []
    values = value if isinstance(value, MultiValue | list) else [value]
    return [str(item).strip() for item in values if str(item).strip()]


def plan_retrieve(identifier: Dataset | None, sop_class_uid: str) -> RetrievePlan:
    """The current tenant's instances that a retrieve request names."""
    try:
        filters = instance_filter(identifier, sop_class_uid)
    except RetrieveRefused as refused:
        return RetrievePlan(refused=refused)
    rows = (
        Instance.objects.filter(**filters)
        .order_by("series__study_id", "series_id", "instance_number", "pk")
        .values_list(
            "sop_instance_uid",
            "sop_class_uid",
            "transfer_syntax_uid",
            "storage_path",
            "series__study__study_instance_uid",
            "series__study__patient__patient_id",
        )
    )
    return RetrievePlan(matches=[Match(*row) for row in rows])


def record_retrieve(
    event_type: EventType,
    plan: RetrievePlan,
    assoc: Association,
    destination: str,
) -> None:
    """One audit event per study sent (or one for a refused or empty request)."""
    requestor = assoc.requestor.ae_title.strip()
    origin = trail.origin(peers.normalised_address(assoc.requestor.address))
    outcome = Outcome.FAILURE if plan.refused else Outcome.SUCCESS
    studies: dict[tuple[str, str], int] = {}
    for match in plan.matches:
        key = (match.study_instance_uid, match.patient_id)
        studies[key] = studies.get(key, 0) + 1
    for (study_uid, patient_id), count in studies.items() or [(("", ""), 0)]:
        do_record_event(
            event_type,
            request=origin,
            actor_username=requestor,
            outcome=outcome,
            object_type="ae_title",
            object_id=destination,
            patient_id=patient_id,
            study_instance_uid=study_uid,
            detail={
                "instances": count,
                "status": plan.refused.status if plan.refused else None,
            },
        )


def requested_contexts(matches: list[Match]) -> list[PresentationContext]:
    """Contexts for the C-MOVE sub-association (PS3.4 C.4.2.3.1).

    Each SOP class is proposed with explicit and implicit little endian, and
    once more per stored transfer syntax on its own context, so that the
    peer can accept each stored syntax and the files go unchanged.
    """
    stored: dict[str, set[str]] = {}
    for match in matches:
        if dicom.is_valid_uid(match.sop_class_uid):
            stored.setdefault(match.sop_class_uid, set()).add(match.transfer_syntax_uid)
    contexts = [build_context(sop_class, NATIVE_SYNTAXES) for sop_class in stored]
    for sop_class, syntaxes in stored.items():
        for syntax in sorted(syntaxes - set(NATIVE_SYNTAXES)):
            if dicom.is_valid_uid(syntax):
                contexts.append(build_context(sop_class, syntax))
    return contexts[:MAX_PRESENTATION_CONTEXTS]


def accepted_for_sending(assoc: Association | None) -> set[tuple[str, str]]:
    """(SOP class, transfer syntax) pairs in which ``assoc`` lets us send."""
    if assoc is None:
        return set()
    return {
        (str(cx.abstract_syntax), str(cx.transfer_syntax[0]))
        for cx in assoc.accepted_contexts
        if cx.as_scu and cx.transfer_syntax
    }


def read_stored(match: Match) -> Dataset:
    with default_storage.open(match.storage_path, "rb") as handle:
        data = handle.read()
    return pydicom.dcmread(io.BytesIO(data))


def fit_to_peer(ds: Dataset, accepted: set[tuple[str, str]]) -> Dataset:
    """The dataset as stored, decoded only if the peer refused its syntax.

    A peer that accepted the stored transfer syntax gets the stored bytes
    (PS3.4 C.4.2.3.1 leaves the syntax to negotiation); one that accepted
    only native little endian for this SOP class gets decompressed pixel
    data rather than a failed sub-operation.
    """
    sop_class = str(ds.get("SOPClassUID", ""))
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    if (sop_class, syntax) in accepted or not syntax.is_compressed:
        return ds
    if any((sop_class, native) in accepted for native in NATIVE_SYNTAXES):
        ds.decompress()
    return ds


def placeholder(match: Match) -> Dataset:
    """A dataset that cannot be sent: the sub-operation fails and is listed."""
    ds = Dataset()
    ds.SOPInstanceUID = match.sop_instance_uid
    return ds


def send_matches(
    event: Event,
    service: str,
    plan: RetrievePlan,
    accepted: Callable[[], set[tuple[str, str]]],
) -> Iterator[Any]:
    """The sub-operation count, then one (status, dataset) per instance.

    pynetdicom sends each dataset in a C-STORE sub-operation and answers
    Pending with the remaining/completed/failed/warning counts, then the
    final status: 0x0000, 0xB000 when some failed, 0xA702 when all failed
    (PS3.4 C.4.2.1.5, C.4.3.1.4). A C-CANCEL ends it with 0xFE00.
    """
    if plan.refused is not None:
        yield 1
        yield plan.refused.status, None
        return

    started = time.monotonic()
    yield len(plan.matches)
    sent = 0
    for match in plan.matches:
        if event.is_cancelled:
            logger.info("%s cancelled after %d sub-operations", service, sent)
            yield STATUS_CANCEL, None
            return
        try:
            ds = fit_to_peer(read_stored(match), accepted())
        except Exception as error:  # noqa: BLE001 - one bad file fails one sub-operation
            logger.warning(
                "%s: stored instance sop=%s unreadable: %s",
                service,
                match.sop_instance_uid,
                type(error).__name__,
            )
            ds = placeholder(match)
        sent += 1
        yield STATUS_PENDING, ds
    logger.info(
        "%s done: %d sub-operations in %d ms",
        service,
        sent,
        (time.monotonic() - started) * 1000,
    )


def handle_move(event: Event) -> Iterator[Any]:
    """Answer a C-MOVE request (PS3.4 C.4.2.2) in the association's tenant.

    Only a known remote AE gets here: ``pacs.dimse.peers`` answers any other
    caller 0x0124 (Refused: Not Authorized) without contacting the Move
    Destination.

    Parameters
    ----------
    event : pynetdicom.events.Event
        The EVT_C_MOVE event; ``event.assoc.nimbus_schema`` names the tenant.

    Yields
    ------
    tuple or int
        pynetdicom's C-MOVE handler protocol: the destination as
        ``(host, port, associate kwargs)``, or ``(None, None)`` when the
        Move Destination is not a known remote AE of the tenant allowed to
        retrieve (status 0xA801); then the number of sub-operations; then
        ``(status, dataset)`` pairs. A malformed identifier ends with 0xA900,
        an internal error with 0xC000.
    """
    assoc = event.assoc
    schema: str = assoc.nimbus_schema  # type: ignore[attr-defined]
    requestor = assoc.requestor.ae_title.strip()
    destination_title = str(event.move_destination or "").strip()
    try:
        with schema_context(schema):
            destination = peers.may_retrieve(schema, destination_title)
            plan = safe_plan(event) if destination is not None else RetrievePlan()
            if destination is None:
                plan = RetrievePlan(
                    refused=RetrieveRefused(
                        STATUS_MOVE_DESTINATION_UNKNOWN, "destination unknown"
                    )
                )
            record_retrieve(EventType.DICOM_MOVE, plan, assoc, destination_title)
    finally:
        connection.close()

    logger.info(
        "C-MOVE calling=%s destination=%s matches=%d status=%s",
        requestor,
        destination_title,
        len(plan.matches),
        f"0x{plan.refused.status:04X}" if plan.refused else "pending",
    )
    if destination is None:
        yield None, None
        return

    opened: dict[str, Association] = {}

    def remember(open_event: Event) -> None:
        opened["assoc"] = open_event.assoc

    # A refused request still needs a context to associate with; pynetdicom
    # then answers the failure and releases the sub-association at once.
    contexts = requested_contexts(plan.matches) or [build_context("1.2.840.10008.1.1")]
    yield (
        destination.host,
        destination.port,
        {"contexts": contexts, "evt_handlers": [(evt.EVT_CONN_OPEN, remember)]},
    )
    yield from send_matches(
        event, "C-MOVE", plan, lambda: accepted_for_sending(opened.get("assoc"))
    )


def handle_get(event: Event) -> Iterator[Any]:
    """Answer a C-GET request (PS3.4 C.4.3.2) over the requesting association.

    The instances go back over the same association, in the storage contexts
    for which the peer took the SCP role (PS3.7 D.3.3.4). Only a known
    remote AE allowed to retrieve gets here: ``pacs.dimse.peers`` answers
    any other 0x0124 (Refused: Not Authorized).

    Parameters
    ----------
    event : pynetdicom.events.Event
        The EVT_C_GET event; ``event.assoc.nimbus_schema`` names the tenant.

    Yields
    ------
    int, then tuple
        The number of sub-operations, then ``(status, dataset)`` pairs.
    """
    assoc = event.assoc
    schema: str = assoc.nimbus_schema  # type: ignore[attr-defined]
    requestor = assoc.requestor.ae_title.strip()
    try:
        with schema_context(schema):
            plan = safe_plan(event)
            record_retrieve(EventType.DICOM_GET, plan, assoc, requestor)
    finally:
        connection.close()

    logger.info(
        "C-GET calling=%s matches=%d status=%s",
        requestor,
        len(plan.matches),
        f"0x{plan.refused.status:04X}" if plan.refused else "pending",
    )
    yield from send_matches(event, "C-GET", plan, lambda: accepted_for_sending(assoc))


def safe_plan(event: Event) -> RetrievePlan:
    """Plan the retrieve; any unexpected error becomes 0xC000, not a dead handler."""
    try:
        return plan_retrieve(event.identifier, str(event.request.AffectedSOPClassUID))
    except Exception:  # noqa: BLE001 - answered as a DIMSE failure
        logger.exception("retrieve could not be planned")
        return RetrievePlan(
            refused=RetrieveRefused(STATUS_UNABLE_TO_PROCESS, "unable to process")
        )
