"""Known remote AEs as gatekeepers (PS3.8 9.3.4, PS3.7 D.3.3.4, PS3.15 B.9).

Checked once per association, in EVT_REQUESTED, after the listener's own
handler has chosen the tenant from the called AE title:

- a known remote AE flagged "comes over the internet" is accepted only over
  DICOM TLS with a verified client certificate;
- where the tenant turns the allow-list on, every association that proposes
  more than Verification must come from a known remote AE *and* from its
  host (the peer's IP address is one of the host's addresses), and an
  association that proposes to store (a storage context in which the
  requestor may act as SCU) needs "may store";
- one peer (calling AE title and IP address) holds at most
  ``NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER`` associations at once.

A refusal is an A-ASSOCIATE-RJ: rejected-permanent, service-user, reason 3
(calling AE title not recognised), or rejected-transient, service-provider
(presentation), reason 2 (local limit exceeded) for the per-peer limit. It is
logged on the ``nimbus.security`` logger (AE titles and addresses, never
patient data) and audited in the tenant's trail.
"""

import ipaddress
import logging
import socket
import threading
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest
from django_tenants.utils import schema_context
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.service_class import (
    ServiceClass,
    StorageServiceClass,
    VerificationServiceClass,
)
from pynetdicom.sop_class import uid_to_service_class

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import RemoteApplicationEntity

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

# PS3.8 9.3.4 A-ASSOCIATE-RJ (result, source, reason).
REJECT_CALLING_AE = (0x01, 0x01, 0x03)  # permanent, service-user, calling AE
REJECT_LOCAL_LIMIT = (0x02, 0x03, 0x02)  # transient, provider (presentation)

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
    if not allow_list or proposes_only_verification(assoc):
        return ""
    if remote is None:
        return "calling AE title not in the allow-list"
    if not comes_from(remote, assoc.requestor.address):
        return "calling AE title from another host than its own"
    if proposes_storage(assoc) and not remote.may_store:
        return "calling AE title may not store"
    return ""


def too_many_from_peer(assoc: Association, limit: int) -> bool:
    """Whether the peer already holds ``limit`` associations; else count this one.

    The count is of live association threads tagged with the same calling AE
    title and address, so an association that ends, however it ends, stops
    counting without any bookkeeping.
    """
    key = (
        assoc.requestor.primitive.calling_ae_title.strip(),
        normalised_address(assoc.requestor.address),
    )
    with _peer_lock:
        held = sum(
            1
            for other in assoc.ae.active_associations
            if other is not assoc and getattr(other, "nimbus_peer", None) == key
        )
        if held >= limit:
            return True
        assoc.nimbus_peer = key  # type: ignore[attr-defined]
    return False


def handle_requested(event: Event) -> None:
    """Refuse an association that the tenant's remote AE rules do not allow.

    Bound after the listener's own EVT_REQUESTED handler, which has already
    chosen the tenant (or rejected the association).
    """
    assoc: Association = event.assoc
    schema = getattr(assoc, "nimbus_schema", None)
    if schema is None or assoc.is_rejected or assoc.is_aborted:
        return
    calling = assoc.requestor.primitive.calling_ae_title.strip()
    allow_list = bool(getattr(assoc, "nimbus_allow_list", False))
    try:
        with schema_context(schema):
            remote = RemoteApplicationEntity.objects.filter(ae_title=calling).first()
        reason = refusal(assoc, remote, allow_list)
        if reason:
            reject(assoc, schema, reason, REJECT_CALLING_AE)
        elif too_many_from_peer(assoc, settings.NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER):
            reject(assoc, schema, "too many associations from this peer")
    finally:
        connection.close()


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
    # do_record_event takes the peer's address from a request's REMOTE_ADDR.
    origin = HttpRequest()
    origin.META["REMOTE_ADDR"] = address
    try:
        with schema_context(schema):
            do_record_event(
                EventType.DICOM_ASSOCIATION_REJECTED,
                request=origin,
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
