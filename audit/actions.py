from typing import Any

from django.http import HttpRequest

from audit.models import AuditEvent, EventType, Outcome


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
