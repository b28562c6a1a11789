"""Patient links: made, revoked, codes sent and checked, and what the patient reads.

Every step writes an audit record in the tenant's trail. The patient has no
user row; records name the link (``patient-link:<id>``) as the actor and
carry the patient ID like any other access to patient data.
"""

import datetime
import secrets
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import Series, Study
from patients.models import PatientLink
from patients.selectors import SESSION_KEY, has_signed_report, hash_link_token

# A new code at most this often, and this many per link: the page must not
# become a way to fill a patient's mailbox.
CODE_RESEND_SECONDS = 60
MAX_CODES_PER_LINK = 10
CODE_DIGITS = 6
# As in the viewer: scrolling a series is one act of viewing.
FRAMES_VIEWED_INTERVAL_SECONDS = 5 * 60


class NoSignedReport(Exception):
    """A link is made only for a study whose report is signed."""


class CodeNotSent(Exception):
    """Asked again too soon, or too often for this link."""


def _record(
    event_type: EventType,
    link: PatientLink,
    *,
    request: HttpRequest | None = None,
    actor: User | None = None,
    study: Study | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    object_type: str = "patient_link",
    object_id: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    study = study or link.study
    do_record_event(
        event_type,
        request=request,
        actor=actor,
        actor_username="" if actor else link.audit_actor,
        outcome=outcome,
        object_type=object_type,
        object_id=object_id or str(link.pk),
        patient_id=link.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={"link": link.pk, **(detail or {})},
    )


def do_create_patient_link(
    request: HttpRequest, user: User, study: Study, email: str, days: int
) -> tuple[PatientLink, str]:
    """A new link for ``study``'s patient; returns it with its raw token.

    The raw token is shown once, to be handed to the patient; only its hash
    is kept.
    """
    if not has_signed_report(study):
        raise NoSignedReport
    raw = secrets.token_urlsafe(32)
    with transaction.atomic():
        link = PatientLink.objects.create(
            study=study,
            patient=study.patient,
            email=email,
            token_hash=hash_link_token(raw),
            created_by=user,
            expires_at=timezone.now() + datetime.timedelta(days=days),
        )
        _record(
            EventType.PATIENT_LINK_CREATED,
            link,
            request=request,
            actor=user,
            detail={"expires_at": link.expires_at.isoformat(), "days": days},
        )
    return link, raw


def do_revoke_patient_link(
    request: HttpRequest, user: User, link_id: int, study: Study
) -> PatientLink | None:
    """Revoke at once: the patient's next request is refused. None if ended."""
    with transaction.atomic():
        link = (
            PatientLink.objects.select_for_update()
            .select_related("patient", "study")
            .filter(pk=link_id, study=study, revoked_at=None)
            .first()
        )
        if link is None:
            return None
        link.revoked_at = timezone.now()
        link.revoked_by = user
        link.save(update_fields=["revoked_at", "revoked_by"])
        _record(EventType.PATIENT_LINK_REVOKED, link, request=request, actor=user)
    return link


def _code_hash(link: PatientLink, code: str) -> str:
    return salted_hmac("nimbus.patients.code", f"{link.pk}:{code}").hexdigest()


def do_send_patient_code(request: HttpRequest, link_id: int) -> None:
    """E-mail a new one-time code for the link; the previous code stops working."""
    now = timezone.now()
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    minutes = settings.NIMBUS_PATIENT_CODE_MINUTES
    with transaction.atomic():
        link = (
            PatientLink.objects.select_for_update()
            .select_related("patient", "study")
            .get(pk=link_id)
        )
        recent = link.last_code_sent_at and (
            now - link.last_code_sent_at
        ) < datetime.timedelta(seconds=CODE_RESEND_SECONDS)
        if not link.is_usable(now) or recent or link.codes_sent >= MAX_CODES_PER_LINK:
            raise CodeNotSent
        link.code_hash = _code_hash(link, code)
        link.code_expires_at = now + datetime.timedelta(minutes=minutes)
        link.codes_sent += 1
        link.last_code_sent_at = now
        link.save(
            update_fields=[
                "code_hash",
                "code_expires_at",
                "codes_sent",
                "last_code_sent_at",
            ]
        )
        _record(
            EventType.PATIENT_CODE_SENT,
            link,
            request=request,
            detail={"codes_sent": link.codes_sent},
        )
        # Sent inside the transaction: a failed send rolls the new code back,
        # so the page can say so and the old code (if any) is not lost.
        context = {"code": code, "minutes": minutes}
        send_mail(
            render_to_string("patients/email/code_subject.txt", context).strip(),
            render_to_string("patients/email/code_body.txt", context),
            None,
            [link.email],
        )


def do_check_patient_code(request: HttpRequest, link_id: int, code: str) -> bool:
    """True when ``code`` is the link's current code; a wrong one counts.

    After NIMBUS_PATIENT_CODE_ATTEMPTS wrong codes the link locks for good.
    The row lock makes parallel guesses count one by one.
    """
    now = timezone.now()
    with transaction.atomic():
        link = (
            PatientLink.objects.select_for_update()
            .select_related("patient", "study")
            .get(pk=link_id)
        )
        if not link.is_usable(now):
            return False
        current = bool(
            link.code_hash and link.code_expires_at and link.code_expires_at > now
        )
        if current and constant_time_compare(
            link.code_hash, _code_hash(link, code.strip())
        ):
            link.code_hash = ""
            link.code_expires_at = None
            link.last_opened_at = now
            link.save(update_fields=["code_hash", "code_expires_at", "last_opened_at"])
            return True

        link.failed_attempts += 1
        fields = ["failed_attempts"]
        _record(
            EventType.PATIENT_CODE_FAILED,
            link,
            request=request,
            outcome=Outcome.FAILURE,
            detail={"attempts": link.failed_attempts, "expired": not current},
        )
        if link.failed_attempts >= settings.NIMBUS_PATIENT_CODE_ATTEMPTS:
            link.locked_at = now
            fields.append("locked_at")
            _record(
                EventType.PATIENT_LINK_LOCKED,
                link,
                request=request,
                outcome=Outcome.FAILURE,
                detail={"attempts": link.failed_attempts},
            )
        link.save(update_fields=fields)
        return False


def do_open_patient_session(request: HttpRequest, link: PatientLink) -> None:
    """Start the patient's session: a new key, this link only, short-lived.

    A staff user signed in on the same browser is signed out first, so the
    session never holds both.
    """
    if getattr(request, "user", None) is not None and request.user.is_authenticated:
        logout(request)
    else:
        request.session.cycle_key()
    seconds = settings.NIMBUS_PATIENT_SESSION_MINUTES * 60
    request.session[SESSION_KEY] = {"id": link.pk, "until": time.time() + seconds}
    request.session.set_expiry(seconds)
    _record(EventType.PATIENT_LINK_OPENED, link, request=request)


def do_end_patient_session(request: HttpRequest) -> None:
    request.session.flush()


def do_record_patient_report_read(
    request: HttpRequest, link: PatientLink, study: Study, via: str
) -> None:
    _record(
        EventType.REPORT_READ,
        link,
        request=request,
        study=study,
        object_type="report",
        object_id=str(study.report.pk),
        detail={"via": via},
    )


def do_record_patient_study_opened(
    request: HttpRequest, link: PatientLink, study: Study
) -> None:
    _record(
        EventType.STUDY_OPENED,
        link,
        request=request,
        study=study,
        object_type="study",
        object_id=study.study_instance_uid,
        detail={"via": "patient_link"},
    )


def do_record_patient_frames_viewed(
    request: HttpRequest, link: PatientLink, series: Series
) -> None:
    # By the token's hash, not the id: ids start again in a restored schema.
    key = f"patients:frames-viewed:{link.token_hash[:32]}:{series.series_instance_uid}"
    if not cache.add(key, 1, timeout=FRAMES_VIEWED_INTERVAL_SECONDS):
        return
    _record(
        EventType.FRAMES_VIEWED,
        link,
        request=request,
        study=series.study,
        object_type="series",
        object_id=series.series_instance_uid,
        detail={"via": "patient_link"},
    )


def do_record_patient_download(
    request: HttpRequest, link: PatientLink, study: Study, files: int, size: int
) -> None:
    _record(
        EventType.PATIENT_IMAGES_DOWNLOADED,
        link,
        request=request,
        study=study,
        object_type="study",
        object_id=study.study_instance_uid,
        detail={"files": files, "bytes": size, "format": "zip+dicomdir"},
    )
