"""Read-only queries of second opinions: the directory and the two lists."""

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from collab.access import shared_study
from collab.models import CollaborationGroup, SecondOpinion
from pacs.models import Study
from tenants.models import Tenant


@dataclass(frozen=True)
class ShareRow:
    """A share with its study, as one side lists it."""

    share: SecondOpinion
    study: Study | None
    state: str


def directory(tenant: Tenant) -> QuerySet[CollaborationGroup]:
    """Groups of other active tenants that take second-opinion requests."""
    return (
        CollaborationGroup.objects.filter(accepts_requests=True, tenant__is_active=True)
        .exclude(tenant=tenant)
        .select_related("tenant")
    )


def outgoing_shares(tenant: Tenant, user: User) -> list[ShareRow]:
    """This tenant's shares, for its clinical readers, newest first."""
    if not user.reads_studies:
        return []
    shares = list(
        SecondOpinion.objects.filter(owner_tenant=tenant).select_related(
            "receiving_tenant", "receiving_group"
        )
    )
    studies = Study.objects.select_related("patient").in_bulk(
        [s.study_instance_uid for s in shares], field_name="study_instance_uid"
    )
    now = timezone.now()
    return [
        ShareRow(s, studies.get(s.study_instance_uid), s.state_at(now)) for s in shares
    ]


def incoming_shares(tenant: Tenant, user: User) -> list[ShareRow]:
    """Open shares with a group of this tenant that ``user`` belongs to.

    Each study is read from its owner's schema, one share at a time: the
    list is short (a group's open requests) and no other query crosses.
    """
    if not (user.is_authenticated and user.reads_studies):
        return []
    now = timezone.now()
    shares = (
        SecondOpinion.objects.open(now)
        .filter(receiving_tenant=tenant, receiving_group__members__user_id=user.pk)
        .select_related("owner_tenant", "receiving_group")
        .distinct()
    )
    return [ShareRow(s, shared_study(s), s.state_at(now)) for s in shares]
