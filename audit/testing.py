"""What a database administrator (or a test's clean-up) may do to the trail.

Both helpers need a PostgreSQL superuser: ``session_replication_role`` turns
off the append-only triggers for one transaction, and PostgreSQL refuses to
set it for any other role, so the application's role in production (never a
superuser, see docs/audit.md) cannot use them. Nothing in the product calls
them.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from audit.models import AuditEvent, AuditExportState, AuditSeal


@contextmanager
def triggers_off_as_superuser() -> Iterator[None]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        yield
        # SET LOCAL would last to the end of an enclosing transaction.
        cursor.execute("SET LOCAL session_replication_role = origin")


def purge_audit_trail() -> None:
    """Empty the current schema's trail, chain and export marker (test clean-up)."""
    with triggers_off_as_superuser():
        AuditSeal.objects.all().delete()
        AuditEvent.objects.all().delete()
        AuditExportState.objects.all().delete()
