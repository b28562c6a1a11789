"""Credentials presented where they do not belong: refused and recorded.

A session cookie issued by another tenant (``accounts.session_store``), any
credential sent to a host no tenant has, and websocket handshakes refused
for their Origin or credentials are ACCESS_DENIED records in the trail of
the host's tenant (the public schema's for an unknown host), with the
source address and the reason, never patient data.

One record per source address, reason and credential each minute: a page
replayed with a stolen cookie loads dozens of resources, and each would
otherwise be a record of the same attempt. A different credential is a new
attempt and recorded. Every refusal is logged on ``nimbus.security``.
"""

import hashlib
import logging
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest
from django_tenants.utils import schema_context

from audit.actions import do_record_event
from audit.models import EventType, Outcome

security_logger = logging.getLogger("nimbus.security")
logger = logging.getLogger(__name__)

RECORD_WINDOW_SECONDS = 60

SESSION_OF_ANOTHER_HOST = "session of another host"
UNKNOWN_HOST = "unknown host"


def record_wrong_host(
    schema: str,
    *,
    address: str | None,
    reason: str,
    credential: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Record one refused credential in ``schema``'s trail (at most once a minute)."""
    security_logger.warning(
        "credential refused: %s (tenant %s, from %s)", reason, schema, address
    )
    digest = hashlib.sha256(credential.encode()).hexdigest()[:16]
    key = f"nimbus:wrong-host:{schema}:{address}:{reason}:{digest}"
    try:
        if not cache.add(key, 1, RECORD_WINDOW_SECONDS):
            return
        request = HttpRequest()
        request.META["REMOTE_ADDR"] = address or ""
        with schema_context(schema):
            do_record_event(
                EventType.ACCESS_DENIED,
                request=request,
                outcome=Outcome.FAILURE,
                object_type="session",
                detail={"reason": reason, **(detail or {})},
            )
    except Exception:  # the refusal stands even if the trail cannot be written
        logger.exception("refused credential not audited")
