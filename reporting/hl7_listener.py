"""The edge of the HL7 listener: one received order message in, its ACK out.

The tenant of a message is the one the listener was started for
(``--tenant`` or NIMBUS_HL7_TENANT), else the one whose schema name or AE
title equals MSH-6 (receiving facility), compared without case. Nimbus
writes its tenant's schema name in MSH-4 of what it sends, so a RIS answers
to the same name.
"""

import logging

from django.db.models import Q
from django_tenants.utils import schema_context

from reporting.hl7_inbound import (
    AckCode,
    ErrorCode,
    MessageHeader,
    OrderRefused,
    build_ack,
    decode,
    parse_header,
    read_header,
    read_order,
)
from reporting.orders import do_receive_order
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def answer_order_message(frame: bytes, *, tenant_schema: str = "") -> bytes:
    """Apply one ORM^O01 or OMI^O23 message and return its ACK, UTF-8 encoded.

    Every failure becomes a refusing ACK, so one bad message never ends the
    connection: AR for what is not an order Nimbus reads or has no tenant,
    AE for an order it cannot apply, AE with code 207 for an unexpected error.
    """
    header: MessageHeader | None = None
    try:
        message = parse_header(decode(frame))
        header = read_header(message)
        order = read_order(message)
        tenant = _tenant_of(header, tenant_schema)
        with schema_context(tenant.schema_name):
            do_receive_order(order)
        ack = build_ack(header, AckCode.ACCEPT)
    except OrderRefused as refusal:
        logger.warning(
            "HL7 message %s refused with %s: %s",
            header.message_control_id if header else "(unreadable)",
            refusal.ack_code,
            refusal.error_code,
        )
        ack = build_ack(
            header, refusal.ack_code, text=refusal.text, error_code=refusal.error_code
        )
    except Exception:
        logger.exception("HL7 order message could not be applied")
        ack = build_ack(
            header,
            AckCode.ERROR,
            text="Nimbus could not store the order; send it again later.",
            error_code=ErrorCode.INTERNAL_ERROR,
        )
    return ack.encode("utf-8")


def _tenant_of(header: MessageHeader, tenant_schema: str) -> Tenant:
    facility = tenant_schema or header.receiving_facility
    tenant = (
        Tenant.objects.filter(is_active=True)
        .exclude(schema_name="public")
        .filter(Q(schema_name__iexact=facility) | Q(ae_title__iexact=facility))
        .first()
        if facility
        else None
    )
    if tenant is None:
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNKNOWN_KEY,
            f"No tenant is called {facility[:64]!r} (MSH-6, receiving facility).",
        )
    return tenant
