import datetime

import pytest
from django.utils import timezone

from conftest import tenant_client
from reading.models import ReadingGroup, StudyReading
from reporting.models import Report, ReportStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def day_of_work(client_a, radiologist, second_radiologist, make_study):  # type: ignore[no-untyped-def]
    """rad.a claims and signs one study, and lets another run overdue."""
    group = ReadingGroup.objects.create(name="Body")
    group.members.add(radiologist)
    signed, late, others = make_study(), make_study(), make_study()
    StudyReading.objects.filter(study__in=[signed, late]).update(assigned_group=group)
    client_a.post(f"/reading/studies/{signed.study_instance_uid}/claim/")
    Report.objects.create(
        study=signed,
        status=ReportStatus.SIGNED,
        signed_by=radiologist,
        signed_at=timezone.now(),
    )
    StudyReading.objects.filter(study=late).update(
        assigned_radiologist=radiologist,
        due_at=timezone.now() - datetime.timedelta(minutes=5),
    )
    StudyReading.objects.filter(study=others).update(
        assigned_radiologist=second_radiologist
    )
    return group


def cell(html: str, name: str) -> str:
    today = timezone.localdate().isoformat()
    row = html.split(f'data-name="{name}"')[1].split("</tr>")[0]
    return row.split(f'data-day="{today}"')[1].split("</td>")[0]


def numbers(cell_html: str) -> list[str]:
    import re

    return re.findall(r">(\d+)</span>", cell_html)


def test_a_radiologist_sees_their_own_counts_and_their_groups(client_a, day_of_work):
    html = client_a.get("/reading/counts/").content.decode()

    assert numbers(cell(html, "rad.a")) == ["1", "1", "1"]
    assert numbers(cell(html, "Body")) == ["1", "1", "1"]
    assert 'data-name="rad2.a"' not in html


def test_hospital_it_sees_everyones_counts(tenant_a, it_admin, day_of_work):
    html = tenant_client(tenant_a, it_admin).get("/reading/counts/").content.decode()

    assert numbers(cell(html, "rad.a")) == ["1", "1", "1"]
    assert numbers(cell(html, "rad2.a")) == ["0", "0", "0"]


def test_it_refuses_a_window_longer_than_a_quarter(client_a):
    response = client_a.get(
        "/reading/counts/", {"date_from": "2020-01-01", "date_to": "2021-01-01"}
    )

    assert response.status_code == 200
    assert "Choose at most 92 days." in response.content.decode()


@pytest.mark.parametrize(
    "query", ["date_to=9999-12-31", "date_from=0001-01-01&date_to=0001-01-03"]
)
def test_it_explains_days_out_of_reach_instead_of_failing(client_a, query):  # type: ignore[no-untyped-def]
    response = client_a.get(f"/reading/counts/?{query}")

    assert response.status_code == 200
    assert "Choose a day between" in response.content.decode()


def test_a_study_claimed_twice_in_a_day_counts_once(client_a, study):  # type: ignore[no-untyped-def]
    claim = f"/reading/studies/{study.study_instance_uid}/claim/"
    client_a.post(claim)
    client_a.post(f"/reading/studies/{study.study_instance_uid}/release/")
    client_a.post(claim)

    html = client_a.get("/reading/counts/").content.decode()

    assert numbers(cell(html, "rad.a")) == ["0", "1", "0"]
