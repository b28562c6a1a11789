import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.atna import octet_counted, syslog_message
from audit.models import AuditEvent, AuditExportState, AuditSeal, EventType, Outcome
from audit.selectors import AuditQuery, AuditRow, iter_audit_events, search_audit_events
from audit.syslog import Repository, send_frames

logger = logging.getLogger(__name__)

EXPORT_BATCH = 500


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def do_record_event(
    event_type: EventType,
    *,
    request: HttpRequest | None = None,
    actor: Any = None,
    actor_username: str = "",
    outcome: Outcome = Outcome.SUCCESS,
    object_type: str = "",
    object_id: str = "",
    patient_id: str = "",
    study_instance_uid: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write one audit record in the current tenant's schema.

    Call it inside the transaction of the change it records, so that the
    change and its record commit or roll back together.
    """
    if (
        actor is None
        and request is not None
        and getattr(request, "user", None) is not None
    ):
        actor = request.user if request.user.is_authenticated else None
    return AuditEvent.objects.create(
        event_type=event_type,
        outcome=outcome,
        actor_id=getattr(actor, "pk", None),
        actor_username=actor_username or getattr(actor, "username", ""),
        source_ip=client_ip(request),
        object_type=object_type,
        object_id=str(object_id),
        patient_id=patient_id,
        study_instance_uid=study_instance_uid,
        detail=detail or {},
    )


@dataclass(frozen=True)
class ExportResult:
    sent: int
    error: str = ""


def _export_state() -> AuditExportState:
    state, _ = AuditExportState.objects.get_or_create(pk=1)
    return state


def do_export_audit_messages(
    repository: Repository, batch: int = EXPORT_BATCH
) -> ExportResult:
    """Send the next sealed records of this schema to the ATNA repository.

    The outbox is the hash chain: links after the exported ``seq`` go in
    chain order, and the marker moves only after the repository took them,
    so a repository that is down loses nothing and gets each record at least
    once (again only if this transaction fails after sending).
    """
    _export_state()
    with transaction.atomic():
        # One exporter per schema; another worker skips rather than send twice.
        state = (
            AuditExportState.objects.select_for_update(skip_locked=True)
            .filter(pk=1)
            .first()
        )
        if state is None:
            return ExportResult(0)
        seals = list(
            AuditSeal.objects.filter(seq__gt=state.exported_seq).order_by("seq")[:batch]
        )
        if not seals:
            return ExportResult(0)

        events = AuditEvent.objects.in_bulk([seal.event_id for seal in seals])
        schema = connection.schema_name
        frames = [
            octet_counted(
                syslog_message(
                    events[seal.event_id],
                    seal.seq,
                    schema,
                    hostname=settings.NIMBUS_ATNA_HOSTNAME,
                    app_name=settings.NIMBUS_ATNA_APP_NAME,
                    source_id=settings.NIMBUS_ATNA_SOURCE_ID,
                )
            )
            # A record deleted behind the triggers' back cannot be sent;
            # verify_audit reports it.
            for seal in seals
            if seal.event_id in events
        ]
        state.last_attempt_at = timezone.now()
        try:
            send_frames(repository, frames)
        except OSError as error:
            state.last_error = f"{repository}: {error}"[:500]
            state.save()
            logger.warning("audit export to %s failed: %s", repository, error)
            return ExportResult(0, state.last_error)

        state.exported_seq = seals[-1].seq
        state.exported_at = state.last_attempt_at
        state.last_error = ""
        state.save()
        return ExportResult(len(frames))


def _record_audit_trail_read(
    event_type: EventType, request: HttpRequest, query: AuditQuery, **detail: int
) -> None:
    with transaction.atomic():
        do_record_event(
            event_type,
            request=request,
            object_type="audit_trail",
            patient_id=query.patient_id,
            study_instance_uid=query.study_instance_uid,
            detail={**query.as_detail(), **detail},
        )


def do_search_audit_trail(
    request: HttpRequest, query: AuditQuery, offset: int, limit: int
) -> list[AuditRow]:
    """One page of the helpdesk search; the search itself is audited."""
    _record_audit_trail_read(EventType.AUDIT_SEARCHED, request, query, offset=offset)
    return search_audit_events(query, offset, limit)


def do_export_audit_trail(
    request: HttpRequest, query: AuditQuery, max_rows: int
) -> Iterator[AuditRow]:
    """Every matching row up to ``max_rows``, for a CSV; audited before the first."""
    _record_audit_trail_read(EventType.AUDIT_EXPORTED, request, query, limit=max_rows)
    return iter_audit_events(query, max_rows)
