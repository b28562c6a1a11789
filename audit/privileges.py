"""Only the owner of the audit tables may change their rows' privileges.

In production the application connects as a role that owns nothing
(deploy/postgres/roles.sql): the owner's default privileges give it
SELECT, INSERT, UPDATE and DELETE on every table it creates, this trail's
included. After each migration of a schema (each tenant's at its creation,
and public), every role but the owner loses UPDATE, DELETE and TRUNCATE on
the trail again, whatever its name; the triggers of migration 0006 refuse
them too, but a privilege that is not there cannot be misused by a trigger
dropped by mistake.
"""

from typing import Any

from django.db import connections

TABLES = ("audit_auditevent", "audit_auditseal")

_GRANTEES = """
SELECT DISTINCT acl.grantee::regrole::text
FROM pg_class AS c, aclexplode(c.relacl) AS acl
WHERE c.oid = ANY(%s::regclass[])
  AND acl.grantee <> c.relowner
  AND acl.grantee <> 0
  AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
"""


def revoke_changes_from_other_roles(using: str = "default", **_kwargs: Any) -> None:
    """A post_migrate receiver: runs in the schema that was just migrated."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        revoke_audit_changes(getattr(connection, "schema_name", "public"), using)


def revoke_audit_changes(schema: str, using: str = "default") -> None:
    """Take UPDATE, DELETE and TRUNCATE on the schema's trail from all but its owner.

    Also for a schema filled by pg_restore --no-privileges, whose tables got
    the owner's default privileges and no migration ran.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    tables = [f"{quote(schema)}.{table}" for table in TABLES]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s), to_regclass(%s)", tables)
        if None in cursor.fetchone():
            return
        cursor.execute(_GRANTEES, [tables])
        for (grantee,) in cursor.fetchall():
            # regrole::text is already quoted as an identifier.
            cursor.execute(
                f"REVOKE UPDATE, DELETE, TRUNCATE ON {', '.join(tables)} FROM {grantee}"
            )
