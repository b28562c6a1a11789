"""Tenants' lifecycle: onboarding, suspension, export and deletion.

The one write path of the platform admin and its command-line twins.
"""

import datetime
import logging
import secrets
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit import heads
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.models import Instance, RemoteApplicationEntity
from tenants import checklist, exports, selectors
from tenants.connection_checks import CheckResult
from tenants.models import (
    Domain,
    Tenant,
    TenantExport,
    normalise_host,
    validate_host,
)

logger = logging.getLogger(__name__)

PUBLIC_SCHEMA = "public"

# In production the web processes connect as a role that owns no schema, so
# that it cannot switch off the audit trail's protections (docs/audit.md):
# creating and dropping a schema is then the database owner's, on the command
# line (docs/operations.md, "Database roles").
OWNER_ONLY_CREATE = _lazy(
    "This server's database role may not create schemas. Run create_tenant "
    "and create_user as the database owner (docs/operations.md)."
)
OWNER_ONLY_DROP = _lazy(
    "This server's database role does not own the tenant's schema. Run "
    "drop_tenant as the database owner (docs/operations.md)."
)


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
    idle_timeout_minutes: int | None = None
    retention_days: int | None = None
    # The first is the default; an empty tuple offers every language.
    languages: tuple[str, ...] | None = None


def do_ensure_public_tenant(domain: str = "localhost") -> Tenant:
    """The public schema's row, so that the bare host reaches the platform admin."""
    tenant, _created = Tenant.objects.get_or_create(
        schema_name=PUBLIC_SCHEMA,
        defaults={"name": "Nimbus platform", "ae_title": "NIMBUS_PUBLIC"},
    )
    Domain.objects.get_or_create(
        domain=domain, defaults={"tenant": tenant, "is_primary": True}
    )
    return tenant


@transaction.atomic
def do_create_tenant(spec: TenantSpec) -> tuple[Tenant, bool]:
    """Create the tenant, its schema and its domains, or update them if present.

    The first domain is the primary one. Returns the tenant and whether it
    was created. Nothing is created when a domain belongs to another tenant.
    """
    domains = [normalise_host(name) for name in spec.domains]
    taken = (
        Domain.objects.filter(domain__in=domains)
        .exclude(tenant__schema_name=spec.schema)
        .values_list("domain", flat=True)
    )
    if taken:
        message = _("Domain %(domains)s already belongs to another tenant.")
        raise ValidationError({"domains": message % {"domains": ", ".join(taken)}})

    tenant = Tenant.objects.filter(schema_name=spec.schema).first()
    created = tenant is None
    if created and not selectors.may_create_schemas():
        raise ValidationError(OWNER_ONLY_CREATE)
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
        "idle_timeout_minutes",
        "retention_days",
    ):
        if getattr(spec, field) is not None:
            setattr(tenant, field, getattr(spec, field))
    if spec.languages is not None:
        tenant.languages = list(spec.languages)
    tenant.full_clean(exclude=None if created else ["schema_name"])
    _save_tenant(tenant)

    for position, name in enumerate(domains):
        _claim_domain(tenant, name, primary=position == 0)
    logger.info("tenant %s %s", spec.schema, "created" if created else "updated")
    return tenant, created


def _save_tenant(tenant: Tenant) -> None:
    """Save (and, when new, create and migrate the schema); a race is a refusal.

    full_clean() saw no other tenant with this AE title or schema, but one
    committed since (two onboardings at once) fails on the unique index.
    """
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        constraint = str(getattr(diag, "constraint_name", None) or "")
        if "ae_title" in constraint:
            message = _("Another tenant already has this AE title.")
            raise ValidationError({"ae_title": message}) from error
        if "schema_name" in constraint:
            message = _("A tenant with this schema already exists.")
            raise ValidationError({"schema_name": message}) from error
        raise


