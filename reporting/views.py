from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import Role
from pacs.access import denied
from reporting import actions, selectors
from reporting.selectors import report_state


@login_required
def report_editor(request: HttpRequest, study_uid: str) -> HttpResponse:
    study = selectors.get_readable_study(request.user, study_uid)  # type: ignore[arg-type]
    report = actions.do_read_report(request.user, study, request=request, via="editor")  # type: ignore[arg-type]
    may_write = getattr(request.user, "role", "") == Role.RADIOLOGIST
    return render(
        request,
        "reporting/editor.html",
        {
            "study": study,
            "report": report,
            "state": selectors.state_for(request.user, report_state(report)),
            "strings": editor_strings(),
            "may_write": may_write,
            "is_referrer": getattr(request.user, "role", "") == Role.REFERRER,
            "pick_lists": selectors.pick_lists() if may_write else {},
            "macros": selectors.macro_names() if may_write else [],
            "lock_seconds": actions.LOCK_SECONDS,
        },
    )


@login_required
def report_versions(request: HttpRequest, study_uid: str) -> HttpResponse:
    """Every saved version, each with the lines it changed."""
    if getattr(request.user, "role", "") != Role.RADIOLOGIST:
        raise denied(request.user, "report_version", study_uid, _("No such study."))  # type: ignore[arg-type]
    study = selectors.get_readable_study(request.user, study_uid)  # type: ignore[arg-type]
    report = actions.do_read_report(
        request.user, study, request=request, via="versions"
    )  # type: ignore[arg-type]
    return render(
        request,
        "reporting/versions.html",
        {"study": study, "report": report, "rows": selectors.version_diffs(report)},
    )


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    """A user's notifications: critical findings to acknowledge."""
    return render(
        request,
        "reporting/notifications.html",
        {"notifications": selectors.notifications_for(request.user)},  # type: ignore[arg-type]
    )


@login_required
@require_POST
def acknowledge(request: HttpRequest, study_uid: str) -> HttpResponse:
    if getattr(request.user, "role", "") != Role.REFERRER:
        raise Http404(_("No such study."))
    study = selectors.get_readable_study(request.user, study_uid)  # type: ignore[arg-type]
    try:
        actions.do_acknowledge_critical_finding(request.user, study, request=request)  # type: ignore[arg-type]
    except actions.NothingToAcknowledge:
        pass  # Acknowledged meanwhile (another tab, a colleague): nothing to do.
    # The referrer portal's pages post here too and want to be back there.
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("reporting:notifications")


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
        "issue_preliminary": _("Issue as preliminary"),
        "issue_changes": _("Issue the changes as preliminary"),
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
        "lock_mine": _("You are editing this report."),
        "lock_other": _("%(user)s is editing; you are watching read-only."),
        "lock_free": _("Nobody is editing this report."),
        "take_over": _("Edit"),
        "critical_flagged": _("Critical finding flagged by %(user)s"),
        "critical_notified": _("Notified: %(users)s"),
        "critical_nobody": _(
            "No referring clinician in Nimbus to notify: telephone them."
        ),
        "critical_acknowledged": _("Acknowledged by %(user)s on %(date)s"),
        "critical_waiting": _("Not acknowledged yet"),
        "addendum_heading": _("Addendum %(number)s"),
        "addendum_signed": _("signed by %(user)s on %(date)s"),
        "image_reference": _("Image %(number)s"),
        "image_label": _("Image %(number)s: frame %(frame)s"),
        "no_key_images": _("No key images marked in the viewer yet."),
        "macro_unknown": _("No macro called “%(name)s”."),
    }
