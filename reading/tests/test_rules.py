import datetime

import pytest

from audit.models import AuditEvent, EventType
from reading.models import (
    AssignmentRule,
    Priority,
    PrioritySource,
    ReadingGroup,
    ReadingSettings,
    StudyReading,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def chest_group(radiologist):  # type: ignore[no-untyped-def]
    group = ReadingGroup.objects.create(name="Chest")
    group.members.add(radiologist)
    return group


def test_it_puts_a_new_study_on_the_queue_as_routine_due_after_the_turnaround(
    make_study,
):
    study = make_study()

    reading = StudyReading.objects.get(study=study)
    assert reading.priority == Priority.ROUTINE
    assert reading.priority_source == PrioritySource.DEFAULT
    assert reading.due_at == study.received_at + datetime.timedelta(hours=48)


def test_it_takes_the_priority_from_the_requested_procedure_priority(make_study):
    ReadingSettings.objects.update_or_create(pk=1, defaults={"stat_minutes": 30})

    study = make_study(RequestedProcedurePriority="STAT")

    reading = StudyReading.objects.get(study=study)
    assert reading.priority == Priority.STAT
    assert reading.priority_source == PrioritySource.DICOM
    assert reading.due_at == study.received_at + datetime.timedelta(minutes=30)


def test_it_maps_a_high_dicom_priority_to_urgent(make_study):
    study = make_study(RequestedProcedurePriority="HIGH")

    assert StudyReading.objects.get(study=study).priority == Priority.URGENT


def test_it_assigns_by_the_first_matching_rule_in_order(
    make_study, radiologist, second_radiologist, chest_group
):
    AssignmentRule.objects.create(
        position=2, name="any CT", modality="CT", radiologist=second_radiologist
    )
    AssignmentRule.objects.create(
        position=1,
        name="CT chest from St Mary",
        modality="ct",
        body_part_examined="CHEST",
        institution_name="St Mary",
        group=chest_group,
        radiologist=radiologist,
    )

    chest = make_study(BodyPartExamined="CHEST", InstitutionName="ST MARY")
    abdomen = make_study(BodyPartExamined="ABDOMEN", InstitutionName="ST MARY")

    chest_reading = StudyReading.objects.get(study=chest)
    assert chest_reading.assigned_group == chest_group
    assert chest_reading.assigned_radiologist == radiologist
    assert StudyReading.objects.get(study=abdomen).assigned_radiologist == (
        second_radiologist
    )
    assert AuditEvent.objects.filter(
        event_type=EventType.READING_ASSIGNED,
        study_instance_uid=chest.study_instance_uid,
        actor_username="reading-rules",
    ).exists()


def test_it_matches_station_name_and_sending_ae_title(make_study, chest_group):
    AssignmentRule.objects.create(
        name="site B", station_name="CT02", calling_ae_title="SITE_B", group=chest_group
    )

    from_b = make_study("SITE_B", StationName="ct02")
    elsewhere = make_study("SITE_C", StationName="CT02")

    assert StudyReading.objects.get(study=from_b).assigned_group == chest_group
    assert StudyReading.objects.get(study=elsewhere).assigned_group is None


def test_it_skips_inactive_rules(make_study, chest_group):
    AssignmentRule.objects.create(
        name="off", modality="CT", group=chest_group, active=False
    )

    study = make_study()

    assert StudyReading.objects.get(study=study).assigned_group is None


def test_it_routes_a_study_once_and_leaves_later_series_alone(
    make_study, chest_group, radiologist
):
    study = make_study()
    AssignmentRule.objects.create(name="late rule", modality="CT", group=chest_group)

    StudyReading.objects.filter(study=study).update(assigned_radiologist=radiologist)
    study.number_of_study_related_series += 1
    study.save(update_fields=["number_of_study_related_series"])

    reading = StudyReading.objects.get(study=study)
    assert reading.routed_with_images
    assert reading.assigned_group is None


def test_it_routes_an_order_again_when_its_first_images_arrive(
    make_study, chest_group, django_capture_on_commit_callbacks
):
    import hl7 as python_hl7

    from reading.tests.test_priority import ORM_STAT
    from reporting.hl7_inbound import read_order
    from reporting.orders import do_receive_order

    AssignmentRule.objects.create(
        name="chest", body_part_examined="CHEST", group=chest_group
    )
    with django_capture_on_commit_callbacks(execute=True):
        order = do_receive_order(read_order(python_hl7.parse(ORM_STAT)))
    assert StudyReading.objects.get(study=order.study).assigned_group is None

    study = make_study(
        PatientID="P-70", AccessionNumber="ACC-700", BodyPartExamined="CHEST"
    )

    assert study.pk == order.study.pk
    reading = StudyReading.objects.get(study=study)
    assert reading.assigned_group == chest_group
    assert reading.priority == Priority.STAT
