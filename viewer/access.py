"""Access helpers for what the viewer keeps: outsiders get 404, as in pacs.access.

An annotation is its author's alone; a key image belongs to the study and is
seen by everyone who may read the study, and marked only by clinical readers
(a referrer reads the studies shared with them, read-only).
"""

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.access import UID_MAX, denied, get_study_for_user
from viewer.models import Annotation


def check_may_mark(user: User, study_instance_uid: str) -> None:
    """Refuse (403, audited) annotations and key-image marks by a read-only reader.

    Call after the study was loaded through pacs.access, so that outsiders
    got their 404 first and never learn that the study exists.
    """
    if user.reads_studies:
        return
    do_record_event(
        EventType.ACCESS_DENIED,
        actor=user,
        outcome=Outcome.FAILURE,
        object_type="study",
        object_id=study_instance_uid[:128],
        study_instance_uid=study_instance_uid[:UID_MAX],
        detail={"answer": 403, "reason": "read-only"},
    )
    raise PermissionDenied(_("Only radiologists mark images."))


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
