"""The production database roles of deploy/postgres/roles.sql, on PostgreSQL.

A scratch database and two scratch roles are set up by that very script (as
the postgres container's init script runs it), migrated and given a tenant
by the owner role as the migrate service does, then used as the application
role as the web, listener, worker and beat processes do. The audit trail must
then take new records from the application, and refuse it every way of
changing, removing or unprotecting them (docs/audit.md, "Append-only").
Everything is dropped at the end.
"""

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
ROLES_SQL = ROOT / "deploy" / "postgres" / "roles.sql"
TENANT = "roles_tenant"

pytestmark = pytest.mark.skipif(
    shutil.which("psql") is None, reason="psql (postgresql-client) is not installed"
)


@dataclass(frozen=True)
class Scratch:
    database: str
    owner: str
    owner_password: str
    app: str
    app_password: str
    var_dir: Path

    def url(self, role: str, password: str) -> str:
        server = settings.DATABASES["default"]
        host = server["HOST"] or "127.0.0.1"
        port = server["PORT"] or "5432"
        return f"postgresql://{role}:{quote(password)}@{host}:{port}/{self.database}"

    @property
    def owner_url(self) -> str:
        return self.url(self.owner, self.owner_password)

    @property
    def app_url(self) -> str:
        return self.url(self.app, self.app_password)


def superuser_conninfo(database: str) -> dict[str, str]:
    server = settings.DATABASES["default"]
    return {
        "dbname": database,
        "user": server["USER"],
        "password": server["PASSWORD"],
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or "5432",
    }


def run_roles_sql(scratch: Scratch) -> None:
    info = superuser_conninfo("postgres")
    variables = {
        "database": scratch.database,
        "owner": scratch.owner,
        "owner_password": scratch.owner_password,
        "app": scratch.app,
        "app_password": scratch.app_password,
    }
    command = ["psql", "-w", "-X", "-q", "-h", info["host"], "-p", info["port"]]
    command += ["-U", info["user"], "-d", "postgres", "-f", str(ROLES_SQL)]
    for name, value in variables.items():
        command += ["-v", f"{name}={value}"]
    env = {**os.environ, "PGPASSWORD": info["password"]}
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)


def manage(scratch: Scratch, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "NIMBUS_VAR_DIR": str(scratch.var_dir),
        "NIMBUS_AUDIT_HEAD_DIR": str(scratch.var_dir / "audit-heads"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def drop_scratch(scratch: Scratch) -> None:
    with psycopg.connect(**superuser_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch.database}" WITH (FORCE)')
        for role in (scratch.app, scratch.owner):
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scratch]:
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    made = Scratch(
        database=f"nimbus_roles_{suffix}",
        owner=f"nimbus_owner_{suffix}",
        owner_password=secrets.token_urlsafe(16),
        app=f"nimbus_app_{suffix}",
        app_password=secrets.token_urlsafe(16),
        var_dir=tmp_path_factory.mktemp("roles-var"),
    )
    try:
        run_roles_sql(made)
        # What the migrate service and `create_tenant` run, as the owner.
        for args in (
            ("migrate_schemas", "--shared", "-v", "0"),
            ("create_tenant", "--schema", TENANT, "--name", "Roles")
            + ("--domain", "roles.localhost", "--ae-title", "NIMBUS_ROLES"),
        ):
            result = manage(made, made.owner_url, *args)
            assert result.returncode == 0, result.stdout + result.stderr
        yield made
    finally:
        drop_scratch(made)


def connect(scratch: Scratch, role: str) -> psycopg.Connection:
    password = scratch.app_password if role == scratch.app else scratch.owner_password
    info = superuser_conninfo(scratch.database) | {"user": role, "password": password}
    conn = psycopg.connect(**info, autocommit=True)
    conn.execute(f"SET search_path = {TENANT}, public")
    return conn


def audit_records(scratch: Scratch) -> int:
    with psycopg.connect(**superuser_conninfo(scratch.database)) as conn:
        sql = f"SELECT count(*) FROM {TENANT}.audit_auditevent"  # noqa: S608 - fixed names
        row = conn.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_neither_role_is_a_superuser_and_the_app_cannot_become_the_owner(
    scratch: Scratch,
) -> None:
    with psycopg.connect(**superuser_conninfo(scratch.database)) as conn:
        roles = conn.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls"
            " FROM pg_roles WHERE rolname IN (%s, %s)",
            [scratch.owner, scratch.app],
        ).fetchall()
        member = conn.execute(
            "SELECT pg_has_role(%s, %s, 'MEMBER')", [scratch.app, scratch.owner]
        ).fetchone()
        owners = conn.execute(
            "SELECT DISTINCT pg_get_userbyid(nspowner) FROM pg_namespace"
            " WHERE nspname IN ('public', %s)",
            [TENANT],
        ).fetchall()

    assert sorted(roles) == sorted(
        [(scratch.owner, False, False, False, False)]
        + [(scratch.app, False, False, False, False)]
    )
    assert member == (False,)
    assert owners == [(scratch.owner,)]


