"""Sharing a study with a referrer by hand: from the study's reading page
(radiologists and hospital IT) or the admin (hospital IT), each audited."""

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from conftest import make_user, tenant_client
from pacs.models import Study
from reporting.models import StudyReferral
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def it_admin(tenant_a: Tenant) -> Client:
    return tenant_client(tenant_a, make_user(tenant_a, "it.a", Role.TENANT_ADMIN))


def events(tenant: Tenant, event_type: EventType) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(event_type=event_type))


def reading_page(study: Study) -> str:
    return f"/reading/studies/{study.study_instance_uid}/"


def test_a_radiologist_shares_the_study_from_its_reading_page(
    client_a: Client, unshared: Study, referrer: User, tenant_a: Tenant
) -> None:
    page = client_a.get(reading_page(unshared)).content.decode()

    response = client_a.post(
        reading_page(unshared), {"share_referrer": "1", "referrer": referrer.pk}
    )

    assert "Share with a referring clinician" in page
    assert response.status_code == 302
    assert StudyReferral.objects.filter(study=unshared, referrer=referrer).exists()
    [given] = events(tenant_a, EventType.STUDY_REFERRAL_GIVEN)
    assert given.actor_username == "rad.a"
    assert given.study_instance_uid == unshared.study_instance_uid
    assert given.detail == {"referrer": "ref.a", "via": "reading"}


def test_only_a_referrer_of_the_tenant_can_be_chosen(
    client_a: Client, unshared: Study, tenant_a: Tenant
) -> None:
    colleague = make_user(tenant_a, "rad2.a", Role.RADIOLOGIST)

    response = client_a.post(
        reading_page(unshared), {"share_referrer": "1", "referrer": colleague.pk}
    )

    assert response.status_code == 200
    assert "That user is not a referring clinician here." in response.content.decode()
    assert not StudyReferral.objects.filter(study=unshared).exists()


def test_hospital_it_stops_sharing_from_the_reading_page(
    it_admin: Client, shared: Study, referrer: User, tenant_a: Tenant
) -> None:
    referral = StudyReferral.objects.get(study=shared, referrer=referrer)

    response = it_admin.post(f"{reading_page(shared)}referrals/{referral.pk}/end/")

    assert response.status_code == 302
    assert not StudyReferral.objects.filter(pk=referral.pk).exists()
    [ended] = events(tenant_a, EventType.STUDY_REFERRAL_ENDED)
    assert ended.actor_username == "it.a"
    assert ended.detail == {"referrer": "ref.a", "via": "reading"}


def test_a_referral_of_another_study_is_not_ended_through_this_one(
    client_a: Client, shared: Study, unshared: Study, referrer: User, tenant_a: Tenant
) -> None:
    referral = StudyReferral.objects.get(study=shared, referrer=referrer)

    response = client_a.post(f"{reading_page(unshared)}referrals/{referral.pk}/end/")

    assert response.status_code == 404
    assert StudyReferral.objects.filter(pk=referral.pk).exists()


def test_a_referrer_cannot_share_or_stop_sharing(
    tenant_a: Tenant, shared: Study, referrer: User
) -> None:
    client = tenant_client(tenant_a, referrer)
    referral = StudyReferral.objects.get(study=shared, referrer=referrer)

    answers = [
        client.post(
            reading_page(shared), {"share_referrer": "1", "referrer": referrer.pk}
        ),
        client.post(f"{reading_page(shared)}referrals/{referral.pk}/end/"),
    ]

    assert [a.status_code for a in answers] == [404, 404]
    assert StudyReferral.objects.filter(pk=referral.pk).exists()


def test_hospital_it_shares_and_unshares_in_the_admin_with_audit(
    it_admin: Client, unshared: Study, referrer: User, tenant_a: Tenant
) -> None:
    form = it_admin.get("/admin/reporting/studyreferral/add/")
    added = it_admin.post(
        "/admin/reporting/studyreferral/add/",
        {"study": unshared.pk, "referrer": referrer.pk},
    )
    referral = StudyReferral.objects.get(study=unshared, referrer=referrer)
    deleted = it_admin.post(
        f"/admin/reporting/studyreferral/{referral.pk}/delete/", {"post": "yes"}
    )

    assert form.status_code == 200
    assert added.status_code == 302
    assert deleted.status_code == 302
    assert not StudyReferral.objects.filter(study=unshared).exists()
    assert events(tenant_a, EventType.STUDY_REFERRAL_GIVEN)[0].detail["via"] == "admin"
    assert events(tenant_a, EventType.STUDY_REFERRAL_ENDED)[0].actor_username == "it.a"


def test_the_admin_offers_only_referrers(
    it_admin: Client, unshared: Study, radiologist: User
) -> None:
    response = it_admin.post(
        "/admin/reporting/studyreferral/add/",
        {"study": unshared.pk, "referrer": radiologist.pk},
    )

    assert response.status_code == 200
    assert not StudyReferral.objects.exists()
