"""The patient's pages: the link and its code, then own signed reports and images.

Nothing here uses a Django user. ``open_link`` checks the e-mailed code and
puts the link's id in a fresh, short session; every other view goes through
``patient_view``, which loads the link again on each request (so revoking or
expiry ends access at once) and hands it to the access helpers in
patients.selectors.
"""

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from patients import actions, selectors
from patients.dicomdir import build_file_set, stream_zip
from patients.forms import CodeForm
from patients.models import PatientLink
from reporting.exports import report_pdf as render_report_pdf
from reporting.selectors import report_text_with_addenda
from viewer.cache import cached_render
from viewer.frame_query import FrameQuery, InvalidRenderOption, InvalidWindow
from viewer.selectors import CT_PRESETS, ordered_instances, study_series
from viewer.views import png_response

PatientView = Callable[..., HttpResponse]


def _unusable_link(request: HttpRequest) -> HttpResponse:
    # The same page and status for a guessed, expired, revoked or locked
    # link: the answer tells a stranger nothing about which it was.
    return render(request, "patients/link_unusable.html", status=404)


def patient_view(view: PatientView) -> PatientView:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        link = selectors.session_link(request)
        if link is None:
            _note_ended_session(request)
            return render(request, "patients/session_ended.html", status=403)
        return view(request, link, *args, **kwargs)

    return wrapper


def _note_ended_session(request: HttpRequest) -> None:
    """A patient session whose link was revoked, locked or ran out: audited once."""
    opened = request.session.pop(selectors.SESSION_KEY, None)
    if not isinstance(opened, dict):
        return
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        actor_username=f"patient-link:{opened.get('id')}",
        outcome=Outcome.FAILURE,
        object_type="path",
        object_id=request.path_info[:128],
        detail={"answer": 403, "via": "patient_link", "reason": "link ended"},
    )


def open_link(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the code page; POST sends a code or checks one."""
    link = selectors.link_by_token(token)
    if link is None or not link.is_usable(timezone.now()):
        return _unusable_link(request)

    notice = error = ""
    if request.method == "POST" and request.POST.get("action") == "send":
        try:
            actions.do_send_patient_code(request, link.pk)
            notice = _("We sent a code to the e-mail address the hospital has for you.")
        except actions.CodeNotSent:
            notice = _(
                "A code was sent a moment ago. Wait a minute, or use the last code."
            )
    elif request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid() and actions.do_check_patient_code(
            request, link.pk, form.cleaned_data["code"]
        ):
            actions.do_open_patient_session(request, link)
            return redirect("patients:home")
        link.refresh_from_db()
        if not link.is_usable(timezone.now()):
            return _unusable_link(request)
        error = _("This code is not right, or it has expired.")
    return render(
        request,
        "patients/link.html",
        {
            "form": CodeForm(),
            "notice": notice,
            "error": error,
            "code_sent": bool(link.code_hash),
        },
    )


@require_GET
@patient_view
def home(request: HttpRequest, link: PatientLink) -> HttpResponse:
    return render(
        request,
        "patients/home.html",
        {"patient": link.study.patient, "studies": selectors.patient_studies(link)},
    )


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    actions.do_end_patient_session(request)
    return render(request, "patients/signed_out.html")


@require_GET
@patient_view
def study_report(
    request: HttpRequest, link: PatientLink, study_uid: str
) -> HttpResponse:
    study = selectors.get_patient_study(request, link, study_uid)
    actions.do_record_patient_report_read(request, link, study, via="patient_html")
    return render(
        request,
        "patients/report.html",
        {
            "study": study,
            "patient": study.patient,
            "report": study.report,
            "text": report_text_with_addenda(study.report),
        },
    )


@require_GET
@patient_view
def report_pdf(request: HttpRequest, link: PatientLink, study_uid: str) -> HttpResponse:
    study = selectors.get_patient_study(request, link, study_uid)
    body = render_report_pdf(study.report)
    actions.do_record_patient_report_read(request, link, study, via="patient_pdf")
    response = HttpResponse(body, content_type="application/pdf")
    name = _file_name("report", study, "pdf")
    response["Content-Disposition"] = f'inline; filename="{name}"'
    return response


@require_GET
@patient_view
def viewer(request: HttpRequest, link: PatientLink, study_uid: str) -> HttpResponse:
    study = selectors.get_patient_study(request, link, study_uid)
    series_list = [
        s for s in study_series(study) if s.number_of_series_related_instances
    ]
    actions.do_record_patient_study_opened(request, link, study)
    slot = "__series__"
    config = {
        "seriesUrl": reverse("patients:series", args=[study_uid, slot]),
        "slot": slot,
        "presets": _presets(series_list),
        "labels": {
            "position": _("Image %(n)s of %(total)s"),
            "loading": _("Loading…"),
            "failed": _("The image could not be loaded."),
        },
    }
    return render(
        request,
        "patients/viewer.html",
        {"study": study, "series_list": series_list, "config": config},
    )


def _presets(series_list: list[Any]) -> list[dict[str, Any]]:
    presets: list[dict[str, Any]] = [
        {"key": "default", "label": _("As stored"), "center": None, "width": None}
    ]
    if any(series.modality == "CT" for series in series_list):
        presets += [
            {
                "key": preset.key,
                "label": str(preset.label),
                "center": preset.center,
                "width": preset.width,
            }
            for preset in CT_PRESETS
        ]
    return presets


@require_GET
@patient_view
def series_images(
    request: HttpRequest, link: PatientLink, study_uid: str, series_uid: str
) -> JsonResponse:
    series = selectors.get_patient_series(request, link, study_uid, series_uid)
    images = [
        reverse(
            "patients:frame",
            args=[study_uid, series_uid, instance.sop_instance_uid, frame],
        )
        for instance in ordered_instances(series).defer("metadata")
        if instance.pixel_status == "ok"
        for frame in range(1, max(instance.number_of_frames, 1) + 1)
    ]
    return JsonResponse({"images": images})


@require_GET
@patient_view
def frame(
    request: HttpRequest,
    link: PatientLink,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame: int,
) -> HttpResponse:
    instance = selectors.get_patient_instance(
        request, link, study_uid, series_uid, sop_uid
    )
    if not 1 <= frame <= max(instance.number_of_frames, 1):
        raise Http404(_("No such frame."))
    try:
        query = FrameQuery.from_params(request.GET)
    except (InvalidWindow, InvalidRenderOption):
        return HttpResponseBadRequest(content_type="text/plain; charset=utf-8")
    rendered = cached_render(instance, frame - 1, query)
    actions.do_record_patient_frames_viewed(request, link, instance.series)
    return png_response(rendered)


@require_GET
@patient_view
def download(request: HttpRequest, link: PatientLink, study_uid: str) -> HttpResponse:
    """The study's stored files and a DICOMDIR, as a ZIP that streams."""
    study = selectors.get_patient_study(request, link, study_uid)
    instances = list(selectors.study_instances(study).defer("metadata"))
    dicomdir, members = build_file_set(instances)
    actions.do_record_patient_download(
        request, link, study, len(members), sum(i.file_size for i in instances)
    )
    response = StreamingHttpResponse(
        stream_zip(dicomdir, members), content_type="application/zip"
    )
    name = _file_name("images", study, "zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _file_name(prefix: str, study: Any, extension: str) -> str:
    # An accession number is free text from the RIS: keep it out of the header syntax.
    label = re.sub(r"[^A-Za-z0-9._-]", "_", study.accession_number or str(study.pk))
    return f"{prefix}-{label}.{extension}"
