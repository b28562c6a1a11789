"""Access helpers: the only way views load studies, so outsiders get 404.

The schema already walls off other hospitals; these helpers wall off users
inside one tenant who may not read a study (referrers, patients, helpdesk).
"""

from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from accounts.models import User
from pacs.models import Instance, Series, Study


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
        raise Http404(_("No such study."))
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
        raise Http404(_("No such series."))
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
        raise Http404(_("No such instance."))
    return instance
