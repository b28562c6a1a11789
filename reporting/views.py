from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.models import Role
from pacs.access import get_study_for_user
from reporting.actions import do_read_report
from reporting.selectors import report_state


@login_required
def report_editor(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = get_study_for_user(request.user, study_uid)  # type: ignore[arg-type]
    report = do_read_report(request.user, study, request=request, via="editor")  # type: ignore[arg-type]
    return render(
        request,
        "reporting/editor.html",
        {
            "study": study,
            "report": report,
            "state": report_state(report),
            "strings": editor_strings(),
            "may_write": getattr(request.user, "role", "") == Role.RADIOLOGIST,
        },
    )


def editor_strings() -> dict[str, str]:
    """Every text the editor's script shows, translated for this request."""
    return {
        "saving": _("Saving…"),
        "saved": _("All changes saved"),
        "unsaved": _("Unsaved changes"),
        "save_failed": _("Not saved: %(error)s"),
        "offline": _("Live updates paused, reconnecting…"),
        "status_draft": _("Draft"),
        "status_preliminary": _("Preliminary"),
        "status_signed": _("Signed"),
        "signed_by": _("Signed by %(user)s on %(date)s"),
        "delivery_none": _("Not sent yet"),
        "delivery_pending": _("Waiting to be sent to the RIS"),
        "delivery_retrying": _("RIS unreachable, retrying (attempts: %(attempts)s)"),
        "delivery_delivered": _("Delivered to RIS"),
        "delivery_rejected": _("Refused by the RIS: %(error)s"),
        "delivery_no_ris": _("No RIS configured; will be sent once one is"),
        "sign_failed": _("Not signed: %(error)s"),
        "otp_required": _("Enter the code from your authenticator app."),
        "request_failed": _("The server did not answer."),
    }
