"""The worklist's hook: shared-in studies and news of answers (collab/_shared_in.html).

The worklist's view is the reading queue's; a template tag lets the
receiving group's worklist show its shared-in studies with one include.
"""

from django import template
from django.db.models import Sum
from django.http import HttpRequest

from audit.actions import do_record_event
from audit.models import EventType
from collab.models import SecondOpinion
from collab.selectors import ShareRow, incoming_shares

register = template.Library()


def _tenant_and_user(request: HttpRequest) -> tuple[object, object] | None:
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if tenant is None or user is None or not user.is_authenticated:
        return None
    return tenant, user


@register.simple_tag
def shared_in_for(request: HttpRequest) -> list[ShareRow]:
    """Open shares with the user's groups, recorded as a worklist look."""
    known = _tenant_and_user(request)
    if known is None:
        return []
    rows = [row for row in incoming_shares(*known) if row.study is not None]  # type: ignore[arg-type]
    if rows:
        do_record_event(
            EventType.WORKLIST_SEARCHED,
            request=request,
            detail={"via": "second-opinions", "shares": [r.share.pk for r in rows]},
        )
    return rows


@register.simple_tag
def second_opinion_news(request: HttpRequest) -> int:
    """Comments from the other tenants that this tenant's readers have not opened."""
    known = _tenant_and_user(request)
    if known is None or not known[1].reads_studies:  # type: ignore[attr-defined]
        return 0
    unread = SecondOpinion.objects.filter(owner_tenant=known[0]).aggregate(
        n=Sum("unread_by_owner")
    )["n"]
    return unread or 0
