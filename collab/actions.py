"""Requesting, answering, revoking and expiring second opinions.

Each step is written in both tenants' audit trails, in the same transaction
as the change: the acting user's own tenant names them as the actor, the
other tenant as ``user@schema`` (its users table does not know them).
"""

import datetime
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from collab.access import remote_name_of
from collab.models import (
    CollaborationGroup,
    SecondOpinion,
    SecondOpinionComment,
    ShareState,
    Side,
)
from pacs.models import Series, Study
from tenants.models import Tenant

# One FRAMES_VIEWED per reader and series in this many seconds, on each side,
# as the viewer does for a tenant's own readers (viewer/actions.py).
FRAMES_VIEWED_INTERVAL_SECONDS = 5 * 60


class ShareNotOpen(Exception):
    """Revoked or expired already."""


def _share_detail(share: SecondOpinion) -> dict[str, Any]:
    return {
        "share": share.pk,
        "owner_tenant": share.owner_tenant.schema_name,
        "receiving_tenant": share.receiving_tenant.schema_name,
        "group": share.receiving_group.name,
        "expires_at": share.expires_at.isoformat(),
    }


def _record_on_both_sides(
    event_type: EventType,
    share: SecondOpinion,
    *,
    request: HttpRequest | None,
    here: Tenant,
    actor: User | None,
    patient_id: str = "",
    object_type: str = "second_opinion",
    object_id: str = "",
    detail: dict[str, Any] | None = None,
    there_event_type: EventType | None = None,
) -> None:
    """One record in this tenant's trail (``here``) and one in the other's."""
    there = (
        share.receiving_tenant
        if here.pk == share.owner_tenant_id
        else share.owner_tenant
    )
    record = {
        "object_type": object_type,
        "object_id": object_id or str(share.pk),
        "patient_id": patient_id,
        "study_instance_uid": share.study_instance_uid,
        "detail": {**_share_detail(share), **(detail or {})},
    }
    if actor is None:
        do_record_event(event_type, actor_username="nimbus", **record)
    else:
        do_record_event(event_type, request=request, actor=actor, **record)
    with tenant_context(there):
        do_record_event(
            there_event_type or event_type,
            actor_username=remote_name_of(actor, here) if actor else "nimbus",
            **record,
        )


def do_request_second_opinion(
    request: HttpRequest,
    study: Study,
    group: CollaborationGroup,
    note: str,
    expires_at: datetime.datetime,
) -> SecondOpinion:
    """Share ``study`` with ``group`` of another tenant until ``expires_at``."""
    user = request.user
    with transaction.atomic():
        share = SecondOpinion.objects.create(
            owner_tenant=request.tenant,
            study_instance_uid=study.study_instance_uid,
            requested_by_id=user.pk,
            requested_by_username=user.username,
            receiving_tenant=group.tenant,
            receiving_group=group,
            note=note,
            expires_at=expires_at,
        )
        _record_on_both_sides(
            EventType.SECOND_OPINION_REQUESTED,
            share,
            request=request,
            here=request.tenant,
            actor=user,
            patient_id=study.patient.patient_id,
            there_event_type=EventType.SECOND_OPINION_RECEIVED,
        )
    return share


def do_revoke_second_opinion(request: HttpRequest, share_id: int) -> SecondOpinion:
    """End a share at once: the group's next request is refused."""
    with transaction.atomic():
        share = (
            SecondOpinion.objects.select_for_update(of=("self",))
            .select_related("owner_tenant", "receiving_tenant", "receiving_group")
            .get(pk=share_id, owner_tenant=request.tenant)
        )
        now = timezone.now()
        if not share.is_open(now):
            raise ShareNotOpen
        share.state = ShareState.REVOKED
        share.ended_at = now
        share.ended_by_username = request.user.username
        share.save(update_fields=["state", "ended_at", "ended_by_username"])
        _record_on_both_sides(
            EventType.SECOND_OPINION_REVOKED,
            share,
            request=request,
            here=request.tenant,
            actor=request.user,
        )
    return share


