"""A tenant's archive: everything it would take away when it leaves.

One ZIP file per export: the DICOM files as received
(``dicom/<study>/<series>/<sop instance>.dcm``), each report with its
addenda as JSON (``reports/<study>.json``), the audit trail as JSON lines
(``audit/events.jsonl``), and ``manifest.json`` with the SHA-256 and size of
every member. The archive's own SHA-256 goes into a ``.sha256`` file beside
it (``sha256sum -c`` reads it) and into the database.
"""

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django_tenants.utils import schema_context

from audit.models import AuditEvent
from pacs.dicom import is_valid_uid
from pacs.models import Instance
from reporting.models import Report
from tenants.models import Tenant

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class WrittenArchive:
    path: Path
    sha256: str
    size: int
    study_count: int
    instance_count: int


def write_archive(tenant: Tenant, directory: Path) -> WrittenArchive:
    """Write the tenant's archive into ``directory``; readable by its owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{tenant.schema_name}-{stamp}.zip"
    # Written under another name first: a crash never leaves a file that
    # looks like a finished export.
    partial = path.with_suffix(".zip.partial")
    manifest: list[dict[str, Any]] = []
    studies: set[str] = set()
    instances = 0

    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with (
        os.fdopen(descriptor, "wb") as handle,
        zipfile.ZipFile(handle, "w", allowZip64=True) as archive,
        schema_context(tenant.schema_name),
    ):
        for name, study_uid, source in _instance_files():
            with source:
                manifest.append(_add_stream(archive, name, source))
            studies.add(study_uid)
            instances += 1
        for name, content in _report_documents():
            manifest.append(_add_bytes(archive, name, content))
        manifest.append(_add_bytes(archive, "audit/events.jsonl", _audit_lines()))
        summary = {
            "tenant": tenant.name,
            "schema": tenant.schema_name,
            "ae_title": tenant.ae_title,
            "created_at": timezone.now().isoformat(),
            "studies": len(studies),
            "instances": instances,
            "files": manifest,
        }
        archive.writestr(
            "manifest.json",
            json.dumps(summary, indent=2, ensure_ascii=False),
            compress_type=zipfile.ZIP_DEFLATED,
        )

    digest = file_sha256(partial)
    partial.rename(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return WrittenArchive(
        path=path,
        sha256=digest,
        size=path.stat().st_size,
        study_count=len(studies),
        instance_count=instances,
    )


def _instance_files() -> Iterator[tuple[str, str, IO[bytes]]]:
    instances = Instance.objects.select_related("series__study").order_by("pk")
    for instance in instances.iterator():
        series = instance.series
        study_uid = series.study.study_instance_uid
        parts = [study_uid, series.series_instance_uid, instance.sop_instance_uid]
        # UIDs become member names: a crafted one must not climb out of dicom/.
        if not all(is_valid_uid(part) for part in parts):
            parts = ["invalid-uid", str(instance.pk)]
        name = "dicom/" + "/".join(parts) + ".dcm"
        yield name, study_uid, default_storage.open(instance.storage_path, "rb")


def _report_documents() -> Iterator[tuple[str, bytes]]:
    reports = Report.objects.select_related("study", "signed_by").prefetch_related(
        "addenda"
    )
    for report in reports.order_by("pk").iterator(chunk_size=200):
        study_uid = report.study.study_instance_uid
        name = study_uid if is_valid_uid(study_uid) else f"invalid-uid-{report.pk}"
        document = {
            "study_instance_uid": study_uid,
            "accession_number": report.study.accession_number,
            "status": report.status,
            "text": report.text,
            "signed_by": report.signed_by.username if report.signed_by else "",
            "signed_at": report.signed_at,
            "addenda": [
                {
                    "number": addendum.number,
                    "status": addendum.status,
                    "text": addendum.text,
                    "signed_at": addendum.signed_at,
                }
                for addendum in report.addenda.all()
            ],
        }
        content = json.dumps(document, cls=DjangoJSONEncoder, ensure_ascii=False)
        yield f"reports/{name}.json", content.encode()


def _audit_lines() -> bytes:
    events = AuditEvent.objects.order_by("pk").values()
    lines = (
        json.dumps(event, cls=DjangoJSONEncoder, ensure_ascii=False)
        for event in events.iterator(chunk_size=2000)
    )
    return "".join(f"{line}\n" for line in lines).encode()


def _add_stream(
    archive: zipfile.ZipFile, name: str, source: IO[bytes]
) -> dict[str, Any]:
    # Stored, not deflated: most pixel data is compressed already, and the
    # files must come out byte for byte as they were received.
    digest = hashlib.sha256()
    size = 0
    with archive.open(name, "w", force_zip64=True) as member:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            member.write(chunk)
            size += len(chunk)
    return {"name": name, "sha256": digest.hexdigest(), "size": size}


def _add_bytes(archive: zipfile.ZipFile, name: str, content: bytes) -> dict[str, Any]:
    archive.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
    return {
        "name": name,
        "sha256": hashlib.sha256(content).hexdigest(),
        "size": len(content),
    }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def is_intact(path: Path, sha256: str) -> bool:
    try:
        return file_sha256(path) == sha256
    except OSError:
        return False


def delete_stored_files(names: list[str]) -> None:
    """Remove a deleted tenant's DICOM files from the storage; log what stays."""
    failed = 0
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            failed += 1
    if failed:
        logger.warning("%d of %d stored files could not be deleted", failed, len(names))
    logger.info("deleted %d stored files", len(names) - failed)
