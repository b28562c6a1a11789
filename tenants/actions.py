"""Creating tenants: the one write path used by the admin's command-line twin."""

import logging
from dataclasses import dataclass

from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

PUBLIC_SCHEMA = "public"


@dataclass(frozen=True)
class TenantSpec:
    schema: str
    name: str
    domains: tuple[str, ...]
    ae_title: str
    # None keeps what the tenant has; "" (or 0) clears it.
    ris_host: str | None = None
    ris_port: int | None = None
    # MLLP over TLS and its files (paths); None keeps, "" clears.
    ris_tls: bool | None = None
    ris_tls_ca_file: str | None = None
    ris_tls_cert_file: str | None = None
    ris_tls_key_file: str | None = None


def do_ensure_public_tenant(domain: str = "localhost") -> Tenant:
    """The public schema's row, so that the bare host reaches the platform admin."""
    tenant, _ = Tenant.objects.get_or_create(
        schema_name=PUBLIC_SCHEMA,
        defaults={"name": "Nimbus platform", "ae_title": "NIMBUS_PUBLIC"},
    )
    Domain.objects.get_or_create(
        domain=domain, defaults={"tenant": tenant, "is_primary": True}
    )
    return tenant


def do_create_tenant(spec: TenantSpec) -> tuple[Tenant, bool]:
    """Create the tenant, its schema and its domains, or update them if present.

    The first domain is the primary one. Returns the tenant and whether it
    was created. Nothing is created when a domain belongs to another tenant.
    """
    taken = (
        Domain.objects.filter(domain__in=spec.domains)
        .exclude(tenant__schema_name=spec.schema)
        .values_list("domain", flat=True)
    )
    if taken:
        raise ValueError(
            f"Domain {', '.join(taken)} already belongs to another tenant."
        )

    tenant = Tenant.objects.filter(schema_name=spec.schema).first()
    created = tenant is None
    if tenant is None:
        tenant = Tenant(schema_name=spec.schema)
    tenant.name = spec.name
    tenant.ae_title = spec.ae_title
    if spec.ris_host is not None:
        tenant.ris_host = spec.ris_host
    if spec.ris_port is not None:
        tenant.ris_port = spec.ris_port or None
    for field in (
        "ris_tls",
        "ris_tls_ca_file",
        "ris_tls_cert_file",
        "ris_tls_key_file",
    ):
        if getattr(spec, field) is not None:
            setattr(tenant, field, getattr(spec, field))
    tenant.full_clean(exclude=None if created else ["schema_name"])
    # save() creates the schema and migrates it when the tenant is new.
    tenant.save()

    for position, name in enumerate(spec.domains):
        Domain.objects.update_or_create(
            domain=name, defaults={"tenant": tenant, "is_primary": position == 0}
        )
    logger.info("tenant %s %s", spec.schema, "created" if created else "updated")
    return tenant, created