def do_record_expired_second_opinions() -> int:
    """Mark shares past their expiry as expired, recorded on both sides.

    Access already ended at the expiry (collab.access checks it on every
    request); this writes the fact down. Runs by beat in the public schema;
    the row locks keep two workers from recording one expiry twice.
    """
    now = timezone.now()
    recorded = 0
    with transaction.atomic():
        expired = (
            SecondOpinion.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("owner_tenant", "receiving_tenant", "receiving_group")
            .filter(state=ShareState.ACTIVE, expires_at__lte=now)
        )
        for share in expired:
            share.state = ShareState.EXPIRED
            share.ended_at = now
            share.save(update_fields=["state", "ended_at"])
            with tenant_context(share.owner_tenant):
                _record_on_both_sides(
                    EventType.SECOND_OPINION_EXPIRED,
                    share,
                    request=None,
                    here=share.owner_tenant,
                    actor=None,
                )
            recorded += 1
    return recorded


def do_post_comment(
    request: HttpRequest, share: SecondOpinion, side: str, body: str
) -> SecondOpinionComment:
    """Add a comment to the share's thread; the other side gets a notice."""
    unread = "unread_by_receiver" if side == Side.OWNER else "unread_by_owner"
    with transaction.atomic():
        comment = SecondOpinionComment.objects.create(
            share=share,
            side=side,
            author_id=request.user.pk,
            author_username=request.user.username,
            body=body,
        )
        SecondOpinion.objects.filter(pk=share.pk).update(**{unread: F(unread) + 1})
        _record_on_both_sides(
            EventType.SECOND_OPINION_COMMENTED,
            share,
            request=request,
            here=request.tenant,
            actor=request.user,
            object_type="second_opinion_comment",
            object_id=str(comment.pk),
        )
    return comment


def do_read_thread(request: HttpRequest, share: SecondOpinion, side: str) -> None:
    """Record that the user read the thread; their side's notice is cleared."""
    unread = "unread_by_owner" if side == Side.OWNER else "unread_by_receiver"
    with transaction.atomic():
        SecondOpinion.objects.filter(pk=share.pk).update(**{unread: 0})
        _record_on_both_sides(
            EventType.SECOND_OPINION_READ,
            share,
            request=request,
            here=request.tenant,
            actor=request.user,
        )


def do_record_shared_study_opened(
    request: HttpRequest, share: SecondOpinion, study: Study
) -> None:
    with transaction.atomic():
        _record_on_both_sides(
            EventType.STUDY_OPENED,
            share,
            request=request,
            here=request.tenant,
            actor=request.user,
            patient_id=study.patient.patient_id,
            object_type="study",
            object_id=study.study_instance_uid,
            detail={"via": "second-opinion"},
        )


def do_record_shared_frames_viewed(
    request: HttpRequest, share: SecondOpinion, series: Series
) -> bool:
    """Record on both sides that the reader viewed the series, unless done lately."""
    # cache.add is atomic (SET NX): parallel frames write one record per interval.
    key = f"collab:frames-viewed:{share.pk}:{request.user.pk}:{series.pk}"
    if not cache.add(key, 1, timeout=FRAMES_VIEWED_INTERVAL_SECONDS):
        return False
    with transaction.atomic():
        _record_on_both_sides(
            EventType.FRAMES_VIEWED,
            share,
            request=request,
            here=request.tenant,
            actor=request.user,
            patient_id=series.study.patient.patient_id,
            object_type="series",
            object_id=series.series_instance_uid,
            detail={"via": "second-opinion"},
        )
    return True


def do_offer_group(
    tenant: Tenant, name: str, members: list[User]
) -> CollaborationGroup:
    """Create or update a tenant's second-opinion group and add ``members``.

    Only radiologists may answer: another role's user is refused by the
    caller. Adding is idempotent; nobody is removed here.
    """
    with transaction.atomic():
        group, _ = CollaborationGroup.objects.get_or_create(tenant=tenant, name=name)
        for user in members:
            group.members.update_or_create(
                user_id=user.pk, defaults={"username": user.username}
            )
    return group
