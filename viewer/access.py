"""Access helpers for what the viewer keeps: outsiders get 404, as in pacs.access.

An annotation is its author's alone; a key image belongs to the study and is
seen by everyone who may read the study.
"""

from django.utils.translation import gettext as _

from accounts.models import User
from pacs.access import denied, get_study_for_user
from viewer.models import Annotation


def get_annotation_for_user(
    user: User, study_instance_uid: str, annotation_id: int
) -> Annotation:
    study = get_study_for_user(user, study_instance_uid)
    annotation = (
        Annotation.objects.select_related("instance__series__study__patient")
        .filter(pk=annotation_id, author=user, instance__series__study=study)
        .first()
    )
    if annotation is None:
        raise denied(
            user,
            "annotation",
            f"{study_instance_uid}/{annotation_id}",
            _("No such annotation."),
        )
    return annotation
