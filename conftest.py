"""Shared fixtures: two tenants and the people who use them.

Hospital A has a radiologist and a referrer (who may not read studies);
hospital B has its own radiologist. Tests that cross the wall use both.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import get_public_schema_name, tenant_context

from accounts.actions import do_create_user, totp_secret_to_hex
from accounts.models import Role, User
from tenants.actions import TenantSpec, do_create_tenant, do_ensure_public_tenant
from tenants.models import Tenant

SHARED_DATA = Path(__file__).resolve().parents[1] / "shared" / "data" / "dicom"
CT_SERIES = SHARED_DATA / "tcia-pancreas-ct" / "series-201"
PASSWORD = "Correct-horse-battery-9"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

TENANT_A = TenantSpec(
    "hospital_a", "Hospital A", ("a.localhost",), "NIMBUS_A", "127.0.0.1", 1
)
TENANT_B = TenantSpec("hospital_b", "Hospital B", ("b.localhost",), "NIMBUS_B")


def current_totp(secret: str = TOTP_SECRET) -> str:
    return f"{totp(bytes.fromhex(totp_secret_to_hex(secret))):06d}"


@pytest.fixture(scope="session", autouse=True)
def audit_head_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Chain heads of the test databases, never in var/ (audit/heads.py).

    A head left by an earlier run's hospital_a would read as a chain cut
    short. The environment carries it to the processes that tests start.
    """
    head_dir = tmp_path_factory.mktemp("audit-heads")
    django_settings.NIMBUS_AUDIT_HEAD_DIR = head_dir
    os.environ["NIMBUS_AUDIT_HEAD_DIR"] = str(head_dir)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """After the test database exists, create the two tenants' schemas once."""
    with django_db_blocker.unblock():
        do_ensure_public_tenant()
        do_create_tenant(TENANT_A)
        do_create_tenant(TENANT_B)
        connection.set_schema_to_public()


@pytest.fixture
def tenant_a(db: None) -> Iterator[Tenant]:
    tenant = Tenant.objects.get(schema_name=TENANT_A.schema)
    with tenant_context(tenant):
        yield tenant


@pytest.fixture
def tenant_b(db: None) -> Tenant:
    connection.set_schema_to_public()
    tenant = Tenant.objects.get(schema_name=TENANT_B.schema)
    return tenant


def make_user(tenant: Tenant, username: str, role: Role) -> User:
    with tenant_context(tenant):
        user, _ = do_create_user(username, role, PASSWORD, TOTP_SECRET)
    return user


@pytest.fixture
def radiologist(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "rad.a", Role.RADIOLOGIST)


@pytest.fixture
def referrer(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "ref.a", Role.REFERRER)


@pytest.fixture
def radiologist_b(tenant_b: Tenant) -> User:
    return make_user(tenant_b, "rad.b", Role.RADIOLOGIST)


def tenant_client(tenant: Tenant, user: User | None = None) -> Client:
    """A test client on the tenant's host, signed in with a verified second factor."""
    client = Client(HTTP_HOST=tenant.domains.first().domain)  # type: ignore[union-attr]
    if user is not None:
        with tenant_context(tenant):
            client.force_login(user)
            device = TOTPDevice.objects.get(user=user)
            session = client.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()
    return client


@pytest.fixture
def client_a(tenant_a: Tenant, radiologist: User) -> Client:
    return tenant_client(tenant_a, radiologist)


@pytest.fixture(autouse=True)
def _back_to_public() -> Iterator[None]:
    yield
    if connection.schema_name != get_public_schema_name():
        connection.set_schema_to_public()


@pytest.fixture
def storage_dirs(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    """Spool and archive in a temporary folder, so tests never touch var/."""
    settings.NIMBUS_SPOOL_DIR = tmp_path / "spool"
    settings.NIMBUS_STORAGE_DIR = tmp_path / "storage"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "storage")},
        },
    }
    return tmp_path
