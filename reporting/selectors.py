"""Read-only views of a report, shared by the API, the editor and the websocket."""

import difflib
from typing import Any
from urllib.parse import urlencode

from django.db.models import Case, Q, QuerySet, Value, When
from django.http import Http404
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_tenants.utils import schema_context

from accounts.models import Role, User
from pacs.access import denied, get_study_for_user
from pacs.models import Series, Study
from reporting.models import (
    AddendumStatus,
    Notification,
    NotificationKind,
    OutboundMessage,
    PickList,
    Report,
    ReportMacro,
    ReportTemplate,
    ReportVersion,
    StudyReferral,
)
from tenants.models import Tenant


def latest_message(report: Report) -> OutboundMessage | None:
    return report.messages.order_by("-created_at", "-id").first()


def delivery_state(report: Report) -> dict[str, Any] | None:
    """The state of the report's latest HL7 message, None before signing."""
    message = latest_message(report)
    if message is None:
        return None
    return {
        "state": message.state,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "last_attempt_at": _iso(message.last_attempt_at),
        "delivered_at": _iso(message.delivered_at),
    }


def report_state(report: Report) -> dict[str, Any]:
    """Everything a client shows about a report, as JSON-ready values."""
    versions = [
        {
            "version": version.version,
            "status": version.status,
            "kind": version.kind,
            "addendum": version.addendum.number if version.addendum else None,
            "saved_by": version.saved_by.username if version.saved_by else "",
            "saved_at": _iso(version.saved_at),
        }
        for version in report.versions.select_related("saved_by", "addendum")
    ]
    now = timezone.now()
    holder = report.lock_holder(now)
    issued_at = report.last_issued_at()
    return {
        "study_instance_uid": report.study.study_instance_uid,
        "status": report.status,
        "text": report.text,
        "version": report.version,
        "issued_text": report.text_as_issued,
        "issued_version": report.version_as_issued,
        "unissued_changes": report.has_unissued_changes,
        "versions": versions,
        "signed_by": report.signed_by.username if report.signed_by else "",
        "signed_at": _iso(report.signed_at),
        "delivery": delivery_state(report),
        "preliminary_at": _iso(report.preliminary_at),
        "result_status": report.result_status,
        "lock": {
            "holder": holder.get_username() if holder else "",
            "expires_at": _iso(report.lock_expires_at) if holder else None,
            # Taking the lock leaves the report's version alone, so editors
            # order lock news by when it was read (a websocket's first state
            # may arrive after the answer to a newer lock request).
            "as_of": now.timestamp(),
        },
        "addenda": [
            {
                "number": addendum.number,
                "status": addendum.status,
                "text": addendum.text,
                "signed_by": addendum.signed_by.username if addendum.signed_by else "",
                "signed_at": _iso(addendum.signed_at),
            }
            for addendum in report.addenda.select_related("signed_by")
        ],
        "critical": critical_state(report),
        "image_references": [
            {
                **image_reference_state(reference),
                "issued": issued_at is not None and reference.created_at <= issued_at,
            }
            for reference in report.image_references.all()
        ],
    }


def state_for(user: Any, state: dict[str, Any]) -> dict[str, Any]:
    """What ``user`` may see of a report's state (from ``report_state``).

    Radiologists see everything, the live text included. Anyone else (a
    referrer) sees the report as issued: the text and version of the last
    preliminary issue or of the signature, never an unsigned edit made
    since; signed addenda only; not the history of drafts, nor who is
    editing now.
    """
    if getattr(user, "reads_studies", False):
        return state
    issued = {key: value for key, value in state.items() if key != "issued_text"}
    return {
        **issued,
        "text": state["issued_text"],
        "version": state["issued_version"] or 0,
        "unissued_changes": False,
        "versions": [],
        "lock": {"holder": "", "expires_at": None, "as_of": state["lock"]["as_of"]},
        "addenda": [
            addendum
            for addendum in state["addenda"]
            if addendum["status"] == AddendumStatus.SIGNED
        ],
        "image_references": [
            reference for reference in state["image_references"] if reference["issued"]
        ],
    }


def shows_nothing_new(sent: dict[str, Any] | None, state: dict[str, Any]) -> bool:
    """Whether ``state`` shows nothing new since ``sent`` (the lock's read time aside).

    A referrer's socket hears of every save; what it may see changes only
    when the report is issued, signed, or gains a signed addendum.
    """
    if sent is None:
        return False
    return _without_read_time(sent) == _without_read_time(state)


def _without_read_time(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "lock": {**state["lock"], "as_of": None}}


def critical_state(report: Report) -> dict[str, Any]:
    notifications = report.notifications.select_related(
        "recipient", "acknowledged_by"
    ).order_by("id")
    acknowledged = next((n for n in notifications if n.acknowledged_at), None)
    return {
        "flagged": report.critical_finding,
        "flagged_by": (
            report.critical_flagged_by.username if report.critical_flagged_by else ""
        ),
        "flagged_at": _iso(report.critical_flagged_at),
        "notified": [n.recipient.username for n in notifications],
        "acknowledged_by": (
            acknowledged.acknowledged_by.username
            if acknowledged and acknowledged.acknowledged_by
            else ""
        ),
        "acknowledged_at": _iso(acknowledged.acknowledged_at if acknowledged else None),
    }


def image_reference_state(reference: Any) -> dict[str, Any]:
    return {
        "number": reference.number,
        "series_instance_uid": reference.series_instance_uid,
        "sop_instance_uid": reference.sop_instance_uid,
        "frame": reference.frame_number,
        "window_center": reference.window_center,
        "window_width": reference.window_width,
        "viewer_url": viewer_url(reference),
    }


