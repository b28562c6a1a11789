"""The onboarding checklist against real peers on 127.0.0.1.

dcmtk's storescp answers C-ECHO as a modality's store SCP would; the RIS is
the python-hl7 MLLP listener of tests/support/ris.py. A closed port is one
that was free a moment ago.
"""

import subprocess
from collections.abc import Iterator

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType, Outcome
from conftest import make_user
from pacs.models import RemoteApplicationEntity
from tenants.models import Tenant
from tests.support.ris import RisListener
from tests.support.stack import free_port, wait_for_port


@pytest.fixture
def storescp() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "--aetitle", "CT_ROOM1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, seconds=10)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def ris() -> Iterator[RisListener]:
    with RisListener() as listener:
        yield listener


@pytest.fixture
def hospital(db) -> Tenant:  # type: ignore[no-untyped-def]
    return Tenant.objects.get(schema_name="hospital_a")


def add_remote(tenant: Tenant, title: str, port: int) -> None:
    with schema_context(tenant.schema_name):
        RemoteApplicationEntity.objects.create(
            ae_title=title, host="127.0.0.1", port=port
        )


def point_ris_at(tenant: Tenant, port: int) -> None:
    tenant.ris_host, tenant.ris_port = "127.0.0.1", port
    tenant.save(update_fields=["ris_host", "ris_port"])


def run_checklist(client, tenant: Tenant):  # type: ignore[no-untyped-def]
    response = client.post(f"/tenants/tenant/{tenant.pk}/checklist/")
    assert response.status_code == 200
    return {(r.kind, r.target): r for r in response.context["results"]}, response


def test_the_checklist_page_is_linked_from_the_tenants_page(
    platform_admin_client, hospital
):
    page = platform_admin_client.get(f"/tenants/tenant/{hospital.pk}/change/")

    assert f"/tenants/tenant/{hospital.pk}/checklist/" in page.content.decode()


def test_it_runs_no_check_on_a_plain_visit(platform_admin_client, hospital):
    response = platform_admin_client.get(f"/tenants/tenant/{hospital.pk}/checklist/")

    assert response.status_code == 200
    assert response.context["results"] is None
    assert not AuditEvent.objects.filter(
        event_type=EventType.TENANT_CONNECTION_CHECKED
    ).exists()


def test_c_echo_passes_against_a_listening_store_scp(
    platform_admin_client, hospital, storescp
):
    add_remote(hospital, "CT_ROOM1", storescp)

    results, _ = run_checklist(platform_admin_client, hospital)

    echo = results[("c_echo", f"CT_ROOM1@127.0.0.1:{storescp}")]
    assert echo.ok, echo.detail
    assert "success" in echo.detail


def test_c_echo_fails_with_its_reason_against_a_closed_port(
    platform_admin_client, hospital
):
    closed = free_port()
    add_remote(hospital, "GONE", closed)

    results, response = run_checklist(platform_admin_client, hospital)

    echo = results[("c_echo", f"GONE@127.0.0.1:{closed}")]
    assert not echo.ok
    assert f"No DICOM association with 127.0.0.1:{closed}" in echo.detail
    assert echo.detail in response.content.decode()


def test_the_hl7_test_message_gets_its_ack_from_the_ris(
    platform_admin_client, hospital, ris
):
    point_ris_at(hospital, ris.port)

    results, _ = run_checklist(platform_admin_client, hospital)

    check = results[("hl7", f"127.0.0.1:{ris.port}")]
    assert check.ok, check.detail
    message = ris.received[-1]
    assert str(message.segment("MSH")[9]) == "NMD^N02^NMD_N02"
    assert str(message.segment("MSH")[11]) == "T"


def test_a_ris_refusal_shows_the_ris_s_reason(platform_admin_client, hospital, ris):
    ris.ack_code, ris.error_text = "AR", "unknown sending facility"
    point_ris_at(hospital, ris.port)

    results, _ = run_checklist(platform_admin_client, hospital)

    check = results[("hl7", f"127.0.0.1:{ris.port}")]
    assert not check.ok
    assert "unknown sending facility" in check.detail


def test_the_hl7_check_fails_with_its_reason_against_a_closed_port(
    platform_admin_client, hospital
):
    closed = free_port()
    point_ris_at(hospital, closed)

    results, _ = run_checklist(platform_admin_client, hospital)

    check = results[("hl7", f"127.0.0.1:{closed}")]
    assert not check.ok
    assert "Connection refused" in check.detail


def test_it_checks_the_ae_title_domains_and_the_first_admin(
    platform_admin_client, hospital
):
    hospital.domains.create(domain="nowhere.invalid", is_primary=False)
    admin = make_user(hospital, "it.a", Role.TENANT_ADMIN)

    results, _ = run_checklist(platform_admin_client, hospital)

    assert results[("ae_title", "NIMBUS_A")].ok
    assert results[("domain", "a.localhost")].ok
    assert not results[("domain", "nowhere.invalid")].ok
    assert "does not resolve" in results[("domain", "nowhere.invalid")].detail
    # make_user gives a confirmed authenticator: enrolled.
    assert results[("first_admin", admin.username)].ok


def test_a_tenant_without_an_administrator_fails_that_item(
    platform_admin_client, hospital
):
    results, _ = run_checklist(platform_admin_client, hospital)

    assert not results[("first_admin", "")].ok


def test_an_admin_without_an_authenticator_is_not_enrolled(
    platform_admin_client, hospital
):
    with schema_context(hospital.schema_name):
        User.objects.create_user("it.new", role=Role.TENANT_ADMIN, is_staff=True)

    results, _ = run_checklist(platform_admin_client, hospital)

    assert not results[("first_admin", "it.new")].ok
    assert "Not enrolled yet" in results[("first_admin", "it.new")].detail


def test_each_check_is_audited_with_its_outcome(
    platform_admin_client, hospital, storescp
):
    add_remote(hospital, "CT_ROOM1", storescp)
    add_remote(hospital, "GONE", free_port())

    results, _ = run_checklist(platform_admin_client, hospital)

    events = AuditEvent.objects.filter(event_type=EventType.TENANT_CONNECTION_CHECKED)
    assert events.count() == len(results)
    echo = events.get(detail__target=f"CT_ROOM1@127.0.0.1:{storescp}")
    assert (echo.outcome, echo.actor_username, echo.object_id) == (
        Outcome.SUCCESS,
        "platform",
        "hospital_a",
    )
    assert events.get(detail__check="c_echo", outcome=Outcome.FAILURE)


def test_the_checks_run_in_threads_answer_in_the_request_s_language(
    platform_admin_client, hospital
):
    add_remote(hospital, "GONE", free_port())
    point_ris_at(hospital, free_port())
    platform_admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"

    results, _ = run_checklist(platform_admin_client, hospital)

    labels = {result.kind: result.label for result in results.values()}
    assert labels["ae_title"] == "Titre AE défini"
    assert labels["c_echo"] == "C-ECHO vers un AE distant"
    assert labels["hl7"] == "Message HL7 de test vers le RIS"


def test_a_tenant_without_a_domain_fails_that_item(platform_admin_client, hospital):
    hospital.domains.all().delete()

    results, _ = run_checklist(platform_admin_client, hospital)

    assert not results[("domain", "")].ok
    assert "has no domain" in results[("domain", "")].detail
