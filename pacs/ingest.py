"""Indexing a received DICOM file into the tenant's archive (the ingest step).

Runs in a Celery worker, in the schema of the tenant that received the file.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import F
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs import deflate, dicom, storage_files
from pacs.models import (
    IngestFailure,
    Instance,
    Patient,
    PixelStatus,
    ScheduledStudy,
    Series,
    Study,
)
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
        dicom.get_value(ds, "StudyInstanceUID"),
        dicom.get_value(ds, "SeriesInstanceUID"),
        dicom.get_value(ds, "SOPInstanceUID"),
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
    if dicom.text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
        expected = expected * 2 // 3
    actual = len(ds.PixelData)
    if actual < expected:
        return PixelStatus.TRUNCATED, f"Pixel data holds {actual} of {expected} bytes."
    return PixelStatus.OK, ""


def read_dataset(path: Path) -> Dataset:
    """Read a spooled file, never inflating or allocating past its bounds.

    A file that came in over STOW-RS or the listener was checked there; one
    dropped into the spool by other means, or spooled before the check, is
    checked here (``pacs.deflate``).
    """
    try:
        return deflate.read_bounded(path, force=False)
    except deflate.InflateLimitExceeded as error:
        raise IngestError(f"Decompression bomb refused: {error}") from error
    except dicom.READ_ERRORS as error:
        raise IngestError(f"Not a readable DICOM file: {error}") from error


@dataclass(frozen=True)
class Received:
    """A spooled file read and checked, waiting to be indexed."""

    path: Path
    ds: Dataset
    storage_name: str
    file_size: int

    @property
    def sop_instance_uid(self) -> str:
        return str(self.ds.SOPInstanceUID)

    @property
    def study_instance_uid(self) -> str:
        return str(self.ds.StudyInstanceUID)


def do_ingest_spooled_file(
    path: Path, calling_ae_title: str = ""
) -> IngestResult | None:
    """Index one spooled file; None when it was quarantined."""
    results = do_ingest_spooled_files([path], calling_ae_title)
    return results[0] if results else None


def do_ingest_spooled_files(
    paths: Sequence[Path], calling_ae_title: str = ""
) -> list[IngestResult]:
    """Index spooled files, store them as received, and remove them from the spool.

    One transaction per study in the batch: a series of 300 slices costs a
    few queries per batch instead of a dozen per instance. Idempotent: a SOP
    Instance UID already indexed is not indexed again, and its spool file is
    dropped. Unreadable files are quarantined and left out of the result.

    Raises
    ------
    django.db.OperationalError
        When the database is unreachable; every file stays in the spool.
    """
    schema = connection.schema_name
    started = time.monotonic()
    received = [
        item
        for path in paths
        if (item := _read_or_quarantine(schema, path, calling_ae_title)) is not None
    ]
    by_study: dict[str, list[Received]] = {}
    for item in received:
        by_study.setdefault(item.study_instance_uid, []).append(item)

    results: list[IngestResult] = []
    for group in by_study.values():
        results += _ingest_study_group(schema, group, calling_ae_title)
    logger.info(
        "ingest batch files=%d indexed=%d studies=%d ms=%d",
        len(paths),
        sum(result.created for result in results),
        len(by_study),
        (time.monotonic() - started) * 1000,
    )
    return results


def _read_or_quarantine(
    schema: str, path: Path, calling_ae_title: str
) -> Received | None:
    ds: Dataset | None = None
    try:
        ds = read_dataset(path)
        name = storage_path(schema, ds)
        return Received(path, ds, name, path.stat().st_size)
    except IngestError as error:
        # Named by its SOP Instance UID where that one is valid, so that the
        # sender's instance can be found among the quarantined files.
        sop_uid = str(ds.get("SOPInstanceUID", "")) if ds is not None else ""
        sop_uid = sop_uid if dicom.is_valid_uid(sop_uid) else ""
        _quarantine(schema, path, str(error), calling_ae_title, sop_uid)
        return None


def _ingest_study_group(
    schema: str, group: list[Received], calling_ae_title: str
) -> list[IngestResult]:
    """Index instances of one study together, or one by one if that fails.

    A value the database refuses (a SOP Instance UID already used in another
    study, a number out of range) fails the whole transaction; retrying the
    files one by one quarantines only the file at fault.
    """
    try:
        return _index_study_group(group, calling_ae_title)
    except (IntegrityError, DataError) as error:
        if len(group) > 1:
            results: list[IngestResult] = []
            for item in group:
                results += _ingest_study_group(schema, [item], calling_ae_title)
            return results
        item = group[0]
        _quarantine(
            schema,
            item.path,
            f"The archive refused the instance: {error}",
            calling_ae_title,
            item.sop_instance_uid,
        )
        return []


def _index_study_group(
    group: list[Received], calling_ae_title: str
) -> list[IngestResult]:
    # The rows are built before the study is locked: converting headers is
    # the slow part, and other workers wait for the lock.
    rows = {item.sop_instance_uid: _instance_row(item) for item in group}
    with transaction.atomic():
        study = _locked_study(group[0].ds)
        # Checked under the study's lock: a copy of the same instance that
        # another worker indexed meanwhile is a duplicate, not an error.
        known = dict(
            Instance.objects.filter(
                sop_instance_uid__in=[item.sop_instance_uid for item in group]
            ).values_list("sop_instance_uid", "series__study_id")
        )
        if any(study_pk != study.pk for study_pk in known.values()):
            # Another study holds one of these UIDs: an image that is not a
            # copy of the stored one. Refuse it rather than drop it.
            raise IntegrityError("SOP Instance UID already used in another study")
        fresh: dict[str, Received] = {}
        for item in group:
            if item.sop_instance_uid not in known:
                fresh.setdefault(item.sop_instance_uid, item)
        if fresh:
            _index_instances(study, list(fresh.values()), rows, calling_ae_title)
            # After the rows, so that a refused row leaves no stray file.
            storage_files.place([(i.path, i.storage_name) for i in fresh.values()])

    for item in group:
        item.path.unlink(missing_ok=True)
    return [
        IngestResult(
            item.sop_instance_uid,
            item.study_instance_uid,
            created=fresh.get(item.sop_instance_uid) is item,
        )
        for item in group
    ]


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
    record_refused_instance(sop_uid, calling_ae_title, kept.name)
    # Nimbus's own sentence only: what follows its colon comes from pydicom or
    # PostgreSQL and may quote the file (a name, a patient ID as a key).
    logger.warning(
        "ingest failed, file quarantined as %s: %s", kept.name, error.split(":")[0]
    )


def _locked_study(ds: Dataset) -> Study:
    """The study of ``ds``, created if new, locked until the transaction ends.

    The lock serialises ingests of one study so that its counters stay exact.
    """
    study_instance_uid = str(ds.StudyInstanceUID)
    study = Study.objects.filter(study_instance_uid=study_instance_uid).first()
    if study is None:
        # An order from the RIS without a UID of its own is already a study on
        # the worklist: its first images join it instead of making a second.
        study = ScheduledStudy.claim_for_images(
            study_instance_uid,
            dicom.text(ds, "AccessionNumber"),
            dicom.text(ds, "PatientID"),
        )
    if study is None:
        study, _ = Study.objects.get_or_create(
            study_instance_uid=study_instance_uid,
            defaults={
                "patient": _patient_of(ds, study_instance_uid),
                "study_date": dicom.date_value(ds, "StudyDate"),
                "study_time": dicom.time_value(ds, "StudyTime"),
                "accession_number": dicom.text(ds, "AccessionNumber"),
                "study_id": dicom.text(ds, "StudyID"),
                "study_description": dicom.text(ds, "StudyDescription", 200),
                "referring_physician_name": dicom.person_name(
                    ds, "ReferringPhysicianName"
                ),
            },
        )
    return Study.objects.select_for_update().get(pk=study.pk)


def _patient_of(ds: Dataset, study_instance_uid: str) -> Patient:
    """The patient of a new study: the row of its Patient ID and issuer.

    PatientID is type 2 (PS3.3 C.7.1.1) and may be empty or blank; such a
    study gets a patient of its own, keyed by its UID, as an empty ID says
    nothing about who else the person is.
    """
    patient_id = dicom.text(ds, "PatientID")
    patient, _ = Patient.objects.get_or_create(
        patient_id=patient_id,
        issuer_of_patient_id=dicom.text(ds, "IssuerOfPatientID"),
        identity_key="" if patient_id else study_instance_uid,
        defaults={
            "patient_name": dicom.person_name(ds, "PatientName"),
            "patient_birth_date": dicom.date_value(ds, "PatientBirthDate"),
            "patient_sex": dicom.text(ds, "PatientSex", 16),
        },
    )
    return patient


def _series_of(study: Study, items: list[Received]) -> dict[str, tuple[Series, bool]]:
    """Series UID -> (series, created now) for every series in ``items``."""
    found: dict[str, tuple[Series, bool]] = {}
    for item in items:
        uid = str(item.ds.SeriesInstanceUID)
        if uid in found:
            continue
        ds = item.ds
        found[uid] = Series.objects.get_or_create(
            series_instance_uid=uid,
            defaults={
                "study": study,
                "modality": dicom.text(ds, "Modality", 16),
                "series_number": dicom.int_value(ds, "SeriesNumber"),
                "series_description": dicom.text(ds, "SeriesDescription", 200),
                "body_part_examined": dicom.text(ds, "BodyPartExamined"),
            },
        )
    return found


def _index_instances(
    study: Study,
    items: list[Received],
    rows: dict[str, Instance],
    calling_ae_title: str,
) -> None:
    series_by_uid = _series_of(study, items)
    instances = []
    for item in items:
        instance = rows[item.sop_instance_uid]
        instance.series = series_by_uid[str(item.ds.SeriesInstanceUID)][0]
        instance.calling_ae_title = calling_ae_title[:16]
        instances.append(instance)
    Instance.objects.bulk_create(instances)
    _count_new_instances(study, series_by_uid, instances)
    # One record per study and batch, as a DICOM "Instances Transferred"
    # audit message names the study and its instances (PS3.15 A.5.3.2).
    do_record_event(
        EventType.INSTANCE_STORED,
        actor_username=calling_ae_title or "DICOM",
        object_type="study",
        object_id=study.study_instance_uid,
        patient_id=study.patient.patient_id,
        study_instance_uid=study.study_instance_uid,
        detail={
            "instances": len(instances),
            "sop_instance_uids": [i.sop_instance_uid for i in instances],
            "pixel_status": sorted({i.pixel_status for i in instances}),
        },
    )


def _instance_row(item: Received) -> Instance:
    """The index row of ``item``, all but its series."""
    ds = item.ds
    # First, while the elements are raw: dicom_json remembers raw values.
    metadata = dicom_json(ds)
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    pixel_status, pixel_error = check_pixel_data(ds, transfer_syntax)
    position = dicom.float_list(ds, "ImagePositionPatient", 3)
    orientation = dicom.float_list(ds, "ImageOrientationPatient", 6)
    return Instance(
        sop_instance_uid=item.sop_instance_uid,
        sop_class_uid=str(dicom.get_value(ds, "SOPClassUID") or "")[:64],
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
        metadata=metadata,
        storage_path=item.storage_name,
        file_size=item.file_size,
    )


# Binary values above this size are left in the file, referenced as bulk data.
BULK_DATA_THRESHOLD = 1024


def dicom_json(ds: Dataset) -> dict[str, object]:
    """The dataset in the DICOM JSON model, without pixel data (PS3.18 F.2).

    Elements still in their raw, unparsed form are encoded through
    ``ELEMENT_JSON``: the slices of one series repeat most of their header
    byte for byte, and converting each element with pydicom costs more than
    the rest of indexing. A value that cannot be encoded (a malformed element
    from a lenient read) is left out rather than failing the whole instance.
    """
    charset = ds.get_item("SpecificCharacterSet")
    # Raw bytes, a string or several values: any of them names the decoding.
    charset_key = repr(charset.value) if charset is not None else None
    encoded: dict[str, object] = {}
    for tag in ds.keys():
        if tag in PIXEL_DATA_TAGS:
            continue
        try:
            raw = ds.get_item(tag)  # raw while pydicom has not converted it
        except dicom.READ_ERRORS:
            logger.warning("instance header element %s not readable", tag)
            continue
        key = None
        if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
            key = (tag, raw.VR, raw.is_little_endian, raw.value, charset_key)
            cached = ELEMENT_JSON.get(key)
            if cached is not None:
                encoded.update(cached)
                continue
        element_json = _element_json(ds, tag)
        if key is not None and len(raw.value) <= MAX_CACHED_VALUE:
            ELEMENT_JSON.put(key, element_json)
        encoded.update(element_json)
    return encoded


# Raw values longer than this are not worth remembering.
MAX_CACHED_VALUE = 4096


def _element_json(ds: Dataset, tag: BaseTag) -> dict[str, object]:
    single = Dataset()
    try:
        single.add(ds[tag])  # decoded with the character set of ``ds``
        return single.to_json_dict(
            bulk_data_threshold=BULK_DATA_THRESHOLD,
            bulk_data_element_handler=lambda _element: "",
        )
    except (*dicom.READ_ERRORS, OverflowError):
        logger.warning("instance header element %s not encodable as DICOM JSON", tag)
        return {}


class _LruCache:
    """A small, bounded memo: raw element -> its DICOM JSON object."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[object, dict[str, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: object) -> dict[str, object] | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: object, value: dict[str, object]) -> None:
        with self._lock:
            self._entries[key] = value
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)