def _claim_domain(tenant: Tenant, name: str, *, primary: bool) -> None:
    """Give ``name`` to ``tenant``, never taking it from another tenant.

    The row is locked while it is checked; a domain that another tenant's
    onboarding inserted since the first check fails on the unique index, and
    is then read again (update_or_create would have handed it over).
    """
    domain = Domain.objects.select_for_update().filter(domain=name).first()
    if domain is None:
        try:
            with transaction.atomic():
                Domain.objects.create(domain=name, tenant=tenant, is_primary=primary)
            return
        except IntegrityError:
            domain = Domain.objects.select_for_update().get(domain=name)
    if domain.tenant_id != tenant.pk:
        message = _("Domain %(domains)s already belongs to another tenant.")
        raise ValidationError({"domains": message % {"domains": name}})
    if domain.is_primary != primary:
        domain.is_primary = primary
        domain.save(update_fields=["is_primary"])


# --- Onboarding, suspension, export and deletion (issue 7 item 1) -----------


@dataclass(frozen=True)
class RemoteAESpec:
    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class OnboardingSpec:
    tenant: TenantSpec
    admin_username: str
    admin_email: str
    remote_aes: tuple[RemoteAESpec, ...] = ()


@dataclass(frozen=True)
class Onboarded:
    tenant: Tenant
    admin: User
    # Shown once to the platform admin who onboarded the tenant; never stored.
    initial_password: str


class TenantNotDeletable(Exception):
    """Deletion refused; the message says why, for hospital IT."""


@transaction.atomic
def do_onboard_tenant(spec: OnboardingSpec, *, request: HttpRequest) -> Onboarded:
    """Create a tenant with its schema, remote AEs and first administrator.

    All or nothing: PostgreSQL creates the schema and its tables inside this
    transaction, so a refusal halfway (a taken AE title, a bad remote AE)
    leaves no schema, domain or user behind.
    """
    if Tenant.objects.filter(schema_name=spec.tenant.schema).exists():
        raise ValidationError(
            {"schema_name": _("A tenant with this schema already exists.")}
        )
    tenant, _created = do_create_tenant(spec.tenant)
    _record_tenant_event(
        EventType.TENANT_CHANGED,
        request,
        tenant,
        detail={"created": True, "onboarded": True},
    )

    with schema_context(tenant.schema_name):
        for remote in spec.remote_aes:
            entity = RemoteApplicationEntity(
                ae_title=remote.ae_title, host=remote.host, port=remote.port
            )
            entity.full_clean()
            # pacs's model takes any text as a host; what a peer is
            # reached at must be a host name or an address.
            validate_host(entity.host)
            entity.save()
        admin, password = _create_first_admin(spec, request)
    return Onboarded(tenant=tenant, admin=admin, initial_password=password)


def _create_first_admin(spec: OnboardingSpec, request: HttpRequest) -> tuple[User, str]:
    # No authenticator yet: the first sign-in leads to enrolment and nowhere
    # else (accounts.middleware), so the password alone opens nothing.
    password = secrets.token_urlsafe(12)
    admin = User(
        username=spec.admin_username,
        email=spec.admin_email,
        role=Role.TENANT_ADMIN,
        is_staff=True,
    )
    admin.set_password(password)
    admin.full_clean()
    admin.save()
    do_record_event(
        EventType.USER_CHANGED,
        actor_username=request.user.get_username(),
        object_type="user",
        object_id=str(admin.pk),
        detail={
            "username": admin.username,
            "role": Role.TENANT_ADMIN,
            "created": True,
        },
    )
    return admin, password


def do_suspend_tenant(tenant: Tenant, *, request: HttpRequest) -> bool:
    """Suspend a tenant: its hosts answer a notice, its AE title is rejected."""
    return _set_active(tenant, False, EventType.TENANT_SUSPENDED, request)


def do_reactivate_tenant(tenant: Tenant, *, request: HttpRequest) -> bool:
    return _set_active(tenant, True, EventType.TENANT_REACTIVATED, request)


@transaction.atomic
def _set_active(
    tenant: Tenant, active: bool, event_type: EventType, request: HttpRequest
) -> bool:
    """Returns whether the tenant changed; a repeat is neither saved nor audited."""
    if tenant.is_active == active or tenant.schema_name == PUBLIC_SCHEMA:
        return False
    tenant.is_active = active
    tenant.save(update_fields=["is_active"])
    _record_tenant_event(event_type, request, tenant)
    logger.info("tenant %s %s", tenant.schema_name, event_type.name.lower())
    return True


