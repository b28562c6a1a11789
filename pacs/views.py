from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.access import studies_for
from pacs.forms import WorklistFilterForm
from pacs.paging import get_page
from pacs.selectors import worklist
from reading.selectors import is_tenant_admin
from referrals.selectors import is_referrer

PAGE_SIZE = 50


@login_required
def worklist_view(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    # The tenant host's home is the referrer's portal: their shared studies.
    if is_referrer(user):
        return redirect("referrals:home")

    form = WorklistFilterForm(request.GET or None)
    query = form.to_filter()
    studies = worklist(studies_for(user), query, user)
    page = get_page(studies, request.GET.get("page"), PAGE_SIZE)
    do_record_event(
        EventType.WORKLIST_SEARCHED,
        request=request,
        detail={k: str(v) for k, v in query.__dict__.items() if v},
    )
    return render(
        request,
        "pacs/worklist.html",
        {
            "form": form,
            "page": page,
            "sort": query.sort,
            # The filters, ready for "sort=" (and "page=") to follow.
            "query_prefix": _prefix(_without(request, "sort", "page")),
            # Only radiologists work the queue; helpdesk staff reading under
            # a grant see the studies, not who reads them.
            "shows_queue": user.reads_studies,
            "manages_queue": is_tenant_admin(user),
            "next": request.get_full_path(),
        },
    )


def _prefix(query: str) -> str:
    return f"{query}&" if query else ""


def _without(request: HttpRequest, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()