def test_the_app_writes_audit_records_and_seals_them(scratch: Scratch) -> None:
    before = audit_records(scratch)

    created = manage(
        scratch,
        scratch.app_url,
        *("create_user", "--tenant", TENANT, "--username", "rad"),
        *("--role", "radiologist", "--password", "Roles-test-password-42"),
    )
    verified = manage(scratch, scratch.app_url, "verify_audit", "--tenant", TENANT)

    assert created.returncode == 0, created.stdout + created.stderr
    assert audit_records(scratch) > before
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "chain intact" in verified.stdout


REFUSED = [
    "UPDATE {table} SET {key} = {key}",
    "DELETE FROM {table}",
    "TRUNCATE {table}",
    "ALTER TABLE {table} DISABLE TRIGGER ALL",
    "ALTER TABLE {table} DISABLE TRIGGER {table}_no_change",
    "DROP TRIGGER {table}_no_change ON {table}",
    "DROP TABLE {table}",
    "SET session_replication_role = replica",
    "SET LOCAL session_replication_role = replica",
    "SET ROLE {owner}",
    "DROP FUNCTION audit_refuse_change() CASCADE",
    f"DROP SCHEMA {TENANT} CASCADE",
    "CREATE SCHEMA roles_intruder",
]


@pytest.mark.parametrize(
    ("table", "key"), [("audit_auditevent", "id"), ("audit_auditseal", "seq")]
)
@pytest.mark.parametrize("statement", REFUSED)
def test_the_app_may_not_change_remove_or_unprotect_audit_records(
    scratch: Scratch, statement: str, table: str, key: str
) -> None:
    sql = statement.format(table=table, key=key, owner=scratch.owner)

    # The control: the statement is valid and does what it says for a
    # superuser (the reviewer's session_replication_role bypass included).
    with psycopg.connect(**superuser_conninfo(scratch.database)) as conn:
        conn.execute(f"SET search_path = {TENANT}, public")
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(sql)
        conn.rollback()

    with connect(scratch, scratch.app) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql)


def test_the_app_holds_no_privilege_to_change_audit_rows(scratch: Scratch) -> None:
    with connect(scratch, scratch.app) as conn:
        # Not the grantor: PostgreSQL only warns that nothing was granted.
        conn.execute(
            "GRANT UPDATE, DELETE, TRUNCATE ON audit_auditevent, audit_auditseal"
            " TO CURRENT_USER"
        )
        held = conn.execute(
            "SELECT t, p, has_table_privilege(t, p) FROM"
            " unnest(array['audit_auditevent', 'audit_auditseal']) AS t,"
            " unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'])"
            " AS p"
        ).fetchall()

    assert {(t, p) for t, p, granted in held if granted} == {
        ("audit_auditevent", "SELECT"),
        ("audit_auditevent", "INSERT"),
        ("audit_auditseal", "SELECT"),
        ("audit_auditseal", "INSERT"),
    }


def test_the_app_is_told_to_create_a_tenant_as_the_owner(scratch: Scratch) -> None:
    result = manage(
        scratch,
        scratch.app_url,
        *("create_tenant", "--schema", "roles_other", "--name", "Other"),
        *("--domain", "other.localhost", "--ae-title", "NIMBUS_OTHER"),
    )

    assert result.returncode != 0
    assert "Run create_tenant and create_user as the database owner" in result.stderr
    with psycopg.connect(**superuser_conninfo(scratch.database)) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'roles_other'"
        ).fetchone()
    assert left == (0,)


def test_the_owner_creates_a_second_tenant_the_app_can_use(scratch: Scratch) -> None:
    created = manage(
        scratch,
        scratch.owner_url,
        *("create_tenant", "--schema", "roles_second", "--name", "Second"),
        *("--domain", "second.localhost", "--ae-title", "NIMBUS_SECOND"),
    )
    user = manage(
        scratch,
        scratch.app_url,
        *("create_user", "--tenant", "roles_second", "--username", "admin"),
        *("--role", "tenant_admin", "--password", "Roles-test-password-42"),
    )

    assert created.returncode == 0, created.stdout + created.stderr
    assert user.returncode == 0, user.stdout + user.stderr
    with connect(scratch, scratch.app) as conn:
        conn.execute("SET search_path = roles_second, public")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("DELETE FROM audit_auditevent")


def test_migrating_a_schema_again_takes_back_a_granted_update(scratch: Scratch) -> None:
    # As after restore_tenant (pg_restore --no-privileges: the owner's
    # default privileges) or a DBA's GRANT by mistake.
    grant = "GRANT UPDATE, DELETE, TRUNCATE ON {0}.audit_auditevent TO {1}"
    with connect(scratch, scratch.owner) as conn:
        conn.execute(grant.format(TENANT, scratch.app))

    result = manage(
        scratch, scratch.owner_url, "migrate_schemas", "--tenant", "--schema", TENANT
    )

    assert result.returncode == 0, result.stdout + result.stderr
    with connect(scratch, scratch.app) as conn:
        row = conn.execute(
            "SELECT has_table_privilege('audit_auditevent', 'UPDATE')"
            " OR has_table_privilege('audit_auditevent', 'DELETE')"
            " OR has_table_privilege('audit_auditevent', 'TRUNCATE')"
        ).fetchone()
    assert row == (False,)
