"""Indexing a received DICOM file into the tenant's archive (the ingest step).

Runs in a Celery worker, in the schema of the tenant that received the file.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import F
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from audit.actions import do_record_event
from audit.models import EventType
from pacs import dicom
from pacs.models import IngestFailure, Instance, Patient, PixelStatus, Series, Study
from pacs.spool import move_to_quarantine

logger = logging.getLogger(__name__)

# Encapsulated transfer syntaxes carry fragments, not a plain pixel array.
# Pixel data and its variants (PS3.5 7.1) stay in the file, never in the index.
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}

NATIVE_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
}


class IngestError(Exception):
    """The file cannot be indexed; it is quarantined with this message."""


@dataclass(frozen=True)
class IngestResult:
    sop_instance_uid: str
    study_instance_uid: str
    created: bool


def storage_path(schema: str, ds: Dataset) -> str:
    """Where the file is kept: schema/study/series/instance, each a validated UID."""
    uids = (
        ds.get("StudyInstanceUID"),
        ds.get("SeriesInstanceUID"),
        ds.get("SOPInstanceUID"),
    )
    for uid in uids:
        if not dicom.is_valid_uid(str(uid) if uid is not None else None):
            raise IngestError(
                "The study, series or SOP instance UID is missing or invalid."
            )
    study, series, sop = (str(uid) for uid in uids)
    return f"{schema}/{study}/{series}/{sop}.dcm"


def check_pixel_data(ds: Dataset, transfer_syntax_uid: str) -> tuple[str, str]:
    """Compare the pixel data's length with what the image attributes promise."""
    if "PixelData" not in ds:
        return PixelStatus.NONE, ""
    rows, columns = dicom.int_value(ds, "Rows"), dicom.int_value(ds, "Columns")
    if not rows or not columns:
        return PixelStatus.UNREADABLE, "Rows or Columns missing."
    if transfer_syntax_uid not in NATIVE_TRANSFER_SYNTAXES:
        try:
            has_fragments = any(
                True for _ in pydicom.encaps.generate_fragments(ds.PixelData)
            )
        except (ValueError, TypeError, EOFError) as error:
            return PixelStatus.UNREADABLE, str(error)[:300]
        if not has_fragments:
            return PixelStatus.TRUNCATED, "Encapsulated pixel data has no fragments."
        return PixelStatus.OK, ""
    frames = dicom.int_value(ds, "NumberOfFrames") or 1
    samples = dicom.int_value(ds, "SamplesPerPixel") or 1
    bits = dicom.int_value(ds, "BitsAllocated") or 16
    expected = rows * columns * samples * frames * bits // 8
    if ds.get("PhotometricInterpretation") == "YBR_FULL_422":
        expected = expected * 2 // 3
    actual = len(ds.PixelData)
    if actual < expected:
        return PixelStatus.TRUNCATED, f"Pixel data holds {actual} of {expected} bytes."
    return PixelStatus.OK, ""


def read_dataset(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, force=False)
    except (
        InvalidDicomError,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ) as error:
        raise IngestError(f"Not a readable DICOM file: {error}") from error


def do_ingest_spooled_file(
    path: Path, calling_ae_title: str = ""
) -> IngestResult | None:
    """Index one spooled file, store it as received, and remove it from the spool.

    Idempotent: a SOP Instance UID already indexed is not indexed again, and
    the duplicate spool file is dropped. Returns None when the file was
    quarantined.
    """
    schema = connection.schema_name
    started = time.monotonic()
    try:
        ds = read_dataset(path)
        sop_uid = str(ds.get("SOPInstanceUID", ""))
        name = storage_path(schema, ds)
    except IngestError as error:
        _quarantine(schema, path, str(error), calling_ae_title, "")
        return None

    if Instance.objects.filter(sop_instance_uid=sop_uid).exists():
        path.unlink(missing_ok=True)
        logger.info("ingest duplicate sop=%s dropped", sop_uid)
        return IngestResult(sop_uid, str(ds.StudyInstanceUID), created=False)

    if not default_storage.exists(name):
        with open(path, "rb") as handle:
            saved = default_storage.save(name, File(handle))
        if saved != name:  # a concurrent writer got there first; keep one copy
            default_storage.delete(saved)

    created = _index(ds, name, path.stat().st_size, calling_ae_title)
    path.unlink(missing_ok=True)
    logger.info(
        "ingest sop=%s study=%s created=%s ms=%d",
        sop_uid,
        ds.StudyInstanceUID,
        created,
        (time.monotonic() - started) * 1000,
    )
    return IngestResult(sop_uid, str(ds.StudyInstanceUID), created)


def _quarantine(
    schema: str, path: Path, error: str, calling_ae_title: str, sop_uid: str
) -> None:
    kept = move_to_quarantine(schema, path)
    IngestFailure.objects.create(
        quarantine_path=str(kept),
        sop_instance_uid=sop_uid[:64],
        error=error,
        calling_ae_title=calling_ae_title,
    )
    logger.warning("ingest failed, file quarantined as %s: %s", kept.name, error)


