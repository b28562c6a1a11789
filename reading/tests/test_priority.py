import datetime

import hl7 as python_hl7
import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent, EventType
from conftest import tenant_client
from reading.models import Priority, PrioritySource, ReadingSettings, StudyReading
from reporting.hl7_inbound import read_order
from reporting.orders import do_receive_order

pytestmark = pytest.mark.django_db

ORM_STAT = (
    "MSH|^~\\&|RIS|RADIOLOGY|NIMBUS|hospital_a|20240506080000||ORM^O01|ORD7|P|2.5.1\r"
    "PID|1||P-70^^^HOSP||Doe^Jane||19800203|F\r"
    "ORC|NW|PL-7|FL-7||SC||^^^20240506093000^^S\r"
    "OBR|1|PL-7|FL-7|CTH^CT head||||||||||||^Doe^John||ACC-700|RP-7|||||CT\r"
)
OMI_ASAP = (
    "MSH|^~\\&|RIS|RADIOLOGY|NIMBUS|hospital_a|20240506080000||OMI^O23^OMI_O23|"
    "ORD8|P|2.5.1\r"
    "PID|1||P-71||Roe^Richard||19700101|M\r"
    "ORC|NW|PL-8|FL-8\r"
    "TQ1|1||||||20240507101500||A^ASAP^HL70485\r"
    "OBR|1|PL-8|FL-8|MRHEAD^MR head\r"
    "IPC|ACC-701|RP-8|1.2.826.0.1.3680043.8.498.701|SPS-1|MR\r"
)


def receive(message: str):  # type: ignore[no-untyped-def]
    return do_receive_order(read_order(python_hl7.parse(message)))


def test_it_takes_stat_from_the_order_control_timing_of_an_orm(tenant_a):
    scheduled = receive(ORM_STAT)

    reading = StudyReading.objects.get(study=scheduled.study)
    assert reading.priority == Priority.STAT
    assert reading.priority_source == PrioritySource.ORDER
    assert reading.due_at == scheduled.study.received_at + datetime.timedelta(hours=1)


def test_it_takes_urgent_from_tq1_priority_asap_of_an_omi(tenant_a):
    scheduled = receive(OMI_ASAP)

    assert StudyReading.objects.get(study=scheduled.study).priority == Priority.URGENT


def test_an_order_without_priority_stays_routine(tenant_a):
    scheduled = receive(ORM_STAT.replace("^^S\r", "\r"))

    assert StudyReading.objects.get(study=scheduled.study).priority == Priority.ROUTINE


def test_a_radiologist_sets_priority_and_the_due_time_follows_it(
    tenant_a, client_a, study
):
    ReadingSettings.objects.update_or_create(pk=1, defaults={"urgent_minutes": 120})

    response = client_a.post(
        f"/reading/studies/{study.study_instance_uid}/",
        {"set_priority": "1", "priority": "urgent", "due_at": ""},
    )

    reading = StudyReading.objects.get(study=study)
    assert response.status_code == 302
    assert reading.priority == Priority.URGENT
    assert reading.priority_source == PrioritySource.MANUAL
    assert reading.due_at == study.received_at + datetime.timedelta(minutes=120)
    event = AuditEvent.objects.get(event_type=EventType.READING_PRIORITY_CHANGED)
    assert event.detail["priority_before"] == "routine"
    assert event.detail["priority"] == "urgent"


def test_a_due_time_set_by_hand_stays_when_an_order_updates_the_priority(
    tenant_a, client_a
):
    scheduled = receive(ORM_STAT.replace("^^S\r", "\r"))
    uid = scheduled.study.study_instance_uid
    client_a.post(
        f"/reading/studies/{uid}/",
        {"set_priority": "1", "priority": "routine", "due_at": "2030-01-02T08:30"},
    )

    receive(ORM_STAT.replace("ORD7", "ORD9"))

    reading = StudyReading.objects.get(study=scheduled.study)
    assert reading.priority == Priority.ROUTINE
    assert timezone.localtime(reading.due_at).strftime("%Y-%m-%d %H:%M") == (
        "2030-01-02 08:30"
    )