# Enough for the repeated header of several series arriving at once.
ELEMENT_JSON = _LruCache(20_000)


def slice_position(
    position: list[float] | None, orientation: list[float] | None
) -> float | None:
    """Distance of the slice along its normal (row cosine x column cosine)."""
    if position is None or orientation is None:
        return None
    rx, ry, rz, cx, cy, cz = orientation
    normal = (ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx)
    return sum(p * n for p, n in zip(position, normal, strict=True))


def _count_new_instances(
    study: Study,
    series_by_uid: dict[str, tuple[Series, bool]],
    instances: list[Instance],
) -> None:
    """Add the new instances to the denormalised counters.

    Increments, not recounts: recounting a study on every batch makes a
    2,000-slice series cost quadratic time. The study row is locked by the
    caller, so concurrent ingests of one study take turns here.
    """
    per_series: dict[int, int] = {}
    for instance in instances:
        per_series[instance.series_id] = per_series.get(instance.series_id, 0) + 1
    for series_pk, added in per_series.items():
        Series.objects.filter(pk=series_pk).update(
            number_of_series_related_instances=F("number_of_series_related_instances")
            + added
        )
    study.number_of_study_related_instances += len(instances)
    fields = ["number_of_study_related_instances", "updated_at"]
    new_series = [series for series, created in series_by_uid.values() if created]
    if new_series:
        modalities = set(study.modality_list) | {s.modality for s in new_series}
        study.number_of_study_related_series += len(new_series)
        study.modalities_in_study = "\\".join(sorted(modalities - {""}))[:64]
        fields += ["number_of_study_related_series", "modalities_in_study"]
    study.save(update_fields=fields)


def record_refused_instance(sop_uid: str, calling_ae_title: str, kept_as: str) -> None:
    """Audit an instance that was received but not stored (kept in quarantine).

    A PS3.15 "DICOM Instances Transferred" with a failed outcome: a file
    that does not parse may be an attack (a path in a UID, a bad length).
    """
    do_record_event(
        EventType.INSTANCE_STORED,
        actor_username=calling_ae_title or "DICOM",
        outcome=Outcome.FAILURE,
        object_type="instance",
        object_id=sop_uid[:128],
        detail={"quarantined": kept_as},
    )