def viewer_url(reference: Any) -> str:
    """The viewer at the cited frame and window (see docs/viewer.md)."""
    query = {
        "series": reference.series_instance_uid,
        "sop": reference.sop_instance_uid,
        "frame": reference.frame_number,
        "layout": "1x1",
    }
    if reference.window_center is not None and reference.window_width is not None:
        query["wc"] = f"{reference.window_center:g}"
        query["ww"] = f"{reference.window_width:g}"
    base = reverse("viewer:study", args=[reference.study_instance_uid])
    return f"{base}?{urlencode(query)}"


def report_text_with_addenda(report: Report) -> str:
    """The issued text followed by each signed addendum: what leaves Nimbus.

    The RIS, PDF and FHIR exports and the patient's pages read it; an
    unsigned edit of a preliminary report is not part of it.
    """
    parts = [report.text_as_issued]
    for addendum in report.addenda.filter(status=AddendumStatus.SIGNED):
        heading = _("ADDENDUM %(number)s") % {"number": addendum.number}
        parts.append(f"{heading}:\n{addendum.text}")
    return "\n\n".join(parts)


# --- Access -----------------------------------------------------------------------


def get_readable_study(user: User, study_instance_uid: str) -> Study:
    """The study whose report ``user`` may read; 404 for everyone else.

    Radiologists read every study of their tenant; a referrer reads the
    studies referred to them, and only once the report is issued.
    """
    if getattr(user, "role", None) != Role.REFERRER:
        return get_study_for_user(user, study_instance_uid)
    referral = (
        StudyReferral.objects.select_related("study__patient", "study__report")
        .filter(
            referrer=user,
            referrer__is_active=True,
            study__study_instance_uid=study_instance_uid,
        )
        .first()
    )
    report = getattr(referral.study, "report", None) if referral else None
    if referral is None or report is None or not report.visible_to_referrer:
        raise denied(user, "study", study_instance_uid, _("No such study."))
    return referral.study


def get_version(report: Report, number: int) -> ReportVersion:
    version = report.versions.filter(version=number).first()
    if version is None:
        raise Http404(_("No such version."))
    return version


def version_diffs(report: Report) -> list[dict[str, Any]]:
    """Each saved version with the lines it changed from the one before it."""
    rows = []
    previous: dict[int | None, str] = {}
    for version in report.versions.select_related("saved_by", "addendum"):
        key = version.addendum_id
        before = previous.get(key, "")
        lines = [
            {"sign": line[0], "text": line[2:]}
            for line in difflib.ndiff(before.splitlines(), version.text.splitlines())
            if line[:1] in "+- "
        ]
        previous[key] = version.text
        rows.append({"version": version, "lines": lines})
    return rows


# --- Notifications ----------------------------------------------------------------


def notifications_for(user: User) -> QuerySet[Notification]:
    """The user's critical findings, acknowledged or waiting."""
    return Notification.objects.filter(
        recipient=user, kind=NotificationKind.CRITICAL_FINDING
    ).select_related("report__study__patient", "acknowledged_by")


def open_notification_count(user: User) -> int:
    return notifications_for(user).filter(acknowledged_at=None).count()


# --- Templates and macros -----------------------------------------------------


SECTIONS = (
    ("clinical_information", gettext_lazy("Clinical information")),
    ("technique", gettext_lazy("Technique")),
    ("comparison", gettext_lazy("Comparison")),
    ("findings", gettext_lazy("Findings")),
    ("impression", gettext_lazy("Impression")),
)
EMPTY_FIELD = "[[ ]]"


def templates_for_study(study: Study, language: str = "") -> QuerySet[ReportTemplate]:
    """Active templates whose modality and body part fit the study (or any).

    Those written in ``language`` come first, then those of any language,
    then the others.
    """
    series = Series.objects.filter(study=study)
    modalities = set(study.modality_list) | set(
        series.exclude(modality="").values_list("modality", flat=True)
    )
    body_parts = set(
        series.exclude(body_part_examined="").values_list(
            "body_part_examined", flat=True
        )
    )
    fitting = ReportTemplate.objects.filter(
        Q(modality="") | Q(modality__in=modalities),
        Q(body_part="") | Q(body_part__in=[b.upper() for b in body_parts]),
        active=True,
    )
    rank = Case(
        When(language=language, then=Value(0)),
        When(language="", then=Value(1)),
        default=Value(2),
    )
    return fitting.annotate(language_rank=rank).order_by(
        "language_rank", *ReportTemplate._meta.ordering
    )


def render_template(template: ReportTemplate) -> str:
    """The template as report text: a heading per section, each with a field.

    The headings are in the template's language, so a French template reads
    French throughout whoever inserts it.
    """
    parts = []
    with translation.override(template.language or translation.get_language()):
        for field, heading in SECTIONS:
            body = getattr(template, field).strip() or EMPTY_FIELD
            parts.append(f"{str(heading).upper()}:\n{body}")
    return "\n\n".join(parts) + "\n"


def pick_lists() -> dict[str, list[str]]:
    return {p.name: p.choice_list for p in PickList.objects.all()}


def macro_names() -> list[str]:
    return list(ReportMacro.objects.values_list("name", flat=True))


def expand_macro(tenant: Tenant, name: str) -> str | None:
    """The text of the tenant's macro called ``name`` (spoken or typed), or None.

    Case and spacing do not matter: "Normal  Chest" finds "normal chest".
    For the speech engine, on a spoken "macro <name>".
    """
    wanted = " ".join(name.lower().split())
    with schema_context(tenant.schema_name):
        macro = ReportMacro.objects.filter(name__iexact=wanted).first()
        return macro.text if macro else None


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
