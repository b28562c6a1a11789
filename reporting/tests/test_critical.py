import pytest
from django.test import Client

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from conftest import make_user, tenant_client
from pacs.models import Study
from reporting.models import Notification, StudyReferral
from reporting.tests.helpers import post, put
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def issue(client: Client, study: Study) -> None:
    put(client, study, "", {"text": "Tension pneumothorax."})
    assert post(client, study, "/preliminary").status_code == 200


def name_study_referrer(study: Study, referrer: User) -> None:
    referrer.first_name, referrer.last_name = "Anna", "Smith"
    referrer.save()
    study.referring_physician_name = "SMITH^ANNA"
    study.save()


def test_it_notifies_the_referrer_named_in_the_study_and_gives_them_the_study(
    client_a: Client, study: Study, referrer: User
) -> None:
    name_study_referrer(study, referrer)
    issue(client_a, study)

    flagged = post(client_a, study, "/critical")

    assert flagged.status_code == 200
    assert flagged.json()["critical"]["flagged"] is True
    assert flagged.json()["critical"]["notified"] == ["ref.a"]
    assert Notification.objects.get().recipient == referrer
    assert StudyReferral.objects.filter(study=study, referrer=referrer).exists()
    record = AuditEvent.objects.get(event_type=EventType.CRITICAL_FINDING_FLAGGED)
    assert record.detail == {"notified": ["ref.a"]}


def test_it_notifies_the_referrers_who_have_the_study_when_nobody_is_named(
    tenant_a: Tenant, client_a: Client, study: Study, referrer: User
) -> None:
    other = make_user(tenant_a, "ref.other", Role.REFERRER)
    make_user(tenant_a, "ref.stranger", Role.REFERRER)
    StudyReferral.objects.create(study=study, referrer=referrer)
    StudyReferral.objects.create(study=study, referrer=other)
    issue(client_a, study)

    post(client_a, study, "/critical")

    recipients = {n.recipient.username for n in Notification.objects.all()}
    assert recipients == {"ref.a", "ref.other"}


def test_it_notifies_nobody_rather_than_a_referrer_without_the_study(
    client_a: Client, study: Study, referrer: User
) -> None:
    issue(client_a, study)

    flagged = post(client_a, study, "/critical").json()

    assert flagged["critical"]["notified"] == []
    assert not Notification.objects.exists()


def test_it_refuses_to_flag_a_draft_the_referrer_cannot_read(
    client_a: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": "Draft."})

    assert post(client_a, study, "/critical").status_code == 400


def test_it_lists_the_notification_for_the_referrer(
    tenant_a: Tenant, client_a: Client, study: Study, referrer: User
) -> None:
    name_study_referrer(study, referrer)
    issue(client_a, study)
    post(client_a, study, "/critical")

    page = tenant_client(tenant_a, referrer).get("/reports/notifications/")

    assert page.status_code == 200
    assert study.study_instance_uid in page.content.decode()


def test_it_records_who_acknowledged_the_finding_and_when(
    tenant_a: Tenant, client_a: Client, study: Study, referrer: User
) -> None:
    name_study_referrer(study, referrer)
    issue(client_a, study)
    post(client_a, study, "/critical")
    client_ref = tenant_client(tenant_a, referrer)

    acknowledged = post(client_ref, study, "/critical/acknowledge")
    again = post(client_ref, study, "/critical/acknowledge")

    assert acknowledged.status_code == 200
    critical = acknowledged.json()["critical"]
    assert critical["acknowledged_by"] == "ref.a"
    assert critical["acknowledged_at"] is not None
    assert again.status_code == 409
    record = AuditEvent.objects.get(event_type=EventType.CRITICAL_FINDING_ACKNOWLEDGED)
    assert record.actor_username == "ref.a"


def test_it_acknowledges_from_the_notification_list(
    tenant_a: Tenant, client_a: Client, study: Study, referrer: User
) -> None:
    name_study_referrer(study, referrer)
    issue(client_a, study)
    post(client_a, study, "/critical")

    response = tenant_client(tenant_a, referrer).post(
        f"/reports/studies/{study.study_instance_uid}/acknowledge/"
    )

    assert response.status_code == 302
    assert Notification.objects.get().acknowledged_by == referrer


def test_it_does_not_let_a_radiologist_acknowledge_for_the_referrer(
    client_a: Client, study: Study, referrer: User
) -> None:
    name_study_referrer(study, referrer)
    issue(client_a, study)
    post(client_a, study, "/critical")

    assert post(client_a, study, "/critical/acknowledge").status_code == 403
