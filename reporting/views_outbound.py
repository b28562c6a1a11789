"""The outbound queue page: every HL7 message to the RIS, its state, a resend."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from reporting.models import DeliveryState
from reporting.outbound import (
    MessageNotResendable,
    do_resend_message,
    get_message_for_user,
    may_resend,
    may_see_queue,
    outbound_messages,
    result_status,
)

PAGE_SIZE = 100


@login_required
def outbound_queue(request: HttpRequest) -> HttpResponse:
    if not may_see_queue(request.user):  # type: ignore[arg-type]
        raise Http404(_("No such page."))
    state = request.GET.get("state", "")
    page = Paginator(outbound_messages(state), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [
        {
            "message": message,
            "result_status": result_status(message),
            "may_resend": may_resend(message),
        }
        for message in page
    ]
    response = render(
        request,
        "reporting/outbound.html",
        {
            "rows": rows,
            "page": page,
            "state": state,
            "states": DeliveryState.choices,
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def resend_message(request: HttpRequest, message_id: int) -> HttpResponse:
    message = get_message_for_user(request.user, message_id)  # type: ignore[arg-type]
    try:
        do_resend_message(request.user, message, request=request)  # type: ignore[arg-type]
    except MessageNotResendable:
        messages.error(request, _("A delivered message is not sent again."))
    else:
        messages.success(
            request,
            _("Message %(id)s is queued again.") % {"id": message.message_control_id},
        )
    return redirect("reporting:outbound")
