"""Access helpers: the only way views load studies, so outsiders get 404.

The schema already walls off other hospitals; these helpers wall off users
inside one tenant who may not read a study (referrers, patients, helpdesk).
Referrers read the studies shared with them (a StudyReferral; referrals/),
read-only: the viewer's and DICOMweb's writes are refused by role.
Helpdesk staff read only what a tenant administrator granted them for a
while (grants/); each object they read under a grant is audited with the
grant's id, and the answer is 404 again once it ends. Every refusal is an
ACCESS_DENIED record in the requesting tenant's trail: another tenant's UID
asked for on our host is a probe worth seeing.
"""

from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from grants.actions import do_record_grant_use
from grants.selectors import grant_covering, granted_studies, is_helpdesk
from pacs.models import Instance, Series, Study
from referrals.selectors import is_referrer, shared_studies

# Longest UID (PS3.5 9.1); anything longer is cut for the record's column.
UID_MAX = 64


def denied(user: User, object_type: str, object_id: str, message: str) -> Http404:
    """Record an ACCESS_DENIED event for ``user`` and return the 404 to raise.

    The record names what was asked for, never what exists: the answer is
    the same 404 whether the object is another tenant's, hidden or absent.
    """
    do_record_event(
        EventType.ACCESS_DENIED,
        actor=user if user.is_authenticated else None,
        outcome=Outcome.FAILURE,
        object_type=object_type,
        object_id=object_id[:128],
        study_instance_uid=object_id.split("/", 1)[0][:UID_MAX],
        detail={"answer": 404},
    )
    return Http404(message)


def studies_for(user: User) -> QuerySet[Study]:
    """The studies ``user`` may see.

    Clinical readers all, helpdesk the granted, referrers the shared with them.
    """
    if user.is_authenticated and user.is_active and user.reads_studies:
        return Study.objects.all()
    if is_helpdesk(user):
        return granted_studies(user)
    if is_referrer(user):
        return shared_studies(user)
    return Study.objects.none()


def _note_grant_use(user: User, study: Study, object_type: str, object_id: str) -> None:
    """Audit a helpdesk user's read with the grant that allowed it."""
    if not is_helpdesk(user):
        return
    grant = grant_covering(user, study)
    if grant is not None:
        do_record_grant_use(user, grant, study, object_type, object_id)


def get_study_for_user(user: User, study_instance_uid: str) -> Study:
    study = (
        studies_for(user)
        .select_related("patient")
        .filter(study_instance_uid=study_instance_uid)
        .first()
    )
    if study is None:
        raise denied(user, "study", study_instance_uid, _("No such study."))
    _note_grant_use(user, study, "study", study_instance_uid)
    return study


def get_series_for_user(
    user: User, study_instance_uid: str, series_instance_uid: str
) -> Series:
    series = (
        Series.objects.select_related("study__patient")
        .filter(
            study__in=studies_for(user),
            study__study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
        )
        .first()
    )
    if series is None:
        raise denied(
            user,
            "series",
            f"{study_instance_uid}/{series_instance_uid}",
            _("No such series."),
        )
    _note_grant_use(
        user, series.study, "series", f"{study_instance_uid}/{series_instance_uid}"
    )
    return series


def get_instance_for_user(
    user: User, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str
) -> Instance:
    instance = (
        Instance.objects.select_related("series__study__patient")
        .filter(
            series__study__in=studies_for(user),
            series__study__study_instance_uid=study_instance_uid,
            series__series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
        )
        .first()
    )
    if instance is None:
        raise denied(
            user,
            "instance",
            f"{study_instance_uid}/{series_instance_uid}/{sop_instance_uid}",
            _("No such instance."),
        )
    _note_grant_use(
        user,
        instance.series.study,
        "instance",
        f"{study_instance_uid}/{series_instance_uid}/{sop_instance_uid}",
    )
    return instance
