"""Known remote AEs as gatekeepers (PS3.8 9.3.4, PS3.7 D.3.3.4, PS3.15 B.9).

Checked once per association, in EVT_REQUESTED, after the listener's own
handler has chosen the tenant from the called AE title:

- a known remote AE flagged "comes over the internet" is accepted only over
  DICOM TLS with a verified client certificate;
- a known remote AE title that proposes more than Verification must call
  from its own host (the peer's IP address is one of the host's addresses),
  whatever the allow-list says: anyone can type a title, so a title from
  another host is somebody using another peer's name;
- where the tenant turns the allow-list on, every association that proposes
  more than Verification must come from a known remote AE, and an
  association that proposes to store (a storage context in which the
  requestor may act as SCU) needs "may store";
- one peer (calling AE title and IP address) holds at most
  ``NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER`` associations at once, and one
  IP address, whatever the titles it calls with, at most
  ``NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST``.

A refusal is an A-ASSOCIATE-RJ: rejected-permanent, service-user, reason 3
(calling AE title not recognised), or rejected-transient, service-provider
(presentation), reason 2 (local limit exceeded) for the limits. It is
logged on the ``nimbus.security`` logger (AE titles and addresses, never
patient data) and audited in the tenant's trail.

Then, per request, whatever the allow-list says: C-FIND and C-MOVE are
served only to a known remote AE calling from its own host, C-GET only to
one with "may retrieve" (queries and retrieves read patient data). Any
other caller's request is answered 0x0124 (Refused: Not Authorized, PS3.7
C.5) before a handler runs, and audited as the operation it asked for.
"""

import ipaddress
import logging
import socket
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE
from pynetdicom.dsutils import decode
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import (
    ServiceClass,
    StorageServiceClass,
    VerificationServiceClass,
)
from pynetdicom.sop_class import uid_to_service_class

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.dimse import trail
from pacs.dimse.lastknown import (
    LAST_KNOWN_SECONDS,
    LastKnown,
    close_quietly,
    reject_busy,
)
from pacs.models import RemoteApplicationEntity

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

# PS3.8 9.3.4 A-ASSOCIATE-RJ (result, source, reason).
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service-user, calling AE
REJECT_LOCAL_LIMIT = (0x02, 0x03, 0x02)  # transient, provider (presentation)
# PS3.7 C.5 general status, answered to a query or retrieve from a stranger.
STATUS_NOT_AUTHORISED = 0x0124
QueryRetrieveRequest = C_FIND | C_MOVE | C_GET

# Seconds a resolved host name is trusted; DNS is asked at most this often
# per name, never per instance.
RESOLVE_TTL = 60.0
_resolved: dict[str, tuple[float, frozenset[str]]] = {}
_peer_lock = threading.Lock()


def proposes_storage(assoc: Association) -> bool:
    """Whether the requestor proposes a storage context in which it may be SCU.

    A C-GET requestor proposes storage contexts too, but only in the SCP role
    (PS3.7 D.3.3.4); those do not store anything here.
    """
    roles = assoc.requestor.role_selection
    for context in assoc.requestor.requested_contexts:
        uid = context.abstract_syntax
        # Unknown abstract syntaxes are accepted as private storage classes.
        service = uid_to_service_class(uid)
        if service is not StorageServiceClass and service is not ServiceClass:
            continue
        role = roles.get(uid)
        if role is None or role.scu_role is None or role.scu_role:
            return True
    return False


def proposes_only_verification(assoc: Association) -> bool:
    return all(
        uid_to_service_class(context.abstract_syntax) is VerificationServiceClass
        for context in assoc.requestor.requested_contexts
    )


def may_retrieve(schema: str, ae_title: str) -> RemoteApplicationEntity | None:
    """The known remote AE ``ae_title`` if instances may be sent to it, else None."""
    with schema_context(schema):
        return RemoteApplicationEntity.objects.filter(
            ae_title=ae_title.strip(), may_retrieve=True
        ).first()


