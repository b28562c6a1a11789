"""Shared helper: run a command's body inside one tenant's schema."""

from django.core.management.base import CommandError

from tenants.models import Tenant


def get_tenant(schema: str) -> Tenant:
    tenant = Tenant.objects.filter(schema_name=schema).first()
    if tenant is None:
        raise CommandError(f"No tenant with schema {schema!r}.")
    return tenant
