"""Reads about a tenant that the platform admin's pages need."""

import datetime

from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.otp import has_second_factor
from audit.models import AuditEvent
from pacs.models import RemoteApplicationEntity, Study
from reporting.models import Addendum, Report
from tenants.models import Tenant, TenantExport


def may_create_schemas() -> bool:
    """Whether this process's database role may create a tenant's schema.

    The production application role may not (deploy/postgres/roles.sql):
    tenants are then created by create_tenant run as the database owner.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_database_privilege(current_database(), 'CREATE')")
        return bool(cursor.fetchone()[0])


def may_drop_schema(tenant: Tenant) -> bool:
    """Whether this process's database role owns the tenant's schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(nspowner, 'USAGE') FROM pg_namespace"
            " WHERE nspname = %s",
            [tenant.schema_name],
        )
        row = cursor.fetchone()
    return row is None or bool(row[0])


def last_change(tenant: Tenant) -> datetime.datetime | None:
    """When the tenant's studies, reports or audit trail last changed.

    Every read of patient data writes an audit record, so a study opened
    after an export makes that export out of date too: the archive would
    miss that record.
    """
    with schema_context(tenant.schema_name):
        moments = [
            Study.objects.aggregate(at=Max("updated_at"))["at"],
            Report.objects.aggregate(at=Max("updated_at"))["at"],
            Addendum.objects.aggregate(at=Max("signed_at"))["at"],
            AuditEvent.objects.aggregate(at=Max("occurred_at"))["at"],
        ]
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def newest_study_received_at(tenant: Tenant) -> datetime.datetime | None:
    with schema_context(tenant.schema_name):
        return Study.objects.aggregate(at=Max("received_at"))["at"]


def retention_ends_at(tenant: Tenant) -> datetime.datetime | None:
    """When the tenant's newest study leaves its retention period; None: no study."""
    newest = newest_study_received_at(tenant)
    if newest is None:
        return None
    return newest + datetime.timedelta(days=tenant.retention_days)


def under_retention(tenant: Tenant) -> bool:
    ends = retention_ends_at(tenant)
    return ends is not None and ends > timezone.now()


def latest_export(tenant: Tenant) -> TenantExport | None:
    return tenant.exports.first()


def remote_aes(tenant: Tenant) -> list[RemoteApplicationEntity]:
    with schema_context(tenant.schema_name):
        return list(RemoteApplicationEntity.objects.all())


def tenant_admins(tenant: Tenant) -> list[tuple[User, bool]]:
    """The tenant's administrators, each with whether they enrolled a second factor."""
    with schema_context(tenant.schema_name):
        admins = User.objects.filter(role=Role.TENANT_ADMIN, is_active=True)
        return [(user, has_second_factor(user)) for user in admins.order_by("pk")]
