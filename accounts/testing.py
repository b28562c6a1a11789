"""Helpers for tests of other apps that meet the accounts' rules."""

from django.test import Client
from django_tenants.utils import tenant_context

from accounts.sessions import note_reauthentication
from tenants.models import Tenant


def mark_reauthenticated(client: Client, tenant: Tenant) -> Client:
    """As if the client's user had just re-entered a one-time password."""
    with tenant_context(tenant):
        session = client.session
        note_reauthentication(session)
        session.save()
    return client
