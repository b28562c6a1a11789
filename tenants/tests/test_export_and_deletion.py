"""A tenant leaves only after an export that holds everything it had."""

import hashlib
import io
import json
import logging
import stat
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context

from audit.actions import do_record_event
from audit.chain import do_seal_events
from audit.heads import last_anchored_head
from audit.models import AuditEvent, EventType, Outcome
from conftest import CT_SERIES
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Instance
from reporting.models import Report, ReportStatus
from tenants.models import Domain, Tenant, TenantExport
from tenants.tests.conftest import ONBOARD_URL, onboarding_data

SLICES = ("1-030.dcm", "1-031.dcm")


@pytest.fixture
def exports_dir(settings, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    settings.NIMBUS_TENANT_EXPORT_DIR = tmp_path / "exports"
    return tmp_path / "exports"


@pytest.fixture
def hospital(db, storage_dirs, exports_dir) -> Tenant:  # type: ignore[no-untyped-def]
    """Hospital B with two CT slices and a signed report."""
    tenant = Tenant.objects.get(schema_name="hospital_b")
    with schema_context("hospital_b"):
        for name in SLICES:
            path = spool.write_durably("hospital_b", (CT_SERIES / name).read_bytes())
            do_ingest_spooled_file(path, "MODALITY")
        study = Instance.objects.first().series.study  # type: ignore[union-attr]
        Report.objects.create(
            study=study, status=ReportStatus.SIGNED, text="No focal lesion."
        )
    # As if committed long ago: PostgreSQL drops no table with foreign-key
    # checks still pending in this (the test's) transaction.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return tenant


def post(client, tenant: Tenant, page: str, data=None):  # type: ignore[no-untyped-def]
    return client.post(f"/tenants/tenant/{tenant.pk}/{page}/", data or {})


def suspend(client, tenant: Tenant) -> None:  # type: ignore[no-untyped-def]
    client.post(
        "/tenants/tenant/",
        {"action": "suspend_tenants", "_selected_action": [tenant.pk]},
    )
    tenant.refresh_from_db()


def delete(client, tenant: Tenant, custody: bool = False):  # type: ignore[no-untyped-def]
    data = {"confirm_schema": tenant.schema_name}
    if custody:
        data["custody_handed_over"] = "on"
    return post(client, tenant, "delete-after-export", data)


def refusal(response) -> str:  # type: ignore[no-untyped-def]
    return " ".join(response.context["form"].non_field_errors())


def test_the_export_holds_files_reports_and_audit_trail_with_checksums(
    platform_admin_client, hospital
):
    response = post(platform_admin_client, hospital, "export")

    assert response.status_code == 302
    export = TenantExport.objects.get(tenant=hospital)
    path = Path(export.path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == export.sha256
    assert path.with_name(path.name + ".sha256").read_text().split()[0] == export.sha256
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        for entry in manifest["files"]:
            content = archive.read(entry["name"])
            assert hashlib.sha256(content).hexdigest() == entry["sha256"]
        names = archive.namelist()
        source = pydicom.dcmread(CT_SERIES / SLICES[0])
        member = (
            f"dicom/{source.StudyInstanceUID}/{source.SeriesInstanceUID}/"
            f"{source.SOPInstanceUID}.dcm"
        )
        assert archive.read(member) == (CT_SERIES / SLICES[0]).read_bytes()
        report = json.loads(archive.read(f"reports/{source.StudyInstanceUID}.json"))
        assert report["text"] == "No focal lesion."
        audit_lines = archive.read("audit/events.jsonl").decode().splitlines()
    assert (manifest["studies"], manifest["instances"]) == (1, 2)
    assert (export.study_count, export.instance_count) == (1, 2)
    assert len([n for n in names if n.startswith("dicom/")]) == 2
    assert any(
        json.loads(line)["event_type"] == EventType.INSTANCE_STORED
        for line in audit_lines
    )
    event = AuditEvent.objects.get(event_type=EventType.TENANT_EXPORTED)
    assert (event.object_id, event.detail["sha256"]) == ("hospital_b", export.sha256)


def test_it_refuses_to_delete_an_active_tenant(platform_admin_client, hospital):
    post(platform_admin_client, hospital, "export")

    response = delete(platform_admin_client, hospital, custody=True)

    assert "Suspend the tenant first." in refusal(response)
    assert Tenant.objects.filter(schema_name="hospital_b").exists()


def test_it_refuses_to_delete_without_an_export(platform_admin_client, hospital):
    suspend(platform_admin_client, hospital)

    response = delete(platform_admin_client, hospital, custody=True)

    assert "Export the tenant first." in refusal(response)
    failed = AuditEvent.objects.get(event_type=EventType.TENANT_DELETED)
    assert failed.outcome == Outcome.FAILURE


def test_it_refuses_an_export_older_than_the_last_change(
    platform_admin_client, hospital
):
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")
    with schema_context("hospital_b"):
        do_record_event(EventType.STUDY_OPENED, actor_username="rad.b")

    response = delete(platform_admin_client, hospital, custody=True)

    assert "changed after its last export" in refusal(response)


def test_it_refuses_a_damaged_export(platform_admin_client, hospital):
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")
    path = Path(TenantExport.objects.get(tenant=hospital).path)
    path.write_bytes(path.read_bytes()[:-10])

    response = delete(platform_admin_client, hospital, custody=True)

    assert "missing or damaged" in refusal(response)


def test_it_keeps_studies_within_the_retention_period(platform_admin_client, hospital):
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")

    response = delete(platform_admin_client, hospital)

    assert "within the retention period until" in refusal(response)
    assert Tenant.objects.filter(schema_name="hospital_b").exists()


def test_it_deletes_within_retention_once_the_hospital_took_the_export(
    platform_admin_client, hospital, django_capture_on_commit_callbacks
):
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")
    with schema_context("hospital_b"):
        stored = list(Instance.objects.values_list("storage_path", flat=True))

    with django_capture_on_commit_callbacks(execute=True):
        response = delete(platform_admin_client, hospital, custody=True)

    assert response.status_code == 302
    assert not Tenant.objects.filter(schema_name="hospital_b").exists()
    assert not Domain.objects.filter(domain="b.localhost").exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = 'hospital_b'"
        )
        assert cursor.fetchone() is None
    assert stored and not any(default_storage.exists(name) for name in stored)
    export = TenantExport.objects.get(schema_name="hospital_b")
    assert export.tenant is None and Path(export.path).exists()
    event = AuditEvent.objects.get(
        event_type=EventType.TENANT_DELETED, outcome=Outcome.SUCCESS
    )
    assert event.detail["custody_handed_over"] is True
    assert event.detail["sha256"] == export.sha256


def test_it_deletes_without_custody_once_the_retention_period_passed(
    platform_admin_client, hospital
):
    hospital.retention_days = 0
    hospital.save(update_fields=["retention_days"])
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")

    response = delete(platform_admin_client, hospital)

    assert response.status_code == 302
    assert not Tenant.objects.filter(schema_name="hospital_b").exists()


def test_it_asks_for_the_schema_name_before_deleting(platform_admin_client, hospital):
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")

    response = post(
        platform_admin_client,
        hospital,
        "delete-after-export",
        {"confirm_schema": "hospital_a", "custody_handed_over": "on"},
    )

    assert "not the tenant's schema name" in " ".join(
        response.context["form"].errors["confirm_schema"]
    )
    assert Tenant.objects.filter(schema_name="hospital_b").exists()


def test_the_admin_s_own_delete_is_gone(platform_admin_client, hospital):
    response = platform_admin_client.post(f"/tenants/tenant/{hospital.pk}/delete/")

    assert response.status_code == 403
    assert Tenant.objects.filter(schema_name="hospital_b").exists()


def test_a_new_tenant_with_a_deleted_tenants_schema_starts_a_fresh_audit_chain(
    platform_admin_client,
    hospital,
    settings,
    tmp_path,
    django_capture_on_commit_callbacks,
    caplog,
):
    settings.NIMBUS_AUDIT_HEAD_DIR = tmp_path / "heads"
    with schema_context("hospital_b"), django_capture_on_commit_callbacks(execute=True):
        old_links = do_seal_events()
    assert old_links > 1
    suspend(platform_admin_client, hospital)
    post(platform_admin_client, hospital, "export")
    with django_capture_on_commit_callbacks(execute=True):
        delete(platform_admin_client, hospital, custody=True)

    response = platform_admin_client.post(
        ONBOARD_URL,
        onboarding_data(
            schema_name="hospital_b",
            domains="b.localhost",
            ae_title="NIMBUS_B",
            remote_aes="",
        ),
    )
    assert response.status_code == 200
    caplog.set_level(logging.ERROR, logger="nimbus.security")
    with schema_context("hospital_b"), django_capture_on_commit_callbacks(execute=True):
        new_links = do_seal_events()
    call_command("verify_audit", "--tenant", "hospital_b", stdout=io.StringIO())

    assert "does not continue" not in caplog.text
    assert last_anchored_head("hospital_b") is not None
    assert last_anchored_head("hospital_b").seq == new_links  # type: ignore[union-attr]
    event = AuditEvent.objects.get(
        event_type=EventType.TENANT_DELETED, outcome=Outcome.SUCCESS
    )
    archived = tmp_path / "heads" / event.detail["audit_heads"]
    assert archived.name.startswith("hospital_b.heads.deleted-")
    assert json.loads(archived.read_text().splitlines()[-1])["seq"] == old_links
