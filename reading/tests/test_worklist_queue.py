import datetime

import pytest
from django.utils import timezone

from conftest import tenant_client
from pacs.models import ReadingStatus, Study
from reading.models import Priority, ReadingGroup, StudyReading

pytestmark = pytest.mark.django_db


def uids(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.study_instance_uid for s in response.context["page"]]


@pytest.fixture
def queue(make_study, radiologist, second_radiologist):  # type: ignore[no-untyped-def]
    """Four studies: mine, my group's, someone else's, and no one's."""
    group = ReadingGroup.objects.create(name="Body")
    group.members.add(radiologist)
    studies = {name: make_study() for name in ("mine", "group", "other", "nobody")}
    now = timezone.now()
    setups = {
        "mine": dict(assigned_radiologist=radiologist, priority=Priority.ROUTINE),
        "group": dict(assigned_group=group, priority=Priority.STAT),
        "other": dict(
            assigned_radiologist=second_radiologist, priority=Priority.URGENT
        ),
        "nobody": dict(priority=Priority.URGENT),
    }
    dues = {
        "mine": now - datetime.timedelta(hours=1),
        "group": now + datetime.timedelta(hours=3),
        "other": now + datetime.timedelta(hours=2),
        "nobody": now + datetime.timedelta(hours=1),
    }
    for name, values in setups.items():
        StudyReading.objects.filter(study=studies[name]).update(
            due_at=dues[name], **values
        )
    return {name: s.study_instance_uid for name, s in studies.items()}


def test_it_sorts_by_priority_then_due_time(client_a, queue):
    assert uids(client_a.get("/")) == [
        queue["group"],
        queue["nobody"],
        queue["other"],
        queue["mine"],
    ]


def test_it_filters_mine_my_groups_and_unassigned(client_a, radiologist, queue):
    Study.objects.filter(study_instance_uid=queue["other"])
    StudyReading.objects.filter(study__study_instance_uid=queue["nobody"]).update(
        claimed_by=radiologist
    )

    assert set(uids(client_a.get("/", {"queue": "mine"}))) == {
        queue["mine"],
        queue["nobody"],
    }
    assert uids(client_a.get("/", {"queue": "groups"})) == [queue["group"]]
    assert uids(client_a.get("/", {"queue": "unassigned"})) == [queue["nobody"]]
    assert uids(client_a.get("/", {"priority": "urgent"})) == [
        queue["nobody"],
        queue["other"],
    ]


def test_it_shows_overdue_studies_and_filters_them(client_a, queue):
    response = client_a.get("/")
    html = response.content.decode()

    assert uids(client_a.get("/", {"overdue": "on"})) == [queue["mine"]]
    assert f'data-study-uid="{queue["mine"]}" class="overdue"' in html
    assert f'data-study-uid="{queue["group"]}" class="overdue"' not in html
    assert (
        "Overdue"
        in html.split(f'data-study-uid="{queue["mine"]}"')[1].split("</tr>")[0]
    )


def test_a_signed_study_is_never_overdue(client_a, queue):
    Study.objects.filter(study_instance_uid=queue["mine"]).update(
        reading_status=ReadingStatus.SIGNED
    )

    assert uids(client_a.get("/", {"overdue": "on"})) == []


def test_each_radiologist_sees_who_reads_a_study(
    tenant_a, client_a, second_radiologist, queue
):
    client_a.post(f"/reading/studies/{queue['group']}/claim/")

    own = client_a.get("/").content.decode()
    other = tenant_client(tenant_a, second_radiologist).get("/").content.decode()

    assert "You are reading it" in own
    assert "Being read by rad.a" in other
