"""backup_tenant and restore_tenant, end to end on a running deployment.

Studies arrive over DICOM, a report is written and signed, the audit chain
is sealed; the tenant is backed up, dropped with drop_tenant (schema, rows,
files, anchor) and restored, into the same deployment and into a fresh
one. The same studies, report and files come back, and the audit chain
still verifies.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import ops.backup
from ops.backup import COUNTED_TABLES, manifest_signature
from tests.scaleout.test_two_of_each import new_series, storescu
from tests.support.ris import RisListener
from tests.support.stack import Stack, free_port, running_stack, wait_for

# The deployment's backup key: tests that play a forger who has it re-sign.
BACKUP_KEY = "test-backup-key-0123456789abcdef"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("backup"),
        free_port(),
        env={"NIMBUS_BACKUP_KEY": BACKUP_KEY},
    ) as running:
        yield running


def snapshot(stack: Stack, database_url: str = "") -> dict[str, object]:
    url = database_url or stack.env["DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET search_path TO {stack.schema}, public")

        def rows(query: str) -> list[tuple[object, ...]]:
            return conn.execute(query).fetchall()  # type: ignore[arg-type]

        return {
            "studies": rows("SELECT study_instance_uid FROM pacs_study ORDER BY 1"),
            "instances": rows(
                "SELECT sop_instance_uid, storage_path FROM pacs_instance ORDER BY 1"
            ),
            "reports": rows("SELECT status, text FROM reporting_report ORDER BY id"),
            "audit": rows("SELECT id, event_type FROM audit_auditevent ORDER BY id"),
        }


def drop_tenant(stack: Stack, backup: Path) -> None:
    """Suspend the tenant and drop it with drop_tenant, as an operator would."""
    stack.sql(
        "UPDATE public.tenants_tenant SET is_active = false"
        " WHERE schema_name = %s RETURNING id",
        stack.schema,
    )
    output = stack.manage(
        "drop_tenant",
        *("--tenant", stack.schema, "--confirm", stack.schema),
        *("--backup", str(backup), "--custody-handed-over"),
    )
    assert f"Dropped tenant {stack.schema}" in output
    assert not stack.sql("SELECT 1 FROM pg_namespace WHERE nspname = %s", stack.schema)
    storage = Path(stack.env["NIMBUS_VAR_DIR"]) / "storage" / stack.schema
    assert not [path for path in storage.rglob("*") if path.is_file()]


@pytest.fixture(scope="module")
def backed_up(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("series")
    files, study_uid = new_series(tmp / "series", 3)
    storescu(stack, files)
    report = f"/api/studies/{study_uid}/report"
    wait_for(lambda: stack.get(report, stack.token)[0] == 200, 60, what="the study")
    text = "Impression: no acute finding."
    assert stack.call("PUT", report, {"text": text}, stack.token)[0] == 200
    signed = stack.call(
        "POST", f"{report}/sign", {"otp": stack.fresh_otp()}, stack.token
    )
    assert signed[0] == 200, signed
    # The RIS is down: its one failure record is written before the backup.
    wait_for(
        lambda: stack.sql(
            "SELECT 1 FROM reporting_outboundmessage WHERE state = 'retrying'"
        ),
        60,
        what="the first delivery failure",
    )
    stack.manage("verify_audit", "--tenant", stack.schema)  # seals and anchors

    before = snapshot(stack)
    folder = tmp / "backup"
    output = stack.manage(
        "backup_tenant", "--tenant", stack.schema, "--output", str(folder)
    )
    assert "3 stored files" in output
    return {"folder": folder, "before": before, "files": files, "study": study_uid}


def test_the_manifest_lists_every_file_with_its_checksum(backed_up):
    manifest = json.loads((backed_up["folder"] / "manifest.json").read_text())

    listed = set(manifest["files"])
    assert {"schema.dump", "tenant.json", "audit.heads"} <= listed
    assert len([name for name in listed if name.startswith("files/")]) == 3
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    assert manifest["counts"]["pacs_instance"] == 3
    assert manifest["signature"]["algorithm"] == "HMAC-SHA256"
    assert manifest["signature"]["key"] == "NIMBUS_BACKUP_KEY"
    assert manifest["signature"]["value"] == manifest_signature(manifest, BACKUP_KEY)


def test_only_its_owner_may_read_the_backup(backed_up):
    folder = backed_up["folder"]

    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_tampered_backup_is_refused_before_anything_changes(
    stack, backed_up, tmp_path
):
    copy = tmp_path / "tampered"
    shutil.copytree(backed_up["folder"], copy)
    victim = next((copy / "files").rglob("*.dcm"))
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))

    with pytest.raises(RuntimeError, match="does not match its checksum"):
        stack.manage("restore_tenant", "--input", str(copy))


def test_restore_into_the_same_deployment_brings_everything_back(stack, backed_up):
    drop_tenant(stack, backed_up["folder"])
    assert not stack.sql(
        "SELECT 1 FROM public.tenants_tenant WHERE schema_name = %s", stack.schema
    )

    output = stack.manage("restore_tenant", "--input", str(backed_up["folder"]))

    assert "3 stored files" in output
    assert "1 HL7 messages not yet delivered" in output
    assert snapshot(stack) == backed_up["before"]
    storage = Path(stack.env["NIMBUS_VAR_DIR"]) / "storage"
    for _uid, storage_path in backed_up["before"]["instances"]:
        assert (storage / storage_path).is_file()
    stack.manage("verify_audit", "--tenant", stack.schema)  # raises when broken
    status, body = stack.get(f"/api/studies/{backed_up['study']}/report", stack.token)
    assert status == 200 and json.loads(body)["text"] == "Impression: no acute finding."


def test_a_message_not_delivered_at_backup_time_is_held_not_sent_again(
    stack, backed_up
):
    # Runs after the restore above, with the stack's worker running.
    with RisListener(port=stack.ris_port) as ris:
        time.sleep(8)  # a retry chain from before, with its 2-second back-off

    assert ris.received == []
    assert stack.sql("SELECT state FROM reporting_outboundmessage") == [("held",)]


def test_restore_into_a_fresh_deployment(stack, backed_up, tmp_path):
    base = stack.env["DATABASE_URL"].rsplit("/", 1)[0]
    name = f"{stack.env['DATABASE_URL'].rsplit('/', 1)[1]}_fresh"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    fresh = Stack(
        env={
            **stack.env,
            "DATABASE_URL": f"{base}/{name}",
            "NIMBUS_VAR_DIR": str(tmp_path),
        },
        web_port=0,
        dicom_port=0,
        ris_port=0,
    )
    try:
        fresh.manage("migrate_schemas", "--shared", "--verbosity", "0")

        fresh.manage("restore_tenant", "--input", str(backed_up["folder"]))

        assert snapshot(stack, fresh.env["DATABASE_URL"]) == backed_up["before"]
        fresh.manage("verify_audit", "--tenant", stack.schema)
        assert len(list((tmp_path / "storage").rglob("*.dcm"))) == 3
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- A restore that fails on the way leaves nothing behind ----------------------


@contextlib.contextmanager
def empty_deployment(stack: Stack, var: Path, suffix: str) -> Iterator[Stack]:
    """An empty deployment (public schema only) beside the stack."""
    base = stack.env["DATABASE_URL"].rsplit("/", 1)[0]
    name = f"{stack.env['DATABASE_URL'].rsplit('/', 1)[1]}_{suffix}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    deployment = Stack(
        env={**stack.env, "DATABASE_URL": f"{base}/{name}", "NIMBUS_VAR_DIR": str(var)},
        web_port=0,
        dicom_port=0,
        ris_port=0,
    )
    deployment.env.pop("NIMBUS_AUDIT_HEAD_DIR", None)
    try:
        deployment.manage("migrate_schemas", "--shared", "--verbosity", "0")
        yield deployment
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def fresh(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("empty-deployment")
    with empty_deployment(stack, var, "empty") as deployment:
        yield deployment


def reseal(folder: Path, key: str | None = BACKUP_KEY) -> None:
    """Write the manifest's checksums again after a change, and sign it with
    ``key`` (a damaged backup that passes every check), or leave the old
    signature with None (a forger without the key)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for relative, entry in manifest["files"].items():
        data = (folder / relative).read_bytes()
        entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    if key is not None:
        manifest["signature"]["value"] = manifest_signature(manifest, key)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def left_behind(deployment: Stack, schema: str) -> list[str]:
    """Whatever a restore of ``schema`` left in ``deployment``."""
    found = []
    with psycopg.connect(deployment.env["DATABASE_URL"], autocommit=True) as conn:
        if conn.execute(
            "SELECT 1 FROM tenants_tenant WHERE schema_name = %s", (schema,)
        ).fetchall():
            found.append("tenant row")
        if conn.execute("SELECT 1 FROM tenants_domain").fetchall():
            found.append("domains")
        if conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchall():
            found.append("schema")
    var = Path(deployment.env["NIMBUS_VAR_DIR"])
    found += [str(path) for path in (var / "storage").rglob("*") if path.is_file()]
    found += [str(path) for path in (var / "audit-heads").glob(f"{schema}*")]
    return found


