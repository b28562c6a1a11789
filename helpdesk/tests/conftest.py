"""Personas of the helpdesk tests: platform helpdesk staff and tenant admins."""

from collections.abc import Callable

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from conftest import make_user, tenant_client
from tenants.models import Tenant

CONSOLE = "/helpdesk/"
APPROVALS = "/helpdesk/approvals/"


@pytest.fixture
def public(db: None) -> Tenant:
    return Tenant.objects.get(schema_name="public")


@pytest.fixture
def tenant_a_row(db: None) -> Tenant:
    return Tenant.objects.get(schema_name="hospital_a")


@pytest.fixture
def helpdesk(public: Tenant) -> User:
    return make_user(public, "help.desk", Role.HELPDESK)


@pytest.fixture
def helpdesk_client(public: Tenant, helpdesk: User) -> Client:
    return tenant_client(public, helpdesk)


def person(
    tenant: Tenant, username: str, role: Role, first: str, last: str, email: str
) -> User:
    user = make_user(tenant, username, role)
    with schema_context(tenant.schema_name):
        User.objects.filter(pk=user.pk).update(
            first_name=first, last_name=last, email=email
        )
        user.refresh_from_db()
    return user


@pytest.fixture
def ann_a(tenant_a_row: Tenant) -> User:
    return person(
        tenant_a_row, "asmith", Role.RADIOLOGIST, "Ann", "Smith", "ann@a.example"
    )


@pytest.fixture
def annabel_b(tenant_b: Tenant) -> User:
    return person(
        tenant_b, "ajones", Role.REFERRER, "Annabel", "Jones", "annabel@b.example"
    )


@pytest.fixture
def admin_a(tenant_a_row: Tenant) -> User:
    return make_user(tenant_a_row, "admin.a", Role.TENANT_ADMIN)


@pytest.fixture
def admin_client_a(tenant_a_row: Tenant, admin_a: User) -> Client:
    return tenant_client(tenant_a_row, admin_a)


Events = Callable[..., list[AuditEvent]]


@pytest.fixture
def events() -> Events:
    def read(schema: str, event_type: EventType, **filters: object) -> list[AuditEvent]:
        with schema_context(schema):
            return list(
                AuditEvent.objects.filter(event_type=event_type, **filters).order_by(
                    "id"
                )
            )

    return read