def test_it_refuses_an_unknown_priority_and_keeps_the_old_one(
    tenant_a, client_a, study
):
    response = client_a.post(
        f"/reading/studies/{study.study_instance_uid}/",
        {"set_priority": "1", "priority": "whenever", "due_at": "not a date"},
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert StudyReading.objects.get(study=study).priority == Priority.ROUTINE


def test_hospital_it_assigns_a_radiologist_and_a_group_by_hand(
    tenant_a, it_admin, radiologist, study
):
    from reading.models import ReadingGroup

    group = ReadingGroup.objects.create(name="Neuro")

    response = tenant_client(tenant_a, it_admin).post(
        f"/reading/studies/{study.study_instance_uid}/",
        {"assign": "1", "radiologist": radiologist.pk, "group": group.pk},
    )

    reading = StudyReading.objects.get(study=study)
    assert response.status_code == 302
    assert (reading.assigned_radiologist, reading.assigned_group) == (
        radiologist,
        group,
    )
    event = AuditEvent.objects.get(event_type=EventType.READING_ASSIGNED)
    assert event.actor_username == "it.a"
    assert event.detail["radiologist"] == "rad.a"


def test_hospital_it_sees_the_queue_page_without_patient_names(
    tenant_a, it_admin, make_study
):
    study = make_study(PatientName="Secret^Sally", AccessionNumber="ACC-Q1")

    page = tenant_client(tenant_a, it_admin).get(
        f"/reading/studies/{study.study_instance_uid}/"
    )
    queue = tenant_client(tenant_a, it_admin).get("/reading/")

    assert page.status_code == 200 and queue.status_code == 200
    assert "ACC-Q1" in queue.content.decode()
    assert "Secret" not in page.content.decode() + queue.content.decode()


def test_it_refuses_a_due_time_out_of_reach_and_every_page_still_answers(
    tenant_a, client_a, study
):
    before = StudyReading.objects.get(study=study)

    response = client_a.post(
        f"/reading/studies/{study.study_instance_uid}/",
        {"set_priority": "1", "priority": "stat", "due_at": "0001-01-01T00:00"},
    )

    assert response.status_code == 200
    assert "Choose a due time between" in response.content.decode()
    reading = StudyReading.objects.get(study=study)
    assert (reading.priority, reading.due_at) == (before.priority, before.due_at)
    assert client_a.get("/").status_code == 200
    assert (
        client_a.get(f"/reading/studies/{study.study_instance_uid}/").status_code == 200
    )


def test_it_takes_a_due_time_a_few_days_ahead(tenant_a, client_a, study):
    due = timezone.localtime() + datetime.timedelta(days=3)

    response = client_a.post(
        f"/reading/studies/{study.study_instance_uid}/",
        {
            "set_priority": "1",
            "priority": "stat",
            "due_at": due.strftime("%Y-%m-%dT%H:%M"),
        },
    )

    assert response.status_code == 302
    reading = StudyReading.objects.get(study=study)
    assert reading.due_at == due.replace(second=0, microsecond=0)
    assert reading.due_at_manual


def test_the_database_refuses_a_due_time_that_cannot_be_read_back(tenant_a, study):
    year_one = datetime.datetime(1, 1, 1, tzinfo=datetime.UTC)

    with pytest.raises(IntegrityError), transaction.atomic():
        StudyReading.objects.filter(study=study).update(due_at=year_one)


def test_the_form_shows_a_due_time_set_by_hand_so_a_new_priority_keeps_it(
    tenant_a, client_a, study
):
    due = (timezone.localtime() + datetime.timedelta(days=2)).replace(
        second=0, microsecond=0
    )
    page = f"/reading/studies/{study.study_instance_uid}/"
    client_a.post(
        page,
        {
            "set_priority": "1",
            "priority": "urgent",
            "due_at": due.strftime("%Y-%m-%dT%H:%M"),
        },
    )

    shown = client_a.get(page).content.decode()

    assert f'value="{due.strftime("%Y-%m-%dT%H:%M")}"' in shown
    assert StudyReading.objects.get(study=study).due_at == due


def test_the_form_leaves_a_derived_due_time_out(tenant_a, client_a, study):
    shown = client_a.get(
        f"/reading/studies/{study.study_instance_uid}/"
    ).content.decode()

    assert 'name="due_at" aria-describedby' in shown
    assert 'name="due_at" value=' not in shown
