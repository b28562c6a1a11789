import datetime

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from conftest import make_user, tenant_client
from pacs.models import Study
from reporting.models import Report
from reporting.tests.helpers import post, put, url
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def colleague(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "rad.colleague", Role.RADIOLOGIST)


@pytest.fixture
def client_colleague(tenant_a: Tenant, colleague: User) -> Client:
    return tenant_client(tenant_a, colleague)


def test_it_gives_the_lock_to_the_first_editor_and_shows_who_holds_it(
    client_a: Client, client_colleague: Client, study: Study
) -> None:
    taken = post(client_a, study, "/lock")
    refused = post(client_colleague, study, "/lock")

    assert taken.status_code == 200
    assert taken.json()["lock"]["holder"] == "rad.a"
    assert refused.status_code == 409
    assert "rad.a" in refused.json()["detail"]
    assert client_colleague.get(url(study)).json()["lock"]["holder"] == "rad.a"


def test_it_refuses_saves_from_an_editor_without_the_lock(
    client_a: Client, client_colleague: Client, study: Study
) -> None:
    post(client_a, study, "/lock")

    refused = put(client_colleague, study, "", {"text": "Mine."})
    dictated = post(client_colleague, study, "/dictation", {"text": "Mine."})
    saved = put(client_a, study, "", {"text": "Liver normal."})

    assert refused.status_code == 409 and dictated.status_code == 409
    assert saved.status_code == 200
    assert Report.objects.get(study=study).text == "Liver normal."


def test_it_renews_the_lock_of_its_holder_without_a_new_audit_record(
    client_a: Client, study: Study
) -> None:
    post(client_a, study, "/lock")
    first_expiry = Report.objects.get(study=study).lock_expires_at
    renewed = post(client_a, study, "/lock")

    assert renewed.status_code == 200
    assert Report.objects.get(study=study).lock_expires_at >= first_expiry
    assert (
        AuditEvent.objects.filter(event_type=EventType.REPORT_LOCK_TAKEN).count() == 1
    )


def test_it_lets_a_radiologist_take_over_an_expired_lock(
    client_a: Client, client_colleague: Client, study: Study, radiologist: User
) -> None:
    post(client_a, study, "/lock")
    Report.objects.filter(study=study).update(
        lock_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    taken = post(client_colleague, study, "/lock")

    assert taken.status_code == 200
    assert taken.json()["lock"]["holder"] == "rad.colleague"
    record = AuditEvent.objects.filter(event_type=EventType.REPORT_LOCK_TAKEN).first()
    assert record is not None
    assert record.detail == {"taken_over_from": radiologist.pk}


def test_it_frees_the_report_when_the_holder_releases_the_lock(
    client_a: Client, client_colleague: Client, study: Study
) -> None:
    post(client_a, study, "/lock")
    released = client_a.delete(url(study, "/lock"))

    lock = released.json()["lock"]
    assert (lock["holder"], lock["expires_at"]) == ("", None)
    assert lock["as_of"] > 0
    assert post(client_colleague, study, "/lock").status_code == 200
    assert AuditEvent.objects.filter(event_type=EventType.REPORT_LOCK_RELEASED).exists()


def test_it_does_not_let_a_referrer_take_the_lock(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    response = post(tenant_client(tenant_a, referrer), study, "/lock")

    assert response.status_code == 404


def test_it_does_not_lock_a_report_of_another_tenant(
    tenant_b: Tenant, radiologist_b: User, study: Study
) -> None:
    response = post(tenant_client(tenant_b, radiologist_b), study, "/lock")

    assert response.status_code == 404


def test_a_write_without_the_lock_takes_it_so_a_colleague_cannot_overwrite(
    client_a: Client, client_colleague: Client, study: Study, radiologist: User
) -> None:
    first = put(client_a, study, "", {"text": "Dictated by the first reader."})

    second = put(client_colleague, study, "", {"text": "Overwrite by a colleague."})

    assert first.status_code == 200
    assert second.status_code == 409
    report = Report.objects.get(study=study)
    assert report.text == "Dictated by the first reader."
    assert report.locked_by == radiologist
