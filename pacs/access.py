"""Access helpers: the only way views load studies, so outsiders get 404.

The schema already walls off other hospitals; these helpers wall off users
inside one tenant who may not read a study (referrers, patients, helpdesk).
Every refusal is an ACCESS_DENIED record in the requesting tenant's trail:
another tenant's UID asked for on our host is a probe worth seeing.
"""

from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import Instance, Series, Study

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
    """The studies ``user`` may see. Only clinical readers see every study (for now)."""
    if user.is_authenticated and user.is_active and user.reads_studies:
        return Study.objects.all()
    return Study.objects.none()


def get_study_for_user(user: User, study_instance_uid: str) -> Study:
    study = (
        studies_for(user)
        .select_related("patient")
        .filter(study_instance_uid=study_instance_uid)
        .first()
    )
    if study is None:
        raise denied(user, "study", study_instance_uid, _("No such study."))
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
    return instance
