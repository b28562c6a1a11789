"""Audit records of DIMSE requests in the tenant's trail (PS3.15 A.5.3).

Every C-FIND is recorded once, answered or refused (event 232, ATNA Query
110112); C-MOVE and C-GET are recorded per study sent by
``pacs.dimse.retrieve`` (events 230, 231), or once when refused. The peer is
the actor (its calling AE title) with its IP address as ``source_ip``.
"""

from typing import Any

from django.http import HttpRequest
from pydicom.dataset import Dataset

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.query.engine import identifier_keys

# The audited object of a query at each Query/Retrieve Level, as QIDO-RS names it.
QUERIED_OBJECT = {
    "PATIENT": "patient",
    "STUDY": "study",
    "SERIES": "series",
    "IMAGE": "instance",
}


def origin(address: str) -> HttpRequest:
    """A stand-in request that carries the peer's address to ``do_record_event``."""
    request = HttpRequest()
    request.META["REMOTE_ADDR"] = address
    return request


def query_level(identifier: Dataset | None) -> str:
    if identifier is None:
        return ""
    return str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()[:16]


def query_keys(identifier: Dataset | None) -> tuple[dict[str, str], list[str]]:
    """The matching values and the names of every key of an identifier.

    The matching values are kept as DICOMweb queries keep theirs (the audit
    trail may hold patient data, the logs may not); a key that cannot be
    named is written as its tag.
    """
    if identifier is None:
        return {}, []
    try:
        values, tags = identifier_keys(identifier)
    except Exception:  # noqa: BLE001 - a damaged identifier is still recorded
        return {}, []
    names = [identifier[tag].keyword or f"{tag:08X}" for tag in tags]
    return values, names


def record_query(
    *,
    calling: str,
    address: str,
    identifier: Dataset | None,
    status: int,
    results: int,
    reason: str = "",
) -> None:
    """Write the record of one C-FIND in the current tenant's schema.

    Parameters
    ----------
    calling : str
        The calling AE title, recorded as the actor.
    address : str
        The peer's IP address.
    identifier : Dataset or None
        The request identifier, once decoded.
    status : int
        The final or first failure status answered (PS3.4 C.4.1.1.4).
    results : int
        Pending responses answered.
    reason : str
        Why the query was refused, when it was.
    """
    level = query_level(identifier)
    match, keys = query_keys(identifier)
    failed = status not in (0x0000, 0xFF00, 0xFF01, 0xFE00)
    detail: dict[str, Any] = {
        "calling_ae_title": calling,
        "level": level,
        "match": match,
        "keys": keys,
        "results": results,
        "status": status,
    }
    if reason:
        detail["reason"] = reason
    do_record_event(
        EventType.DICOM_QUERY,
        request=origin(address),
        actor_username=calling,
        outcome=Outcome.FAILURE if failed else Outcome.SUCCESS,
        object_type=QUERIED_OBJECT.get(level, "query"),
        detail=detail,
    )


def record_refused_retrieve(
    event_type: EventType,
    *,
    calling: str,
    address: str,
    destination: str,
    identifier: Dataset | None,
    status: int,
    reason: str,
) -> None:
    """Write the record of a C-MOVE or C-GET refused before any sub-operation."""
    do_record_event(
        event_type,
        request=origin(address),
        actor_username=calling,
        outcome=Outcome.FAILURE,
        object_type="ae_title",
        object_id=destination,
        detail={
            "instances": 0,
            "status": status,
            "level": query_level(identifier),
            "reason": reason,
        },
    )
