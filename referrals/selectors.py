"""What the referrer portal reads: the studies shared with a referrer, notices.

A study is shared with a referrer by a ``reporting.StudyReferral`` (from the
study's reading page, by hospital IT in the admin, or by the critical-finding
workflow). ``pacs.access`` admits exactly these studies for a referrer,
read-only; every view still loads them through its helpers, so anything
else is a 404 with an audit record.
"""

from django.db.models import (
    BooleanField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
)

from accounts.models import Role, User
from pacs.models import Study
from reporting.models import (
    Addendum,
    AddendumStatus,
    KeyImageReference,
    Notification,
    NotificationKind,
    Report,
    ReportStatus,
    StudyReferral,
)

ISSUED = (ReportStatus.PRELIMINARY, ReportStatus.SIGNED)


def is_referrer(user: User) -> bool:
    return bool(user.is_authenticated and user.is_active and user.role == Role.REFERRER)


def shared_studies(user: User) -> QuerySet[Study]:
    """Every study shared with ``user``; none for anyone but an active referrer."""
    if not is_referrer(user):
        return Study.objects.none()
    referred = StudyReferral.objects.filter(referrer=user).values("study_id")
    return Study.objects.filter(pk__in=referred)


def portal_studies(user: User, search: str = "") -> QuerySet[Study]:
    """The referrer's shared studies for the portal's list.

    Studies with a critical finding the referrer has not acknowledged come
    first, then the newest. ``search`` matches the patient's name or ID,
    every word of it (a DICOM name is stored as Family^Given).
    """
    mine = Notification.objects.filter(recipient=user, report__study=OuterRef("pk"))
    studies = shared_studies(user).annotate(
        open_critical=Exists(
            mine.filter(kind=NotificationKind.CRITICAL_FINDING, acknowledged_at=None)
        ),
        unread=Exists(mine.filter(read_at=None)),
        report_status=F("report__status"),
    )
    for word in search.split():
        studies = studies.filter(
            Q(patient__patient_name__icontains=word)
            | Q(patient__patient_id__icontains=word)
        )
    return studies.select_related("patient").order_by(
        F("open_critical").desc(),
        F("study_date").desc(nulls_last=True),
        F("study_time").desc(nulls_last=True),
        "-pk",
    )


def issued_report(study: Study) -> Report | None:
    """The study's report once preliminary or signed; None while a draft."""
    return Report.objects.filter(study=study, status__in=ISSUED).first()


def cited_image(study: Study, number: int) -> KeyImageReference | None:
    """Key image ``number`` cited in the study's issued report.

    None in a draft, and for an image cited since the report was issued.
    """
    reference = (
        KeyImageReference.objects.filter(
            report__study=study, report__status__in=ISSUED, number=number
        )
        .select_related("report")
        .first()
    )
    if reference is None or not reference.is_issued:
        return None
    return reference


def notices_for(user: User) -> QuerySet[Notification]:
    """Every notice of ``user``: critical findings waiting first, then the newest."""
    waiting = Q(kind=NotificationKind.CRITICAL_FINDING, acknowledged_at=None)
    return (
        Notification.objects.filter(recipient=user)
        .annotate(waiting=ExpressionWrapper(waiting, output_field=BooleanField()))
        .select_related("report__study__patient", "acknowledged_by")
        .order_by(F("waiting").desc(), "-created_at", "-id")
    )


def unread_count(user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at=None).count()


def signed_addenda(report: Report) -> QuerySet[Addendum]:
    return report.addenda.filter(status=AddendumStatus.SIGNED).select_related(
        "signed_by"
    )


def critical_acknowledgement(report: Report) -> Notification | None:
    """The acknowledged notice of the report's critical finding, if any."""
    return (
        report.notifications.filter(
            kind=NotificationKind.CRITICAL_FINDING, acknowledged_at__isnull=False
        )
        .select_related("acknowledged_by")
        .first()
    )


def waiting_critical(user: User, report: Report) -> bool:
    """Whether ``user`` still has to acknowledge the report's critical finding."""
    return report.notifications.filter(
        recipient=user, kind=NotificationKind.CRITICAL_FINDING, acknowledged_at=None
    ).exists()
