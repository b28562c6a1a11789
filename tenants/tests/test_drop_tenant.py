"""manage.py drop_tenant: the admin's deletion rules, from the command line."""
# ruff: noqa: F811 - the fixtures imported from test_export_and_deletion are the arguments

import datetime
import hashlib
import json
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import AuditEvent, EventType, Outcome
from ops.backup import FORMAT, counts_in, manifest_signature
from pacs.models import Instance
from tenants.models import Domain, Tenant
from tenants.tests.test_export_and_deletion import (  # noqa: F401 - fixtures
    exports_dir,
    hospital,
)


def signed_backup(
    folder: Path,
    schema: str,
    taken: datetime.datetime,
    counts: dict[str, int] | None = None,
) -> Path:
    """A backup folder as backup_tenant signs it: the tenant's counts as they
    are now, unless ``counts``; the dump's contents do not matter here."""
    folder.mkdir()
    (folder / "schema.dump").write_bytes(b"PGDMP dump of " + schema.encode())
    (folder / "tenant.json").write_text(json.dumps({"tenant": {}, "domains": []}))
    manifest: dict[str, object] = {
        "format": FORMAT,
        "schema": schema,
        "created_at": taken.isoformat(),
        "counts": counts_in(schema) if counts is None else counts,
        "extensions": [],
        "files": {
            name: {
                "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest(),
                "size": (folder / name).stat().st_size,
            }
            for name in ("schema.dump", "tenant.json")
        },
    }
    manifest["signature"] = {"value": manifest_signature(manifest)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def suspend(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)


def drop(*extra: str, schema: str = "hospital_b") -> None:
    call_command("drop_tenant", "--tenant", schema, *extra)


def refusals() -> list[AuditEvent]:
    connection.set_schema_to_public()
    return list(
        AuditEvent.objects.filter(
            event_type=EventType.TENANT_DELETED, outcome=Outcome.FAILURE
        )
    )


def schema_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def test_it_drops_a_suspended_tenant_backed_up_after_its_last_change(
    hospital, tmp_path, django_capture_on_commit_callbacks
):
    suspend(hospital)
    backup = signed_backup(tmp_path / "backup", "hospital_b", timezone.now())
    with schema_context("hospital_b"):
        stored = list(Instance.objects.values_list("storage_path", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        drop(
            "--confirm", "hospital_b", "--backup", str(backup), "--custody-handed-over"
        )

    connection.set_schema_to_public()
    assert not Tenant.objects.filter(schema_name="hospital_b").exists()
    assert not Domain.objects.filter(domain="b.localhost").exists()
    assert not schema_exists("hospital_b")
    assert stored and not any(default_storage.exists(name) for name in stored)
    event = AuditEvent.objects.get(
        event_type=EventType.TENANT_DELETED, outcome=Outcome.SUCCESS
    )
    assert event.actor_username.endswith("(drop_tenant)")
    assert event.object_id == "hospital_b"
    assert event.detail["backup"] == str(backup)
    assert event.detail["custody_handed_over"] is True


def test_it_refuses_an_active_tenant_and_audits_the_refusal(hospital, tmp_path):
    backup = signed_backup(tmp_path / "backup", "hospital_b", timezone.now())

    with pytest.raises(CommandError, match="Suspend the tenant first"):
        drop("--confirm", "hospital_b", "--backup", str(backup))

    assert Tenant.objects.filter(schema_name="hospital_b").exists()
    [refused] = refusals()
    assert refused.actor_username.endswith("(drop_tenant)")
    assert "Suspend" in refused.detail["refused"]


def test_it_asks_for_the_schema_name_again(hospital):
    suspend(hospital)

    with pytest.raises(CommandError, match="--confirm must repeat"):
        drop("--confirm", "hospital_a")

    assert schema_exists("hospital_b")


def test_without_an_export_or_a_backup_it_refuses(hospital):
    suspend(hospital)

    with pytest.raises(CommandError, match="Export the tenant first"):
        drop("--confirm", "hospital_b", "--custody-handed-over")

    assert schema_exists("hospital_b")


@pytest.mark.parametrize(
    ("schema", "age", "tamper", "reason"),
    [
        ("hospital_a", 0, False, "another tenant"),
        ("hospital_b", 3600, False, "changed after the backup"),
        ("hospital_b", 0, True, "does not verify"),
    ],
)
def test_a_backup_that_does_not_cover_the_tenant_is_refused(
    hospital, tmp_path, schema, age, tamper, reason
):
    suspend(hospital)
    taken = timezone.now() - datetime.timedelta(seconds=age)
    backup = signed_backup(tmp_path / "backup", schema, taken)
    if tamper:
        (backup / "schema.dump").write_bytes(b"PGDMP something else")

    with pytest.raises(CommandError, match=reason):
        drop(
            "--confirm", "hospital_b", "--backup", str(backup), "--custody-handed-over"
        )

    assert schema_exists("hospital_b")
    assert len(refusals()) == 1


def test_a_backup_newer_than_the_last_change_but_missing_rows_is_refused(
    hospital, tmp_path
):
    # A write that began before the backup's snapshot and committed after
    # it: its time is older than the backup, its row is not in it.
    suspend(hospital)
    counts = counts_in("hospital_b")
    counts["audit_auditevent"] -= 1
    backup = signed_backup(tmp_path / "backup", "hospital_b", timezone.now(), counts)

    with pytest.raises(CommandError, match="changed after the backup"):
        drop(
            "--confirm", "hospital_b", "--backup", str(backup), "--custody-handed-over"
        )

    assert schema_exists("hospital_b")


def test_studies_within_retention_need_custody_handed_over(hospital, tmp_path):
    suspend(hospital)
    backup = signed_backup(tmp_path / "backup", "hospital_b", timezone.now())

    with pytest.raises(CommandError, match="within the retention period"):
        drop("--confirm", "hospital_b", "--backup", str(backup))

    assert schema_exists("hospital_b")
