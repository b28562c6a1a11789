from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.translation import gettext as _

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from grants.selectors import is_helpdesk

# A helpdesk user's own account (sign out, session, password) stays writable,
# and so do the helpdesk console's own actions on the bare host (an MFA reset
# request, a connection test: helpdesk/), which touch no clinical data.
WRITABLE_FOR_HELPDESK = ("/accounts/", "/helpdesk/tenants/")
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class HelpdeskReadOnlyMiddleware:
    """Refuse (403, audited) every change a helpdesk user's session asks for.

    A grant lets helpdesk staff read; annotations, key images, warm-ups and
    report changes are clinical work. The API and DICOMweb refuse writes by
    every role but radiologists already (bearer clients included); this also
    covers the viewer's session-only write endpoints.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if (
            request.method not in SAFE_METHODS
            and user is not None
            and is_helpdesk(user)
            and not request.path_info.startswith(WRITABLE_FOR_HELPDESK)
        ):
            do_record_event(
                EventType.ACCESS_DENIED,
                request=request,
                outcome=Outcome.FAILURE,
                object_type="path",
                object_id=request.path_info[:128],
                detail={"answer": 403, "reason": "helpdesk read-only"},
            )
            return HttpResponseForbidden(
                _("Helpdesk access is read-only."),
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
