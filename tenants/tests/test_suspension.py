"""Suspending a tenant closes its hosts and its DICOM AE; reactivating reopens."""

import subprocess

import pytest

from audit.models import AuditEvent, EventType
from conftest import tenant_client
from pacs.tests.test_retrieve import committed
from tenants.models import Tenant


@pytest.fixture
def hospital(db) -> Tenant:  # type: ignore[no-untyped-def]
    return Tenant.objects.get(schema_name="hospital_a")


def act(client, action: str, tenant: Tenant):  # type: ignore[no-untyped-def]
    return client.post(
        "/tenants/tenant/",
        {"action": action, "_selected_action": [tenant.pk]},
        follow=True,
    )


def test_a_suspended_tenant_s_host_answers_a_clear_page(
    platform_admin_client, hospital, radiologist
):
    act(platform_admin_client, "suspend_tenants", hospital)

    response = tenant_client(hospital, radiologist).get("/", HTTP_ACCEPT_LANGUAGE="en")

    hospital.refresh_from_db()
    assert hospital.is_active is False
    assert response.status_code == 503
    assert "Service suspended" in response.content.decode()
    assert "Hospital A" in response.content.decode()
    assert response["Cache-Control"] == "no-store"


def test_the_suspended_page_speaks_the_browser_s_language(
    platform_admin_client, hospital
):
    act(platform_admin_client, "suspend_tenants", hospital)

    response = tenant_client(hospital).get(
        "/accounts/login/", HTTP_ACCEPT_LANGUAGE="de"
    )

    assert response.status_code == 503
    assert 'lang="de"' in response.content.decode()


def test_suspension_leaves_other_tenants_and_the_platform_alone(
    platform_admin_client, hospital, tenant_b
):
    act(platform_admin_client, "suspend_tenants", hospital)

    assert tenant_client(tenant_b).get("/accounts/login/").status_code == 200
    assert platform_admin_client.get("/tenants/tenant/").status_code == 200


def test_reactivation_opens_the_host_again(platform_admin_client, hospital):
    act(platform_admin_client, "suspend_tenants", hospital)
    act(platform_admin_client, "reactivate_tenants", hospital)

    assert tenant_client(hospital).get("/accounts/login/").status_code == 200


def test_suspension_and_reactivation_are_audited_once_each(
    platform_admin_client, hospital
):
    act(platform_admin_client, "suspend_tenants", hospital)
    act(platform_admin_client, "suspend_tenants", hospital)  # already: no record
    act(platform_admin_client, "reactivate_tenants", hospital)

    events = AuditEvent.objects.filter(object_id="hospital_a").order_by("id")
    assert [(e.event_type, e.actor_username) for e in events] == [
        (EventType.TENANT_SUSPENDED, "platform"),
        (EventType.TENANT_REACTIVATED, "platform"),
    ]


def test_the_active_flag_is_not_edited_in_the_form(platform_admin_client, hospital):
    page = platform_admin_client.get(f"/tenants/tenant/{hospital.pk}/change/")

    assert 'name="is_active"' not in page.content.decode()


def test_a_suspended_tenant_s_ae_title_is_rejected(listener):
    # dcmtk's echoscu as the modality; the listener reads the flag on its
    # own connection, so the change is committed (and undone) for it.
    assert echoscu(listener, "NIMBUS_A").returncode == 0
    committed(set_active, "hospital_a", False)
    try:
        refused = echoscu(listener, "NIMBUS_A")
    finally:
        committed(set_active, "hospital_a", True)

    assert refused.returncode != 0
    assert "Called AE Title Not Recognized" in refused.stdout + refused.stderr


def set_active(schema: str, active: bool) -> None:
    Tenant.objects.filter(schema_name=schema).update(is_active=active)


def echoscu(port: int, called: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["echoscu", "-aec", called, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
