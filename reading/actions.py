"""The write layer of the reading queue: routing, claims, assignment, priority."""

import datetime
import logging

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import ReadingStatus, Study
from reading import selectors
from reading.models import (
    Priority,
    PrioritySource,
    ReadingClaim,
    ReadingGroup,
    StudyReading,
)

logger = logging.getLogger(__name__)

ROUTING_ACTOR = "reading-rules"


class ClaimRefused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _due(study: Study, priority: str) -> datetime.datetime:
    return study.received_at + selectors.reading_settings().turnaround(priority)


def do_enqueue_study(study: Study) -> None:
    """Put a new study on the queue: routine, due after the routine turnaround."""
    # One INSERT, no savepoint: this runs inside every ingest of a new study.
    StudyReading.objects.bulk_create(
        [StudyReading(study=study, due_at=_due(study, Priority.ROUTINE))],
        ignore_conflicts=True,
    )


def reading_of(study: Study) -> StudyReading:
    """The study's queue row; made now for a study indexed before the queue."""
    reading = StudyReading.objects.filter(study=study).first()
    if reading is None:
        do_enqueue_study(study)
        reading = StudyReading.objects.get(study=study)
    return reading


def do_route_study(study_pk: int) -> None:
    """Priority from the headers and the first matching rule, once images are in.

    Runs after the ingest transaction commits (or the order's): the rules
    read the series and headers that transaction wrote. A study routed with
    images, or assigned by hand, is left alone.
    """
    with transaction.atomic():
        reading = (
            StudyReading.objects.select_for_update()
            .select_related("study")
            .filter(pk=study_pk)
            .first()
        )
        if reading is None or reading.routed_with_images:
            return
        study = reading.study
        facts = selectors.routing_facts(study)
        changed = _priority_from_headers(reading, facts)
        rule = None
        by_hand = reading.assigned_by_rule_id is None and (
            reading.assigned_radiologist_id or reading.assigned_group_id
        )
        if not by_hand:
            rule = selectors.first_matching_rule(facts)
            if rule is not None:
                reading.assigned_radiologist = rule.radiologist
                reading.assigned_group = rule.group
                reading.assigned_by_rule = rule
                changed = True
        reading.routed_with_images = facts.has_images
        reading.save()
        if rule is not None:
            _record_assignment(None, None, reading, {"rule": rule.pk})
    if changed:
        logger.info(
            "study %s routed priority=%s rule=%s",
            study.study_instance_uid,
            reading.priority,
            rule.pk if rule else None,
        )


def _priority_from_headers(
    reading: StudyReading, facts: selectors.RoutingFacts
) -> bool:
    if reading.priority_source != PrioritySource.DEFAULT:
        return False
    priority = selectors.dicom_priority(facts)
    if priority is None:
        return False
    _apply_priority(reading, priority, PrioritySource.DICOM)
    return True


def _apply_priority(reading: StudyReading, priority: str, source: str) -> None:
    reading.priority = priority
    reading.priority_source = source
    if not reading.due_at_manual:
        reading.due_at = _due(reading.study, priority)


def do_note_order_priority(study: Study, code: str) -> None:
    """The priority of an HL7 order (TQ1-9, OBR-27.6 or ORC-7.6) for its study.

    Call inside the order's transaction. A priority set by hand stays.
    """
    priority = selectors.hl7_priority(code)
    if priority is None:
        return
    reading = reading_of(study)
    if reading.priority_source == PrioritySource.MANUAL:
        return
    _apply_priority(reading, priority, PrioritySource.ORDER)
    reading.save(update_fields=["priority", "priority_source", "due_at"])


def _record(
    event_type: EventType,
    request: HttpRequest | None,
    actor: User | None,
    reading: StudyReading,
    detail: dict[str, object],
    outcome: Outcome = Outcome.SUCCESS,
) -> None:
    study = reading.study
    do_record_event(
        event_type,
        request=request,
        actor=actor,
        actor_username="" if actor else ROUTING_ACTOR,
        outcome=outcome,
        object_type="study",
        object_id=study.study_instance_uid,
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail=detail,
    )


def _record_assignment(
    request: HttpRequest | None,
    actor: User | None,
    reading: StudyReading,
    detail: dict[str, object],
) -> None:
    _record(
        EventType.READING_ASSIGNED,
        request,
        actor,
        reading,
        {
            "radiologist": getattr(reading.assigned_radiologist, "username", ""),
            "group": getattr(reading.assigned_group, "name", ""),
            **detail,
        },
    )


