import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent, EventType
from conftest import tenant_client
from reading.models import StudyReading
from reporting.models import StudyReferral

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["referrer", "patient_user", "helpdesk"])
def outsider(request, tenant_a):  # type: ignore[no-untyped-def]
    return request.getfixturevalue(request.param)


def test_a_referrer_patient_or_helpdesk_cannot_claim_even_a_shared_study(
    tenant_a, outsider, study, referrer
):
    StudyReferral.objects.create(study=study, referrer=referrer)
    client = tenant_client(tenant_a, outsider)

    response = client.post(f"/reading/studies/{study.study_instance_uid}/claim/")

    # Helpdesk sessions are read-only before any view (grants/middleware.py).
    assert response.status_code == (403 if outsider.username == "help.a" else 404)
    assert StudyReading.objects.get(study=study).claimed_by is None
    assert AuditEvent.objects.filter(
        event_type=EventType.ACCESS_DENIED, actor_username=outsider.username
    ).exists()


def test_a_referrer_patient_or_helpdesk_cannot_see_the_queue(tenant_a, outsider, study):
    client = tenant_client(tenant_a, outsider)

    pages = [
        client.get(f"/reading/studies/{study.study_instance_uid}/"),
        client.get("/reading/"),
        client.get("/reading/counts/"),
    ]

    assert [p.status_code for p in pages] == [404, 403, 403]
    worklist = client.get("/", follow=True).content.decode()
    assert "Being read by" not in worklist
    assert 'name="queue"' not in worklist


def test_a_radiologist_cannot_use_hospital_its_queue_page(client_a):
    assert client_a.get("/reading/").status_code == 403


def test_another_tenants_study_is_404_and_recorded(
    tenant_a, study, tenant_b, radiologist_b
):
    uid = study.study_instance_uid
    client_b = tenant_client(tenant_b, radiologist_b)

    responses = [
        client_b.post(f"/reading/studies/{uid}/claim/"),
        client_b.post(f"/reading/studies/{uid}/release/"),
        client_b.get(f"/reading/studies/{uid}/"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    with tenant_context(tenant_b):
        assert (
            AuditEvent.objects.filter(
                event_type=EventType.ACCESS_DENIED, study_instance_uid=uid
            ).count()
            == 3
        )
    with tenant_context(tenant_a):
        assert StudyReading.objects.get(study=study).claimed_by is None


def test_claiming_needs_a_post_with_a_csrf_token(tenant_a, radiologist, study):
    from django.test import Client

    client = tenant_client(tenant_a, radiologist)
    strict = Client(enforce_csrf_checks=True, HTTP_HOST="a.localhost")
    strict.cookies = client.cookies

    assert (
        client.get(f"/reading/studies/{study.study_instance_uid}/claim/").status_code
        == 405
    )
    assert (
        strict.post(f"/reading/studies/{study.study_instance_uid}/claim/").status_code
        == 403
    )
    assert StudyReading.objects.get(study=study).claimed_by is None


def test_a_claim_redirects_only_to_this_host(client_a, study):
    response = client_a.post(
        f"/reading/studies/{study.study_instance_uid}/claim/",
        {"next": "https://evil.example/"},
    )

    assert response["Location"] == "/"


def test_queue_pages_are_kept_out_of_caches(client_a, study):
    response = client_a.get(f"/reading/studies/{study.study_instance_uid}/")

    assert "no-store" in response["Cache-Control"]