def normalised_address(address: str) -> str:
    """``address`` as ipaddress writes it; an IPv4-mapped IPv6 address as IPv4."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def host_addresses(host: str) -> frozenset[str]:
    """The addresses of ``host`` (an IP address or a name), cached briefly."""
    try:
        return frozenset({normalised_address(str(ipaddress.ip_address(host)))})
    except ValueError:
        pass
    now = time.monotonic()
    cached = _resolved.get(host)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        addresses = frozenset(normalised_address(str(info[4][0])) for info in infos)
    except OSError as error:
        logger.warning("remote AE host %r does not resolve: %s", host, error)
        addresses = frozenset()
    _resolved[host] = (now + RESOLVE_TTL, addresses)
    return addresses


def comes_from(remote: RemoteApplicationEntity, address: str) -> bool:
    return normalised_address(address) in host_addresses(remote.host)


def refusal(
    assoc: Association, remote: RemoteApplicationEntity | None, allow_list: bool
) -> str:
    """Why the association may not go on (empty when it may), for log and audit."""
    if remote is not None and remote.comes_over_internet:
        if not getattr(assoc, "nimbus_peer_certificate", None):
            return "internet peer without a verified TLS client certificate"
    if proposes_only_verification(assoc):
        return ""
    # Checked with the allow-list off too: a known title is what query and
    # retrieve trust, and a title is only as good as the host it calls from.
    if remote is not None and not comes_from(remote, assoc.requestor.address):
        return "calling AE title from another host than its own"
    if not allow_list:
        return ""
    if remote is None:
        return "calling AE title not in the allow-list"
    if proposes_storage(assoc) and not remote.may_store:
        return "calling AE title may not store"
    return ""


def over_association_limits(assoc: Association) -> str:
    """Why the peer may not open one more association (empty when it may).

    Counts live association threads tagged with the same calling AE title
    and address (per peer), and with the same address (per host: a peer
    that changes its title for each association is still one host), so an
    association that ends, however it ends, stops counting without any
    bookkeeping. Tags this association when it is within both limits.
    """
    key = (
        assoc.requestor.primitive.calling_ae_title.strip(),
        normalised_address(assoc.requestor.address),
    )
    with _peer_lock:
        tags = [
            getattr(other, "nimbus_peer", None)
            for other in assoc.ae.active_associations
            if other is not assoc
        ]
        if (
            sum(tag == key for tag in tags)
            >= settings.NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER
        ):
            return "too many associations from this peer"
        from_host = sum(tag is not None and tag[1] == key[1] for tag in tags)
        if from_host >= settings.NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST:
            return "too many associations from this host"
        assoc.nimbus_peer = key  # type: ignore[attr-defined]
    return ""


def handle_requested(event: Event) -> None:
    """Refuse an association that the tenant's remote AE rules do not allow.

    Bound after the listener's own EVT_REQUESTED handler, which has already
    chosen the tenant (or rejected the association). Guards queries and
    retrieves before the calling AE is looked up, so that a failed look-up
    leaves them refused rather than open.
    """
    assoc: Association = event.assoc
    schema = getattr(assoc, "nimbus_schema", None)
    if schema is None or assoc.is_rejected or assoc.is_aborted:
        return
    guard_query_retrieve(assoc)
    calling = assoc.requestor.primitive.calling_ae_title.strip()
    allow_list = bool(getattr(assoc, "nimbus_allow_list", False))
    try:
        remote = known_remote(schema, calling)
    except Exception:  # noqa: BLE001 - a check that cannot run refuses: fail closed
        logger.warning("calling AE %r not looked up", calling, exc_info=True)
        reject_busy(assoc, "the calling AE title could not be looked up")
        close_quietly()
        return
    try:
        reason = refusal(assoc, remote, allow_list)
        if reason:
            reject(assoc, schema, reason, REJECT_CALLING_AE)
            return
        reason = over_association_limits(assoc)
        if reason:
            reject(assoc, schema, reason)
            return
        assoc.nimbus_remote = remote  # type: ignore[attr-defined]
    finally:
        close_quietly()


_remotes: LastKnown[tuple[str, str], RemoteApplicationEntity] = LastKnown(
    "remote AE", LAST_KNOWN_SECONDS
)


def known_remote(schema: str, ae_title: str) -> RemoteApplicationEntity | None:
    """The tenant's remote AE called ``ae_title``; the last known while the
    database is unreachable (:mod:`pacs.dimse.lastknown`)."""

    def lookup() -> RemoteApplicationEntity | None:
        with schema_context(schema):
            return RemoteApplicationEntity.objects.filter(ae_title=ae_title).first()

    return _remotes.get((schema, ae_title), lookup)


def query_retrieve_refusal(assoc: Association, request: QueryRetrieveRequest) -> str:
    """Why a C-FIND, C-MOVE or C-GET may not be served (empty when it may).

    The calling AE's host was checked with the association; it is checked
    again here so that no path to a handler trusts the title alone.
    """
    remote: RemoteApplicationEntity | None = getattr(assoc, "nimbus_remote", None)
    if remote is None:
        return "calling AE title is not a known remote AE"
    if not comes_from(remote, assoc.requestor.address):
        return "calling AE title from another host than its own"
    if isinstance(request, C_GET) and not remote.may_retrieve:
        return "calling AE title may not retrieve"
    return ""


def guard_query_retrieve(assoc: Association) -> None:
    """Answer queries and retrieves of an unauthorised caller before any handler.

    pynetdicom runs a C-MOVE handler only after it has associated with the
    Move Destination, and answers a C-GET or C-MOVE failure with sub-operation
    counts and an empty Failed SOP Instance UID List, which some SCUs never
    read (dcmtk's getscu then finds a P-DATA-TF where it expects the
    A-RELEASE-RP). Served here, a refusal is one response with the status
    and an Error Comment only (PS3.4 C.4.2.1.3.1, C.4.3.1.3.1: no data set
    when no sub-operation failed), and no destination is contacted.
    """
    serve = assoc._serve_request

    def serve_if_authorised(request: Any, context_id: int) -> None:
        if isinstance(request, QueryRetrieveRequest) and request.is_valid_request:
            reason = query_retrieve_refusal(assoc, request)
            context = accepted_context(assoc, context_id)
            # A request on a context never accepted: pynetdicom aborts.
            if reason and context is not None:
                refuse_request(assoc, request, context, reason)
                return
        serve(request, context_id)

    assoc._serve_request = serve_if_authorised  # type: ignore[method-assign]


def accepted_context(assoc: Association, context_id: int) -> PresentationContext | None:
    return next(
        (cx for cx in assoc.accepted_contexts if cx.context_id == context_id), None
    )


def refuse_request(
    assoc: Association,
    request: QueryRetrieveRequest,
    context: PresentationContext,
    reason: str,
) -> None:
    """Log, audit and answer 0x0124 to one query or retrieve request."""
    schema: str = assoc.nimbus_schema  # type: ignore[attr-defined]
    calling = assoc.requestor.ae_title.strip()
    address = normalised_address(assoc.requestor.address)
    security_logger.warning(
        "%s refused: %s (calling AE %r from %s, tenant %s)",
        request.msg_type,
        reason,
        calling,
        address,
        schema,
    )
    try:
        with schema_context(schema):
            record_refused_request(
                request, decoded_identifier(request, context), calling, address, reason
            )
    except Exception:  # the refusal stands even if the trail cannot be written
        logger.exception("%s refusal not audited", request.msg_type)
    finally:
        connection.close()

    response = type(request)()
    response.MessageID = request.MessageID
    response.MessageIDBeingRespondedTo = request.MessageID
    response.AffectedSOPClassUID = request.AffectedSOPClassUID
    response.Status = STATUS_NOT_AUTHORISED
    response.ErrorComment = "Calling AE title not authorised"
    assoc.dimse.send_msg(response, context.context_id)


def record_refused_request(
    request: QueryRetrieveRequest,
    identifier: Dataset | None,
    calling: str,
    address: str,
    reason: str,
) -> None:
    """Audit one refused request in the current tenant's schema."""
    if isinstance(request, C_FIND):
        trail.record_query(
            calling=calling,
            address=address,
            identifier=identifier,
            status=STATUS_NOT_AUTHORISED,
            results=0,
            reason=reason,
        )
        return
    moving = isinstance(request, C_MOVE)
    destination = str(request.MoveDestination or "") if moving else calling
    trail.record_refused_retrieve(
        EventType.DICOM_MOVE if moving else EventType.DICOM_GET,
        calling=calling,
        address=address,
        destination=destination.strip(),
        identifier=identifier,
        status=STATUS_NOT_AUTHORISED,
        reason=reason,
    )