def test_a_restore_that_fails_in_pg_restore_leaves_nothing_behind(
    stack, backed_up, fresh, tmp_path
):
    copy = tmp_path / "cut-short"
    shutil.copytree(backed_up["folder"], copy)
    dump = copy / "schema.dump"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    reseal(copy)

    with pytest.raises(RuntimeError, match="pg_restore failed"):
        fresh.manage("restore_tenant", "--input", str(copy))

    assert left_behind(fresh, stack.schema) == []


def test_a_restore_that_fails_after_the_schema_and_files_takes_them_back(
    stack, backed_up, fresh, tmp_path
):
    copy = tmp_path / "miscounted"
    shutil.copytree(backed_up["folder"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["counts"]["pacs_instance"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    reseal(copy)

    with pytest.raises(RuntimeError, match="differ from"):
        fresh.manage("restore_tenant", "--input", str(copy))

    assert left_behind(fresh, stack.schema) == []


def test_a_restore_that_fails_writing_the_tenant_row_takes_everything_back(
    stack, backed_up, fresh, tmp_path
):
    copy = tmp_path / "bad-row"
    shutil.copytree(backed_up["folder"], copy)
    record = json.loads((copy / "tenant.json").read_text())
    record["tenant"]["name"] = "x" * 300  # longer than the column
    (copy / "tenant.json").write_text(json.dumps(record))
    reseal(copy)

    with pytest.raises(RuntimeError, match="failed and was undone"):
        fresh.manage("restore_tenant", "--input", str(copy))

    assert left_behind(fresh, stack.schema) == []


def restore_killed_after_pg_restore(
    deployment: Stack, folder: Path, tmp_path: Path, schema: str
) -> None:
    """Run restore_tenant and SIGKILL it once pg_restore has committed, as a
    machine lost mid-restore would: pg_restore's wrapper then waits."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = ops.backup._pg_program("pg_restore")
    wrapper = bin_dir / "pg_restore"
    wrapper.write_text(
        f'#!/bin/sh\n"{real}" "$@" || exit $?\n'
        'case "$*" in *--single-transaction*) sleep 60;; esac\n'
    )
    wrapper.chmod(0o700)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "restore_tenant", "--input", str(folder)],
        cwd=Path(__file__).resolve().parents[2],
        env={**deployment.env, "NIMBUS_PG_BIN_DIR": str(bin_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with psycopg.connect(deployment.env["DATABASE_URL"], autocommit=True) as conn:
            wait_for(
                lambda: conn.execute(
                    "SELECT to_regclass(%s)", (f"{schema}.pacs_instance",)
                ).fetchone()[0],
                60,
                what="pg_restore's commit",
            )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    assert left_behind(deployment, schema)[:1] == ["schema"]


def test_a_restore_killed_after_pg_restore_is_cleaned_up_by_the_next(
    stack, backed_up, tmp_path
):
    with empty_deployment(stack, tmp_path / "var", "killed") as deployment:
        restore_killed_after_pg_restore(
            deployment, backed_up["folder"], tmp_path, stack.schema
        )

        deployment.manage("restore_tenant", "--input", str(backed_up["folder"]))

        assert snapshot(stack, deployment.env["DATABASE_URL"]) == backed_up["before"]
        with psycopg.connect(deployment.env["DATABASE_URL"]) as conn:
            comment = conn.execute(
                "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace"
                " WHERE nspname = %s",
                (stack.schema,),
            ).fetchone()[0]
        assert comment is None


def test_drop_tenant_drops_the_schema_a_killed_restore_left(stack, backed_up, tmp_path):
    with empty_deployment(stack, tmp_path / "var", "orphan") as deployment:
        restore_killed_after_pg_restore(
            deployment, backed_up["folder"], tmp_path, stack.schema
        )
        with pytest.raises(RuntimeError, match="No tenant with schema"):
            deployment.manage(
                "drop_tenant", "--tenant", stack.schema, "--confirm", stack.schema
            )

        output = deployment.manage(
            "drop_tenant",
            *("--orphan-schema", stack.schema, "--confirm", stack.schema),
        )

        assert f"Dropped orphan schema {stack.schema}" in output
        assert left_behind(deployment, stack.schema) == []


# --- The manifest is signed ---------------------------------------------------


@pytest.mark.parametrize("key", [None, "a-key-the-forger-guessed"])
def test_a_backup_rewritten_with_its_checksums_but_not_the_key_is_refused(
    stack, backed_up, fresh, tmp_path, key
):
    copy = tmp_path / "forged"
    shutil.copytree(backed_up["folder"], copy)
    record = json.loads((copy / "tenant.json").read_text())
    record["domains"] = [{"domain": "forged.example.org", "is_primary": True}]
    (copy / "tenant.json").write_text(json.dumps(record))
    reseal(copy, key)

    with pytest.raises(RuntimeError, match="signature does not verify"):
        fresh.manage("restore_tenant", "--input", str(copy))

    assert left_behind(fresh, stack.schema) == []


def test_a_manifest_without_a_signature_is_refused(stack, backed_up, fresh, tmp_path):
    copy = tmp_path / "unsigned"
    shutil.copytree(backed_up["folder"], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["signature"]
    (copy / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(RuntimeError, match="signature does not verify"):
        fresh.manage("restore_tenant", "--input", str(copy))


def test_another_deployments_key_refuses_the_backup(stack, backed_up, fresh):
    elsewhere = Stack(
        env={**fresh.env, "NIMBUS_BACKUP_KEY": "another-deployments-key"},
        web_port=0,
        dicom_port=0,
        ris_port=0,
    )

    with pytest.raises(RuntimeError, match="NIMBUS_BACKUP_KEY"):
        elsewhere.manage("restore_tenant", "--input", str(backed_up["folder"]))

    assert left_behind(fresh, stack.schema) == []


def test_after_the_refused_and_failed_restores_the_backup_restores_there(
    stack, backed_up, fresh
):
    fresh.manage("restore_tenant", "--input", str(backed_up["folder"]))

    assert snapshot(stack, fresh.env["DATABASE_URL"]) == backed_up["before"]
    fresh.manage("verify_audit", "--tenant", stack.schema)


# --- A backup of a tenant in use is one snapshot -----------------------------


def counted(deployment: Stack, schema: str) -> dict[str, int]:
    """The rows a manifest counts, in ``schema`` of ``deployment`` now."""
    with psycopg.connect(deployment.env["DATABASE_URL"], autocommit=True) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()[0]  # noqa: S608 - fixed names
            for table in COUNTED_TABLES
        }


@pytest.fixture(scope="module")
def draft_study(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study whose report is still a draft: each PUT writes a report version."""
    files, study_uid = new_series(tmp_path_factory.mktemp("draft") / "series", 1)
    storescu(stack, files)
    report = f"/api/studies/{study_uid}/report"
    wait_for(lambda: stack.get(report, stack.token)[0] == 200, 60, what="the study")
    return study_uid


def use_the_tenant(stack: Stack, study_uid: str, number: int) -> None:
    """A search (an audit record) and a report edit (a report version)."""
    status, _ = stack.get("/dicomweb/studies", stack.token)
    assert status == 200
    status, body = stack.call(
        "PUT",
        f"/api/studies/{study_uid}/report",
        {"text": f"Findings, edit {number}."},
        stack.token,
    )
    assert status == 200, body


def slow_pg_bin(folder: Path, pause: float) -> Path:
    """Client tools that wait ``pause`` seconds after pg_dump has written the
    dump, as a slow disk or a large tenant would: two new regular files."""
    folder.mkdir()
    for name in ("pg_dump", "pg_restore"):
        real = ops.backup._pg_program(name)
        wrapper = folder / name
        wrapper.write_text(
            f'#!/bin/sh\n"{real}" "$@" || exit $?\n'
            + (f"sleep {pause}\n" if name == "pg_dump" else "")
        )
        wrapper.chmod(0o700)
    return folder


def test_writes_while_pg_dump_finishes_are_neither_counted_nor_covered(
    stack, draft_study, tmp_path
):
    # Before the fix the counts and created_at were read after pg_dump: the
    # writes below were counted, not dumped, and the restore failed.
    slow = dataclasses.replace(
        stack,
        env={**stack.env, "NIMBUS_PG_BIN_DIR": str(slow_pg_bin(tmp_path / "bin", 4))},
    )
    folder = tmp_path / "backup"
    backup = threading.Thread(
        target=slow.manage,
        args=("backup_tenant", "--tenant", stack.schema, "--output", str(folder)),
    )
    backup.start()
    wait_for(lambda: (folder / "schema.dump").exists(), 60, what="the dump")
    time.sleep(0.5)  # pg_dump has returned; its wrapper sleeps
    for number in range(3):
        use_the_tenant(stack, draft_study, number)
    backup.join(120)
    manifest = json.loads((folder / "manifest.json").read_text())

    with empty_deployment(stack, tmp_path / "var", "snapshot") as elsewhere:
        elsewhere.manage("restore_tenant", "--input", str(folder))

        assert counted(elsewhere, stack.schema) == manifest["counts"]
    live = counted(stack, stack.schema)
    assert (
        live["reporting_reportversion"]
        >= manifest["counts"]["reporting_reportversion"] + 3
    )
    assert live["audit_auditevent"] > manifest["counts"]["audit_auditevent"]


def test_a_backup_taken_while_the_tenant_is_in_use_restores_and_does_not_cover_later_writes(
    stack, draft_study, tmp_path
):
    running = threading.Event()
    running.set()
    edits = 0

    def keep_writing() -> None:
        nonlocal edits
        while running.is_set():
            use_the_tenant(stack, draft_study, 100 + edits)
            edits += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        time.sleep(0.5)
        folder = tmp_path / "backup"
        stack.manage("backup_tenant", "--tenant", stack.schema, "--output", str(folder))
        time.sleep(0.5)
    finally:
        running.clear()
        writer.join(60)
    assert edits > 2
    manifest = json.loads((folder / "manifest.json").read_text())

    with empty_deployment(stack, tmp_path / "var", "in_use") as elsewhere:
        elsewhere.manage("restore_tenant", "--input", str(folder))

        assert counted(elsewhere, stack.schema) == manifest["counts"]
    # The writes after the snapshot are not in the backup: dropping the
    # tenant with it is refused.
    stack.sql(
        "UPDATE public.tenants_tenant SET is_active = false"
        " WHERE schema_name = %s RETURNING id",
        stack.schema,
    )
    try:
        with pytest.raises(RuntimeError, match="changed after the backup"):
            stack.manage(
                "drop_tenant",
                *("--tenant", stack.schema, "--confirm", stack.schema),
                *("--backup", str(folder), "--custody-handed-over"),
            )
    finally:
        stack.sql(
            "UPDATE public.tenants_tenant SET is_active = true"
            " WHERE schema_name = %s RETURNING id",
            stack.schema,
        )