@transaction.atomic
def _index(ds: Dataset, name: str, file_size: int, calling_ae_title: str) -> bool:
    patient, _ = Patient.objects.get_or_create(
        patient_id=dicom.text(ds, "PatientID"),
        issuer_of_patient_id=dicom.text(ds, "IssuerOfPatientID"),
        defaults={
            "patient_name": dicom.person_name(ds, "PatientName"),
            "patient_birth_date": dicom.date_value(ds, "PatientBirthDate"),
            "patient_sex": dicom.text(ds, "PatientSex", 16),
        },
    )
    study, _ = Study.objects.get_or_create(
        study_instance_uid=str(ds.StudyInstanceUID),
        defaults={
            "patient": patient,
            "study_date": dicom.date_value(ds, "StudyDate"),
            "study_time": dicom.time_value(ds, "StudyTime"),
            "accession_number": dicom.text(ds, "AccessionNumber"),
            "study_id": dicom.text(ds, "StudyID"),
            "study_description": dicom.text(ds, "StudyDescription", 200),
            "referring_physician_name": dicom.person_name(ds, "ReferringPhysicianName"),
        },
    )
    # Serialise ingests of one study so that its counters stay exact.
    study = Study.objects.select_for_update().get(pk=study.pk)

    series, new_series = Series.objects.get_or_create(
        series_instance_uid=str(ds.SeriesInstanceUID),
        defaults={
            "study": study,
            "modality": dicom.text(ds, "Modality", 16),
            "series_number": dicom.int_value(ds, "SeriesNumber"),
            "series_description": dicom.text(ds, "SeriesDescription", 200),
            "body_part_examined": dicom.text(ds, "BodyPartExamined"),
        },
    )
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    pixel_status, pixel_error = check_pixel_data(ds, transfer_syntax)
    position = dicom.float_list(ds, "ImagePositionPatient", 3)
    orientation = dicom.float_list(ds, "ImageOrientationPatient", 6)
    sop_instance_uid = str(ds.SOPInstanceUID)
    # Checked again under the study's lock: a copy of the same instance that
    # another worker indexed meanwhile is a duplicate, not an error.
    if Instance.objects.filter(sop_instance_uid=sop_instance_uid).exists():
        return False
    instance = Instance.objects.create(
        sop_instance_uid=sop_instance_uid,
        series=series,
        sop_class_uid=str(ds.get("SOPClassUID", "")),
        instance_number=dicom.int_value(ds, "InstanceNumber"),
        transfer_syntax_uid=transfer_syntax,
        rows=dicom.int_value(ds, "Rows"),
        columns=dicom.int_value(ds, "Columns"),
        number_of_frames=dicom.int_value(ds, "NumberOfFrames") or 1,
        slice_position=slice_position(position, orientation),
        image_position_patient=position,
        image_orientation_patient=orientation,
        window_center=dicom.first_float(ds, "WindowCenter"),
        window_width=dicom.first_float(ds, "WindowWidth"),
        pixel_status=pixel_status,
        pixel_error=pixel_error,
        metadata=dicom_json(ds),
        storage_path=name,
        file_size=file_size,
        calling_ae_title=calling_ae_title[:16],
    )
    _count_new_instance(study, series, new_series)
    do_record_event(
        EventType.INSTANCE_STORED,
        actor_username=calling_ae_title or "DICOM",
        object_type="instance",
        object_id=instance.sop_instance_uid,
        patient_id=patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={"pixel_status": pixel_status},
    )
    return True


# Binary values above this size are left in the file, referenced as bulk data.
BULK_DATA_THRESHOLD = 1024


def dicom_json(ds: Dataset) -> dict[str, object]:
    """The dataset in the DICOM JSON model, without pixel data (PS3.18 F.2).

    A value that cannot be encoded (a malformed element from a lenient read)
    is left out rather than failing the whole instance.
    """
    header = Dataset()
    for element in ds:
        if element.tag in PIXEL_DATA_TAGS:
            continue
        header.add(element)
    try:
        return header.to_json_dict(
            bulk_data_threshold=BULK_DATA_THRESHOLD,
            bulk_data_element_handler=lambda _element: "",
        )
    except (ValueError, TypeError, OverflowError):
        logger.warning("instance header not fully encodable as DICOM JSON")
        return _encodable_elements(header)


def _encodable_elements(header: Dataset) -> dict[str, object]:
    encoded: dict[str, object] = {}
    for element in header:
        single = Dataset()
        single.add(element)
        try:
            encoded.update(
                single.to_json_dict(
                    bulk_data_threshold=BULK_DATA_THRESHOLD,
                    bulk_data_element_handler=lambda _element: "",
                )
            )
        except (ValueError, TypeError, OverflowError):
            continue
    return encoded


def slice_position(
    position: list[float] | None, orientation: list[float] | None
) -> float | None:
    """Distance of the slice along its normal (row cosine x column cosine)."""
    if position is None or orientation is None:
        return None
    rx, ry, rz, cx, cy, cz = orientation
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    return sum(p * n for p, n in zip(position, normal, strict=True))


def _count_new_instance(study: Study, series: Series, new_series: bool) -> None:
    """Add the new instance to the denormalised counters.

    Increments, not recounts: recounting a study on every instance makes a
    2,000-slice series cost quadratic time. The study row is locked by the
    caller, so concurrent ingests of one study take turns here.
    """
    Series.objects.filter(pk=series.pk).update(
        number_of_series_related_instances=F("number_of_series_related_instances") + 1
    )
    study.number_of_study_related_instances += 1
    fields = ["number_of_study_related_instances", "updated_at"]
    if new_series:
        modalities = set(study.modality_list) | ({series.modality} - {""})
        study.number_of_study_related_series += 1
        study.modalities_in_study = "\\".join(sorted(modalities))[:64]
        fields += ["number_of_study_related_series", "modalities_in_study"]
    study.save(update_fields=fields)