def decoded_identifier(
    request: QueryRetrieveRequest, context: PresentationContext
) -> Dataset | None:
    """The request's identifier, or None when it cannot be decoded."""
    syntax = context.transfer_syntax[0]
    try:
        request.Identifier.seek(0)  # type: ignore[union-attr]
        return decode(
            request.Identifier,  # type: ignore[arg-type]
            syntax.is_implicit_VR,
            syntax.is_little_endian,
            syntax.is_deflated,
        )
    except Exception:  # noqa: BLE001 - recorded without its keys
        return None


def reject(
    assoc: Association,
    schema: str,
    reason: str,
    result_source_reason: tuple[int, int, int] = REJECT_LOCAL_LIMIT,
) -> None:
    """Send A-ASSOCIATE-RJ, log it and audit it in the tenant's trail."""
    calling = assoc.requestor.primitive.calling_ae_title.strip()
    called = assoc.requestor.primitive.called_ae_title.strip()
    address = normalised_address(assoc.requestor.address)
    security_logger.warning(
        "association rejected: %s (calling AE %r from %s, tenant %s)",
        reason,
        calling,
        address,
        schema,
    )
    # Audited before the peer hears of it: the record is there when it retries.
    record_rejection(schema, calling, called, address, reason)
    assoc.acse.send_reject(*result_source_reason)
    assoc.is_rejected = True
    assoc.kill()


def record_rejection(
    schema: str, calling: str, called: str, address: str, reason: str
) -> None:
    try:
        with schema_context(schema):
            do_record_event(
                EventType.DICOM_ASSOCIATION_REJECTED,
                request=trail.origin(address),
                actor_username=calling,
                outcome=Outcome.FAILURE,
                object_type="dicom_association",
                object_id=called,
                detail={
                    "calling_ae_title": calling,
                    "called_ae_title": called,
                    "reason": reason,
                },
            )
    except Exception:  # the rejection stands even if the trail cannot be written
        logger.exception("association rejection not audited")
