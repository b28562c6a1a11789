"""Giving, using, revoking and expiring helpdesk access; each step audited."""

import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from grants.models import HelpdeskGrant
from pacs.models import Study


class GrantNotActive(Exception):
    """Revoked or expired already."""


def _grant_detail(grant: HelpdeskGrant) -> dict[str, Any]:
    return {
        "grant": grant.pk,
        "helpdesk_user": grant.helpdesk_user.username,
        "scope": "tenant" if grant.covers_tenant else "study",
        "expires_at": grant.expires_at.isoformat(),
    }


def _record_grant_event(
    event_type: EventType,
    grant: HelpdeskGrant,
    *,
    request: HttpRequest | None = None,
    actor: User | None = None,
    actor_username: str = "",
) -> None:
    study = grant.study
    do_record_event(
        event_type,
        request=request,
        actor=actor,
        actor_username=actor_username,
        object_type="helpdesk_grant",
        object_id=str(grant.pk),
        patient_id=study.patient.patient_id if study else "",
        study_instance_uid=study.study_instance_uid if study else "",
        detail=_grant_detail(grant),
    )


def do_grant_helpdesk_access(
    request: HttpRequest,
    admin: User,
    helpdesk_user: User,
    study: Study | None,
    hours: int,
    reason: str,
) -> HelpdeskGrant:
    """Let ``helpdesk_user`` read ``study`` (or every study) for ``hours``."""
    with transaction.atomic():
        grant = HelpdeskGrant.objects.create(
            helpdesk_user=helpdesk_user,
            study=study,
            reason=reason,
            granted_by=admin,
            expires_at=timezone.now() + datetime.timedelta(hours=hours),
        )
        _record_grant_event(
            EventType.HELPDESK_GRANT_GIVEN, grant, request=request, actor=admin
        )
    return grant


def do_revoke_helpdesk_grant(
    request: HttpRequest, admin: User, grant_id: int
) -> HelpdeskGrant:
    """End a grant at once: the next request of its holder is refused."""
    with transaction.atomic():
        grant = (
            HelpdeskGrant.objects.select_for_update(of=("self",))
            .select_related("helpdesk_user", "study__patient")
            .get(pk=grant_id)
        )
        now = timezone.now()
        if not grant.is_active(now):
            raise GrantNotActive
        grant.revoked_at = now
        grant.revoked_by = admin
        grant.save(update_fields=["revoked_at", "revoked_by"])
        _record_grant_event(
            EventType.HELPDESK_GRANT_REVOKED, grant, request=request, actor=admin
        )
    return grant


def do_record_grant_use(
    user: User, grant: HelpdeskGrant, study: Study, object_type: str, object_id: str
) -> None:
    """One audit record per object a helpdesk user reads, naming the grant."""
    do_record_event(
        EventType.HELPDESK_GRANT_USED,
        actor=user,
        object_type=object_type,
        object_id=object_id[:128],
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={
            "grant": grant.pk,
            "scope": "tenant" if grant.covers_tenant else "study",
        },
    )


def do_record_expired_grants() -> int:
    """Write one HELPDESK_GRANT_EXPIRED record per grant that ran out unrevoked.

    Returns how many were recorded. Run by beat in every tenant's schema; the
    row lock keeps two workers from recording one expiry twice.
    """
    now = timezone.now()
    recorded = 0
    with transaction.atomic():
        expired = (
            HelpdeskGrant.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("helpdesk_user", "study__patient")
            .filter(revoked_at=None, expires_at__lte=now, expiry_recorded_at=None)
        )
        for grant in expired:
            _record_grant_event(
                EventType.HELPDESK_GRANT_EXPIRED, grant, actor_username="nimbus"
            )
            grant.expiry_recorded_at = now
            grant.save(update_fields=["expiry_recorded_at"])
            recorded += 1
    return recorded
