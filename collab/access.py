"""Access helpers of second opinions: the share decides, outsiders get 404.

A share opens exactly one study of the owner tenant to the members of one
group of the receiving tenant, while it is active and not past its expiry;
both are checked at every request, so revoking or expiry ends access at the
next one. The study is read from the owner's schema here and nowhere else,
filtered by the share's Study Instance UID, and the connection returns to
the reader's schema before anything else happens. Every refusal is an
ACCESS_DENIED record in the refused user's tenant, and in the owner's
tenant too when it concerns one of its shares.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from collab.models import (
    CollaborationMember,
    SecondOpinion,
    SecondOpinionQuerySet,
    Side,
)
from pacs.access import UID_MAX
from pacs.models import Instance, Series, Study
from tenants.models import Tenant


def refuse(
    request: HttpRequest,
    object_type: str,
    object_id: str,
    share: SecondOpinion | None = None,
) -> Http404:
    """Record the refusal where it happened (and at the owner) and return the 404."""
    user = request.user
    detail = {"answer": 404, "via": "second-opinion"}
    if share is not None:
        detail["share"] = share.pk
    uid = share.study_instance_uid if share else object_id.split("/", 1)[0]
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        outcome=Outcome.FAILURE,
        object_type=object_type,
        object_id=object_id[:128],
        study_instance_uid=uid[:UID_MAX],
        detail=detail,
    )
    if share is not None and share.owner_tenant_id != request.tenant.pk:
        with tenant_context(share.owner_tenant):
            do_record_event(
                EventType.ACCESS_DENIED,
                actor_username=remote_name_of(user, request.tenant),
                outcome=Outcome.FAILURE,
                object_type=object_type,
                object_id=object_id[:128],
                study_instance_uid=uid[:UID_MAX],
                detail={**detail, "tenant": request.tenant.schema_name},
            )
    return Http404(_("No such second opinion."))


def remote_name_of(user: User, tenant: Tenant) -> str:
    """How a user is named in the other tenant's trail: ``user@schema``."""
    username = user.username if user.is_authenticated else "anonymous"
    return f"{username}@{tenant.schema_name}"


def is_member(user: User, share: SecondOpinion) -> bool:
    """A radiologist of the receiving tenant in the share's group."""
    if not (user.is_authenticated and user.is_active and user.reads_studies):
        return False
    return CollaborationMember.objects.filter(
        group_id=share.receiving_group_id, user_id=user.pk
    ).exists()


def _shares() -> SecondOpinionQuerySet:
    return SecondOpinion.objects.select_related(
        "owner_tenant", "receiving_tenant", "receiving_group"
    )


def get_incoming_share(request: HttpRequest, share_key: UUID) -> SecondOpinion:
    """An open share with this tenant, by its key, for a member of its group."""
    share = (
        _shares()
        .open(timezone.now())
        .filter(key=share_key, receiving_tenant=request.tenant)
        .first()
    )
    if share is None or not is_member(request.user, share):
        raise refuse(request, "second_opinion", str(share_key), share)
    return share


def get_outgoing_share(request: HttpRequest, share_key: UUID) -> SecondOpinion:
    """A share of this tenant's study, for its clinical readers; any state."""
    user = request.user
    share = _shares().filter(key=share_key, owner_tenant=request.tenant).first()
    if share is None or not (user.is_active and user.reads_studies):
        raise refuse(request, "second_opinion", str(share_key))
    return share


def get_share_for_party(
    request: HttpRequest, share_key: UUID
) -> tuple[SecondOpinion, str]:
    """The share and the side the user is on: the owner's readers or the group."""
    owned = SecondOpinion.objects.filter(
        key=share_key, owner_tenant=request.tenant
    ).exists()
    if owned:
        return get_outgoing_share(request, share_key), Side.OWNER
    return get_incoming_share(request, share_key), Side.RECEIVER


@contextmanager
def in_owner_schema(share: SecondOpinion) -> Iterator[None]:
    """Read from the owner's schema; the reader's comes back on leaving."""
    with tenant_context(share.owner_tenant):
        yield


def shared_study(share: SecondOpinion) -> Study | None:
    """The shared study with its patient, read from the owner's schema."""
    with in_owner_schema(share):
        return (
            Study.objects.select_related("patient")
            .filter(study_instance_uid=share.study_instance_uid)
            .first()
        )


def get_shared_study(
    request: HttpRequest, share: SecondOpinion, study_instance_uid: str
) -> Study:
    study = None
    if study_instance_uid == share.study_instance_uid:
        study = shared_study(share)
    if study is None:
        raise refuse(request, "study", study_instance_uid, share)
    return study


def get_shared_series(
    request: HttpRequest, share: SecondOpinion, study_uid: str, series_uid: str
) -> Series:
    series = None
    if study_uid == share.study_instance_uid:
        with in_owner_schema(share):
            series = (
                Series.objects.select_related("study__patient")
                .filter(
                    study__study_instance_uid=study_uid, series_instance_uid=series_uid
                )
                .first()
            )
    if series is None:
        raise refuse(request, "series", f"{study_uid}/{series_uid}", share)
    return series


def get_shared_instance(
    request: HttpRequest,
    share: SecondOpinion,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
) -> Instance:
    instance = None
    if study_uid == share.study_instance_uid:
        with in_owner_schema(share):
            instance = (
                Instance.objects.select_related("series__study__patient")
                .filter(
                    series__study__study_instance_uid=study_uid,
                    series__series_instance_uid=series_uid,
                    sop_instance_uid=sop_uid,
                )
                .first()
            )
    if instance is None:
        raise refuse(request, "instance", f"{study_uid}/{series_uid}/{sop_uid}", share)
    return instance
