"""Audit records for what the viewer shows (PS3.15 A.5 style access events)."""

from django.core.cache import cache
from django.http import HttpRequest

from audit.actions import do_record_event
from audit.models import EventType
from pacs.models import Series, Study

# One FRAMES_VIEWED per user and series in this many seconds: scrolling
# through 300 slices is one act of viewing, not 300 audit rows.
FRAMES_VIEWED_INTERVAL_SECONDS = 5 * 60


def do_record_study_opened(request: HttpRequest, study: Study) -> None:
    do_record_event(
        EventType.STUDY_OPENED,
        request=request,
        object_type="study",
        object_id=study.study_instance_uid,
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
    )


def do_record_frames_viewed(request: HttpRequest, series: Series) -> bool:
    """Record that the user viewed images of ``series``, unless done lately.

    Returns True when a record was written.
    """
    # cache.add is atomic (SET NX in Redis): two parallel frame requests
    # cannot both win, so there is one record per interval.
    key = f"viewer:frames-viewed:{request.user.pk}:{series.series_instance_uid}"
    if not cache.add(key, 1, timeout=FRAMES_VIEWED_INTERVAL_SECONDS):
        return False
    study = series.study
    do_record_event(
        EventType.FRAMES_VIEWED,
        request=request,
        object_type="series",
        object_id=series.series_instance_uid,
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
    )
    return True
