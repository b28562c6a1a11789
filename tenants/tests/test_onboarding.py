import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.actions import do_create_user
from accounts.models import Role
from audit.models import AuditEvent, EventType
from conftest import PASSWORD, TOTP_SECRET
from tenants.models import Tenant


@pytest.fixture
def platform_admin_client(db):  # type: ignore[no-untyped-def]
    connection.set_schema_to_public()
    user, _ = do_create_user("platform", Role.PLATFORM_ADMIN, PASSWORD, TOTP_SECRET)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return client


def test_it_shows_hospital_it_the_tenant_form_in_the_public_admin(
    platform_admin_client,
):
    response = platform_admin_client.get("/tenants/tenant/add/")

    page = response.content.decode()
    assert response.status_code == 200
    for field in (
        "schema_name",
        "ae_title",
        "ris_host",
        "ris_port",
        "domains-0-domain",
    ):
        assert f'name="{field}"' in page


def test_it_lists_tenants_but_not_the_public_schema(platform_admin_client):
    page = platform_admin_client.get("/tenants/tenant/").content.decode()

    assert "hospital_a" in page and "hospital_b" in page
    assert "Nimbus platform" not in page


def test_it_refuses_the_admin_to_a_password_only_session(db):
    connection.set_schema_to_public()
    user, _ = do_create_user("platform2", Role.PLATFORM_ADMIN, PASSWORD, TOTP_SECRET)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    assert client.get("/tenants/tenant/").status_code == 302


def test_create_tenant_refuses_an_ae_title_already_in_use(db, capsys):
    with pytest.raises(CommandError, match="AE title"):
        call_command(
            "create_tenant",
            "--schema",
            "other",
            "--name",
            "Other",
            "--domain",
            "other.localhost",
            "--ae-title",
            "NIMBUS_A",
        )
    assert not Tenant.objects.filter(schema_name="other").exists()


def test_create_tenant_is_idempotent(db, capsys):
    call_command(
        "create_tenant",
        "--schema",
        "hospital_b",
        "--name",
        "Hospital B",
        "--domain",
        "b.localhost",
        "--ae-title",
        "NIMBUS_B",
    )

    assert "Updated tenant hospital_b" in capsys.readouterr().out
    with schema_context("public"):
        assert Tenant.objects.filter(ae_title="NIMBUS_B").count() == 1


def test_create_tenant_takes_domain_aliases_and_refuses_a_taken_one(db, capsys):
    call_command(
        "create_tenant",
        "--schema",
        "hospital_b",
        "--name",
        "Hospital B",
        "--domain",
        "b.localhost",
        "--domain",
        "pacs.hospital-b.example",
        "--ae-title",
        "NIMBUS_B",
    )
    with pytest.raises(CommandError, match="a.localhost"):
        call_command(
            "create_tenant",
            "--schema",
            "thief",
            "--name",
            "Thief",
            "--domain",
            "a.localhost",
            "--ae-title",
            "THIEF",
        )

    hospital_b = Tenant.objects.get(schema_name="hospital_b")
    assert sorted(hospital_b.domains.values_list("domain", flat=True)) == [
        "b.localhost",
        "pacs.hospital-b.example",
    ]
    assert hospital_b.get_primary_domain().domain == "b.localhost"
    assert not Tenant.objects.filter(schema_name="thief").exists()


