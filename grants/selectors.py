"""Which grants a helpdesk user holds, and which one covers a study."""

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Role, User
from grants.models import HelpdeskGrant
from pacs.models import Study


def is_helpdesk(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role == Role.HELPDESK)


def active_grants(user: User) -> QuerySet[HelpdeskGrant]:
    if not is_helpdesk(user):
        return HelpdeskGrant.objects.none()
    return HelpdeskGrant.objects.active(timezone.now()).filter(helpdesk_user=user)


def granted_studies(user: User) -> QuerySet[Study]:
    """The studies a helpdesk user may read now: granted ones, or all of them."""
    grants = active_grants(user)
    if grants.filter(study=None).exists():
        return Study.objects.all()
    return Study.objects.filter(pk__in=grants.values("study_id"))


def grant_covering(user: User, study: Study) -> HelpdeskGrant | None:
    """The active grant that lets ``user`` read ``study``; the study's own first."""
    return (
        active_grants(user)
        .filter(Q(study=study) | Q(study=None))
        .order_by("study_id", "-expires_at")
        .first()
    )


def grants_held_by(user: User) -> QuerySet[HelpdeskGrant]:
    return HelpdeskGrant.objects.filter(helpdesk_user=user).select_related(
        "study", "granted_by"
    )


def all_grants() -> QuerySet[HelpdeskGrant]:
    return HelpdeskGrant.objects.select_related(
        "helpdesk_user", "study", "granted_by", "revoked_by"
    )


def helpdesk_users() -> QuerySet[User]:
    return User.objects.filter(role=Role.HELPDESK, is_active=True).order_by("username")