def do_check_tenant(tenant: Tenant, *, request: HttpRequest) -> list[CheckResult]:
    """Run the onboarding checklist; one audit record per item."""
    results = checklist.run(tenant, request.get_host())
    for result in results:
        _record_tenant_event(
            EventType.TENANT_CONNECTION_CHECKED,
            request,
            tenant,
            outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE,
            detail={
                "check": result.kind,
                "target": result.target,
                "detail": result.detail,
            },
        )
    return results


def do_export_tenant(tenant: Tenant, *, request: HttpRequest) -> TenantExport:
    """Write the tenant's archive (DICOM files, reports, audit trail, manifest).

    The export is recorded in the public schema only: a record in the
    tenant's own trail would make the archive out of date at once.
    """
    covers_until = selectors.last_change(tenant)
    written = exports.write_archive(tenant, export_dir())
    with transaction.atomic():
        export = TenantExport.objects.create(
            tenant=tenant,
            schema_name=tenant.schema_name,
            path=str(written.path),
            sha256=written.sha256,
            size=written.size,
            study_count=written.study_count,
            instance_count=written.instance_count,
            covers_until=covers_until,
            created_by=request.user.get_username(),
        )
        _record_tenant_event(
            EventType.TENANT_EXPORTED,
            request,
            tenant,
            detail={
                "export": export.pk,
                "sha256": export.sha256,
                "studies": export.study_count,
                "instances": export.instance_count,
            },
        )
    logger.info(
        "tenant %s exported: %d studies, %d instances, %d bytes",
        tenant.schema_name,
        export.study_count,
        export.instance_count,
        export.size,
    )
    return export


def export_dir() -> Path:
    return Path(settings.NIMBUS_TENANT_EXPORT_DIR)


def deletion_refusal(
    tenant: Tenant, *, custody_handed_over: bool, backup: Path | None = None
) -> str | None:
    """Why the tenant may not be deleted now; None when it may.

    The rules (docs/configuration.md, "Onboarding and offboarding"): the
    tenant is suspended; an export exists that holds its last change and is
    still intact on disk; and no study is within the retention period,
    unless the export was handed over to the hospital, which then keeps it.
    ``backup``, a backup_tenant folder (drop_tenant --backup), may stand in
    for the export: it must verify (signature, checksums) and be of this
    tenant, taken after its last change.
    """
    if tenant.is_active:
        return _("Suspend the tenant first.")
    if not selectors.may_drop_schema(tenant):
        return str(OWNER_ONLY_DROP)
    copy = _backup_copy(tenant, backup) if backup else _export_copy(tenant)
    if isinstance(copy, str):
        return copy
    covers_until, again = copy
    changed = selectors.last_change(tenant)
    if changed is not None and (covers_until is None or changed > covers_until):
        return again
    if selectors.under_retention(tenant) and not custody_handed_over:
        ends = selectors.retention_ends_at(tenant)
        return _(
            "Studies are within the retention period until %(date)s. Delete now "
            "only if the hospital has taken over the export."
        ) % {"date": formats.date_format(ends, "DATE_FORMAT")}
    return None


def _export_copy(tenant: Tenant) -> tuple[datetime.datetime | None, str] | str:
    """What the last export covers, or why it cannot serve."""
    export = selectors.latest_export(tenant)
    if export is None:
        return _("Export the tenant first.")
    if not exports.is_intact(Path(export.path), export.sha256):
        return _("The last export is missing or damaged: export the tenant again.")
    again = _("The tenant changed after its last export: export it again.")
    return export.covers_until, again


def _backup_copy(
    tenant: Tenant, folder: Path
) -> tuple[datetime.datetime | None, str] | str:
    """What the backup in ``folder`` covers, or why it cannot serve."""
    from ops.backup import BackupError, counts_in, read_verified_manifest

    try:
        manifest = read_verified_manifest(folder)
    except BackupError as error:
        return _("The backup does not verify: %(error)s") % {"error": error}
    if manifest["schema"] != tenant.schema_name:
        return _("The backup is of another tenant.")
    again = _("The tenant changed after the backup: back it up again.")
    # A write that began before the backup's snapshot and committed after it
    # carries a time older than the backup yet is not in it: the suspended
    # tenant's rows must also be those the backup counted.
    if counts_in(tenant.schema_name) != manifest["counts"]:
        return again
    taken = datetime.datetime.fromisoformat(str(manifest["created_at"]))
    return taken, again