def do_claim_study(
    request: HttpRequest | None, user: User, study: Study
) -> StudyReading:
    """Claim ``study`` for ``user``; of two claims at once exactly one wins.

    Raises
    ------
    ClaimRefused
        When someone else holds the study, or its report is signed.
    """
    reading = reading_of(study)
    if study.reading_status == ReadingStatus.SIGNED:
        raise ClaimRefused(
            _("This study's report is signed: there is nothing to read.")
        )

    with transaction.atomic():
        now = timezone.now()
        # One conditional UPDATE: a second claimer waits on the row lock and
        # then finds the row taken, so two radiologists never both "win".
        won = StudyReading.objects.filter(pk=study.pk, claimed_by__isnull=True).update(
            claimed_by=user, claimed_at=now
        )
        if won:
            reading.refresh_from_db()
            ReadingClaim.objects.create(
                study=study,
                radiologist=user,
                group=reading.assigned_group,
                claimed_at=now,
            )
            _record(EventType.READING_CLAIMED, request, user, reading, {})
            return reading

    reading.refresh_from_db()
    if reading.claimed_by_id == user.pk:
        return reading
    holder = reading.claimed_by.username if reading.claimed_by else ""
    _record(
        EventType.READING_CLAIMED,
        request,
        user,
        reading,
        {"held_by": holder},
        outcome=Outcome.FAILURE,
    )
    raise ClaimRefused(
        _("%(name)s is reading this study already.")
        % {"name": _display_name(reading.claimed_by)}
    )


def _display_name(user: User | None) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.username


def do_release_study(request: HttpRequest | None, user: User, study: Study) -> bool:
    """End ``user``'s own claim; False (and no change) if they do not hold it."""
    reading = reading_of(study)
    with transaction.atomic():
        released = StudyReading.objects.filter(pk=study.pk, claimed_by=user).update(
            claimed_by=None, claimed_at=None
        )
        if not released:
            return False
        _end_claims(study, ReadingClaim.Ending.RELEASED)
        _record(EventType.READING_RELEASED, request, user, reading, {})
    return True


def do_take_back_study(request: HttpRequest | None, admin: User, study: Study) -> None:
    """A tenant administrator frees a study someone claimed (and left)."""
    reading = reading_of(study)
    with transaction.atomic():
        locked = StudyReading.objects.select_for_update().get(pk=study.pk)
        if locked.claimed_by_id is None:
            return
        holder = locked.claimed_by.username if locked.claimed_by else ""
        locked.claimed_by = None
        locked.claimed_at = None
        locked.save(update_fields=["claimed_by", "claimed_at"])
        _end_claims(study, ReadingClaim.Ending.TAKEN_BACK)
        _record(
            EventType.READING_TAKEN_BACK, request, admin, reading, {"held_by": holder}
        )


def do_finish_reading(study: Study) -> None:
    """The study's report is signed: whoever read it holds it no longer.

    Runs in the signing transaction; a study no one claimed is left as it is.
    """
    finished = StudyReading.objects.filter(
        pk=study.pk, claimed_by__isnull=False
    ).update(claimed_by=None, claimed_at=None)
    if finished:
        _end_claims(study, ReadingClaim.Ending.SIGNED)


def _end_claims(study: Study, ending: str) -> None:
    ReadingClaim.objects.filter(study=study, ended_at__isnull=True).update(
        ended_at=timezone.now(), ending=ending
    )


def do_assign_study(
    request: HttpRequest | None,
    user: User,
    study: Study,
    radiologist: User | None,
    group: ReadingGroup | None,
) -> StudyReading:
    """Assign by hand; no one for either clears it. Rules do not route it again."""
    with transaction.atomic():
        reading = reading_of(study)
        reading = StudyReading.objects.select_for_update().get(pk=reading.pk)
        before = {
            "radiologist_before": getattr(reading.assigned_radiologist, "username", ""),
            "group_before": getattr(reading.assigned_group, "name", ""),
        }
        reading.assigned_radiologist = radiologist
        reading.assigned_group = group
        reading.assigned_by_rule = None
        reading.routed_with_images = True
        reading.save(
            update_fields=[
                "assigned_radiologist",
                "assigned_group",
                "assigned_by_rule",
                "routed_with_images",
            ]
        )
        _record_assignment(request, user, reading, before)
    return reading


def do_set_priority(
    request: HttpRequest | None,
    user: User,
    study: Study,
    priority: str,
    due_at: datetime.datetime | None,
) -> StudyReading:
    """Set the priority by hand; the due time too, or derived when none is given."""
    with transaction.atomic():
        reading = reading_of(study)
        reading = (
            StudyReading.objects.select_for_update()
            .select_related("study__patient")
            .get(pk=reading.pk)
        )
        before = {
            "priority_before": reading.priority,
            "due_before": reading.due_at.isoformat() if reading.due_at else "",
        }
        reading.due_at_manual = due_at is not None
        _apply_priority(reading, priority, PrioritySource.MANUAL)
        if due_at is not None:
            reading.due_at = due_at
        reading.save(
            update_fields=["priority", "priority_source", "due_at", "due_at_manual"]
        )
        _record(
            EventType.READING_PRIORITY_CHANGED,
            request,
            user,
            reading,
            {
                **before,
                "priority": reading.priority,
                "due": reading.due_at.isoformat() if reading.due_at else "",
            },
        )
    return reading
