"""Access to a study's place in the queue: who may look and who may act.

Radiologists reach it through the study's own helper (pacs/access.py);
hospital IT manages the queue of every study without reading patient data;
anyone else (referrers, patients, helpdesk) gets the same 404 as for a study
that does not exist, and an ACCESS_DENIED record.
"""

from django.utils.translation import gettext as _

from accounts.models import User
from pacs.access import denied, get_study_for_user
from pacs.models import Study
from reading.selectors import is_tenant_admin


def get_queued_study(user: User, study_instance_uid: str) -> Study:
    if user.is_authenticated and user.is_active and user.reads_studies:
        return get_study_for_user(user, study_instance_uid)
    if is_tenant_admin(user):
        study = (
            Study.objects.select_related("patient")
            .filter(study_instance_uid=study_instance_uid)
            .first()
        )
        if study is not None:
            return study
    raise denied(user, "study", study_instance_uid, _("No such study."))