def do_delete_tenant(
    tenant: Tenant,
    *,
    request: HttpRequest | None,
    custody_handed_over: bool = False,
    backup: Path | None = None,
    actor_username: str = "",
) -> None:
    """Drop the tenant's schema, domains and stored files, after the checks.

    From the admin (``request``) or drop_tenant (``actor_username``, and a
    backup folder in place of the export).
    """
    actor = {"actor_username": actor_username} if actor_username else {}
    refusal = deletion_refusal(
        tenant, custody_handed_over=custody_handed_over, backup=backup
    )
    if refusal is not None:
        _record_tenant_event(
            EventType.TENANT_DELETED,
            request,
            tenant,
            outcome=Outcome.FAILURE,
            detail={"refused": refusal},
            **actor,
        )
        raise TenantNotDeletable(refusal)

    export = selectors.latest_export(tenant)
    with schema_context(tenant.schema_name):
        stored = list(Instance.objects.values_list("storage_path", flat=True))
    heads_archive = heads.archived_head_file(tenant.schema_name, timezone.now())
    with transaction.atomic():
        _record_tenant_event(
            EventType.TENANT_DELETED,
            request,
            tenant,
            detail={
                "export": export.pk if export else None,
                "sha256": export.sha256 if export else "",
                "backup": str(backup) if backup else "",
                "custody_handed_over": custody_handed_over,
                "instances": len(stored),
                "audit_heads": heads_archive.name,
            },
            **actor,
        )
        tenant.delete(force_drop=True)
        # Files go only once the rows are gone for good: a failed drop
        # leaves a tenant whose images are all still there.
        transaction.on_commit(partial(exports.delete_stored_files, stored))
        transaction.on_commit(
            partial(heads.do_archive_head_file, tenant.schema_name, heads_archive)
        )
    logger.info("tenant %s deleted", tenant.schema_name)


def do_drop_orphan_schema(schema: str, *, actor_username: str) -> int:
    """Drop a schema that has no tenant row, left by a restore killed after
    pg_restore (restore_tenant drops one it marked by itself), and the
    stored files its instance rows name; how many files. Audited."""
    from ops.backup import BackupError, orphan_schema_state, restore_lock

    try:
        with restore_lock(schema):
            return _drop_orphan_schema(
                schema, orphan_schema_state(schema), actor_username
            )
    except BackupError as error:  # a restore of it is running
        raise TenantNotDeletable(str(error)) from None


def _drop_orphan_schema(schema: str, comment: str | None, actor_username: str) -> int:
    if comment is None or schema == PUBLIC_SCHEMA or schema.startswith("pg_"):
        raise TenantNotDeletable(
            _("No schema %(schema)s without a tenant here.") % {"schema": schema}
        )
    quoted = connection.ops.quote_name(schema)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [f"{quoted}.pacs_instance"])
        has_instances = cursor.fetchone()[0] is not None
        stored: list[str] = []
        if has_instances:
            cursor.execute(f"SELECT storage_path FROM {quoted}.pacs_instance")  # noqa: S608 - a quoted schema name
            stored = [str(name) for (name,) in cursor.fetchall()]
    with transaction.atomic():
        with schema_context(PUBLIC_SCHEMA):
            do_record_event(
                EventType.TENANT_DELETED,
                request=None,
                object_type="tenant",
                object_id=schema,
                detail={
                    "orphan_schema": True,
                    "comment": comment,
                    "instances": len(stored),
                },
                actor_username=actor_username,
            )
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {quoted} CASCADE")
        transaction.on_commit(partial(exports.delete_stored_files, stored))
    logger.info("orphan schema %s dropped: %d stored files", schema, len(stored))
    return len(stored)


def _record_tenant_event(
    event_type: EventType,
    request: HttpRequest | None,
    tenant: Tenant,
    **extra: Any,
) -> None:
    # Platform staff and their actions live in the public schema.
    with schema_context(PUBLIC_SCHEMA):
        do_record_event(
            event_type,
            request=request,
            object_type="tenant",
            object_id=tenant.schema_name,
            **extra,
        )
