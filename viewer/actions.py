"""The viewer's write layer: annotations, key images and their audit records.

Viewing is audited too (PS3.15 A.5 style access events).
"""

from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest

from audit.actions import do_record_event
from audit.models import EventType
from pacs.models import Instance, Series, Study
from viewer.measure import measure
from viewer.measurements import Point
from viewer.models import Annotation, KeyImage

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


def _study_of(instance: Instance) -> Study:
    return instance.series.study


def _record_instance_event(
    request: HttpRequest, event_type: EventType, instance: Instance, detail: dict
) -> None:
    study = _study_of(instance)
    do_record_event(
        event_type,
        request=request,
        object_type="instance",
        object_id=instance.sop_instance_uid,
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail=detail,
    )


def do_save_annotation(
    request: HttpRequest,
    instance: Instance,
    frame_number: int,
    kind: str,
    points: list[Point],
    *,
    annotation: Annotation | None = None,
) -> Annotation:
    """Measure on the stored pixels, then create or update the reader's annotation.

    Raises MeasurementError (nothing is saved) when the measurement cannot
    be made, e.g. an ROI on a colour image.
    """
    measurement = measure(instance, frame_number - 1, kind, points)

    with transaction.atomic():
        if annotation is None:
            annotation = Annotation(
                instance=instance, frame_number=frame_number, author=request.user
            )
        annotation.kind = kind
        annotation.points = [list(point) for point in points]
        annotation.measurement = measurement
        annotation.save()
        _record_instance_event(
            request,
            EventType.ANNOTATION_SAVED,
            instance,
            {"annotation": annotation.pk, "kind": kind, "frame": frame_number},
        )
    return annotation


def do_delete_annotation(request: HttpRequest, annotation: Annotation) -> None:
    with transaction.atomic():
        detail = {"annotation": annotation.pk, "kind": annotation.kind}
        annotation.delete()
        _record_instance_event(
            request, EventType.ANNOTATION_DELETED, annotation.instance, detail
        )


def do_mark_key_image(
    request: HttpRequest, instance: Instance, frame_number: int
) -> tuple[KeyImage, bool]:
    """Mark a frame as a key image; marking it again changes nothing."""
    with transaction.atomic():
        key_image, created = KeyImage.objects.get_or_create(
            instance=instance,
            frame_number=frame_number,
            defaults={"marked_by": request.user},
        )
        if created:
            _record_instance_event(
                request, EventType.KEY_IMAGE_MARKED, instance, {"frame": frame_number}
            )
    return key_image, created


def do_unmark_key_image(
    request: HttpRequest, instance: Instance, frame_number: int
) -> bool:
    """Remove the key image mark of a frame; returns whether there was one."""
    with transaction.atomic():
        deleted, _ = KeyImage.objects.filter(
            instance=instance, frame_number=frame_number
        ).delete()
        if deleted:
            _record_instance_event(
                request,
                EventType.KEY_IMAGE_UNMARKED,
                instance,
                {"frame": frame_number},
            )
    return bool(deleted)