def test_hospital_it_creates_a_tenant_with_its_schema_in_the_admin(
    platform_admin_client,
):
    response = platform_admin_client.post(
        "/tenants/tenant/add/",
        {
            "name": "St Luke",
            "schema_name": "stluke",
            "is_active": "on",
            "idle_timeout_minutes": "15",
            "ae_title": "STLUKE",
            "ris_host": "127.0.0.1",
            "ris_port": "2575",
            "ris_receiving_application": "RIS",
            "ris_receiving_facility": "",
            "domains-TOTAL_FORMS": "1",
            "domains-INITIAL_FORMS": "0",
            "domains-MIN_NUM_FORMS": "1",
            "domains-MAX_NUM_FORMS": "1000",
            "domains-0-domain": "stluke.localhost",
            "domains-0-is_primary": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    tenant = Tenant.objects.get(schema_name="stluke")
    assert (tenant.ae_title, tenant.ris_port) == ("STLUKE", 2575)
    assert tenant.get_primary_domain().domain == "stluke.localhost"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = 'stluke' AND table_name = 'pacs_study'"
        )
        assert cursor.fetchone() == (1,)
    event = AuditEvent.objects.get(event_type=EventType.TENANT_CHANGED)
    assert (event.actor_username, event.object_id) == ("platform", "stluke")
    assert event.detail["created"] is True


def test_create_tenant_keeps_the_ris_endpoint_when_it_is_not_given(db, capsys):
    call_command(
        "create_tenant",
        "--schema",
        "hospital_a",
        "--name",
        "Hospital A renamed",
        "--domain",
        "a.localhost",
        "--ae-title",
        "NIMBUS_A",
    )

    hospital_a = Tenant.objects.get(schema_name="hospital_a")
    assert (hospital_a.name, hospital_a.ris_host, hospital_a.ris_port) == (
        "Hospital A renamed",
        "127.0.0.1",
        1,
    )


def test_create_tenant_sets_the_ris_tls_link_and_keeps_it_on_a_later_update(db):  # type: ignore[no-untyped-def]
    base = ("--schema", "hospital_t", "--name", "T", "--domain", "t.localhost")
    call_command(
        "create_tenant",
        *base,
        "--ae-title",
        "NIMBUS_T",
        "--ris-host",
        "ris.t.example.org",
        "--ris-port",
        "2575",
        "--ris-tls",
        "--ris-tls-ca",
        "/etc/nimbus/ris-ca.pem",
        "--ris-tls-cert",
        "/etc/nimbus/t.crt",
        "--ris-tls-key",
        "/etc/nimbus/t.key",
    )
    call_command("create_tenant", *base, "--ae-title", "NIMBUS_T2")

    tenant = Tenant.objects.get(schema_name="hospital_t")
    assert tenant.ris_tls is True
    assert tenant.ris_tls_ca_file == "/etc/nimbus/ris-ca.pem"
    assert (tenant.ris_tls_cert_file, tenant.ris_tls_key_file) == (
        "/etc/nimbus/t.crt",
        "/etc/nimbus/t.key",
    )


def test_create_tenant_refuses_a_relative_path_or_a_certificate_without_its_key(db):  # type: ignore[no-untyped-def]
    base = ("--schema", "hospital_u", "--name", "U", "--domain", "u.localhost")
    with pytest.raises(CommandError, match="full path"):
        call_command(
            "create_tenant", *base, "--ae-title", "NIMBUS_U", "--ris-tls-ca", "ca.pem"
        )
    with pytest.raises(CommandError, match="both"):
        call_command(
            "create_tenant", *base, "--ae-title", "NIMBUS_U", "--ris-tls-cert", "/c.pem"
        )
    assert not Tenant.objects.filter(schema_name="hospital_u").exists()


def test_the_tenant_form_has_the_ris_tls_fields(platform_admin_client):  # type: ignore[no-untyped-def]
    page = platform_admin_client.get("/tenants/tenant/add/").content.decode()

    for field in (
        "ris_tls",
        "ris_tls_ca_file",
        "ris_tls_cert_file",
        "ris_tls_key_file",
    ):
        assert f'name="{field}"' in page


def test_admin_pages_allow_inline_styles_but_never_inline_scripts(
    platform_admin_client,
):
    # django-tenants' admin templates carry a <style> block; nothing else may.
    policy = platform_admin_client.get("/tenants/tenant/add/")[
        "Content-Security-Policy"
    ]

    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self';" in policy + ";"
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
