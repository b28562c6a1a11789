"""Known remote AEs as gatekeepers: which peers may store (PS3.8 9.3.4, PS3.7 D.3.3.4).

A tenant that turns on "only known peers may store" refuses, at association
time, any association that proposes to store instances (a storage context in
which the requestor may act as SCU) unless the calling AE title is a known
remote AE with ``may_store``.
"""

import logging

from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.service_class import ServiceClass, StorageServiceClass
from pynetdicom.sop_class import uid_to_service_class

from pacs.models import RemoteApplicationEntity
from tenants.models import Tenant

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

# PS3.8 9.3.4 A-ASSOCIATE-RJ: rejected-permanent, service-user,
# calling AE title not recognised.
REJECT_CALLING_AE = (0x01, 0x01, 0x03)


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


def may_store(schema: str, calling_ae_title: str) -> bool:
    """Whether ``calling_ae_title`` may store into the tenant ``schema``."""
    with schema_context(get_public_schema_name()):
        restricted = Tenant.objects.filter(
            schema_name=schema, only_known_peers_may_store=True
        ).exists()
    if not restricted:
        return True
    with schema_context(schema):
        return RemoteApplicationEntity.objects.filter(
            ae_title=calling_ae_title, may_store=True
        ).exists()


def may_retrieve(schema: str, ae_title: str) -> RemoteApplicationEntity | None:
    """The known remote AE ``ae_title`` if instances may be sent to it, else None."""
    with schema_context(schema):
        return RemoteApplicationEntity.objects.filter(
            ae_title=ae_title.strip(), may_retrieve=True
        ).first()


def handle_requested(event: Event) -> None:
    """Refuse a storing association from a peer the tenant does not know.

    Bound after the listener's own EVT_REQUESTED handler, which has already
    chosen the tenant (or rejected the association).
    """
    assoc: Association = event.assoc
    schema = getattr(assoc, "nimbus_schema", None)
    if schema is None or assoc.is_rejected or assoc.is_aborted:
        return
    calling = assoc.requestor.primitive.calling_ae_title.strip()
    try:
        refused = proposes_storage(assoc) and not may_store(schema, calling)
    finally:
        connection.close()
    if not refused:
        return
    security_logger.warning(
        "association rejected: calling AE %r from %s may not store to %s",
        calling,
        assoc.requestor.address,
        schema,
    )
    assoc.acse.send_reject(*REJECT_CALLING_AE)
    assoc.is_rejected = True
    assoc.kill()
