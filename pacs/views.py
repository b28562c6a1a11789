from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from audit.actions import do_record_event
from audit.models import EventType
from pacs.access import studies_for
from pacs.forms import WorklistFilterForm
from pacs.selectors import worklist
from referrals.selectors import is_referrer

PAGE_SIZE = 50


@login_required
def worklist_view(request: HttpRequest) -> HttpResponse:
    # The tenant host's home is the referrer's portal: their shared studies.
    if is_referrer(request.user):  # type: ignore[arg-type]
        return redirect("referrals:home")

    form = WorklistFilterForm(request.GET or None)
    query = form.to_filter()
    studies = worklist(studies_for(request.user), query)
    page = Paginator(studies, PAGE_SIZE).get_page(request.GET.get("page"))
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
            "query_string": _without(request, "sort", "page"),
        },
    )


def _without(request: HttpRequest, *names: str) -> str:
    params = request.GET.copy()
    for name in names:
        params.pop(name, None)
    return params.urlencode()
