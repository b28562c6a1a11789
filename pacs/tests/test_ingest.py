import shutil
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage

from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA
from pacs import spool
from pacs.ingest import do_ingest_spooled_file, do_ingest_spooled_files
from pacs.models import IngestFailure, Instance, PixelStatus, Study


def spool_copy(source: Path) -> Path:
    return spool.write_durably("hospital_a", source.read_bytes())


@pytest.mark.django_db
def test_it_indexes_a_real_ct_slice_and_stores_it_bit_for_bit(tenant_a, storage_dirs):
    source = CT_SERIES / "1-030.dcm"
    result = do_ingest_spooled_file(spool_copy(source), "MODALITY")

    ds = pydicom.dcmread(source)
    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert result is not None and result.created
    assert instance.series.study.patient.patient_id == ds.PatientID
    assert instance.rows == 512 and instance.columns == 512
    assert instance.pixel_status == PixelStatus.OK
    with default_storage.open(instance.storage_path, "rb") as stored:
        assert stored.read() == source.read_bytes()
    assert not any(spool.spool_dir("hospital_a").glob("*"))


@pytest.mark.django_db
def test_it_makes_no_duplicate_when_the_same_instance_arrives_twice(
    tenant_a, storage_dirs
):
    source = CT_SERIES / "1-031.dcm"
    do_ingest_spooled_file(spool_copy(source))
    second = do_ingest_spooled_file(spool_copy(source))

    assert second is not None and not second.created
    assert Instance.objects.count() == 1
    study = Study.objects.get()
    assert study.number_of_study_related_instances == 1


@pytest.mark.django_db
def test_it_counts_series_and_images_of_a_study(tenant_a, storage_dirs):
    files = sorted(CT_SERIES.glob("*.dcm"))[:5]
    for source in files:
        do_ingest_spooled_file(spool_copy(source))

    study = Study.objects.get()
    assert study.number_of_study_related_series == 1
    assert study.number_of_study_related_instances == 5
    assert study.modalities_in_study == "CT"


@pytest.mark.django_db
def test_it_flags_truncated_pixel_data_but_keeps_the_instance(
    tenant_a, storage_dirs, tmp_path
):
    ds = pydicom.dcmread(CT_SERIES / "1-040.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    truncated = tmp_path / "truncated.dcm"
    ds.save_as(truncated)

    do_ingest_spooled_file(spool_copy(truncated))

    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert instance.pixel_status == PixelStatus.TRUNCATED
    assert "262144 of 524288" in instance.pixel_error
    assert default_storage.exists(instance.storage_path)


@pytest.mark.django_db
def test_it_quarantines_a_file_that_is_not_dicom(tenant_a, storage_dirs, tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not a DICOM file" * 10)

    assert do_ingest_spooled_file(spool_copy(junk)) is None

    failure = IngestFailure.objects.get()
    assert Path(failure.quarantine_path).read_bytes() == junk.read_bytes()
    assert Instance.objects.count() == 0


@pytest.mark.django_db
def test_it_refuses_a_uid_that_would_escape_the_storage_folder(
    tenant_a, storage_dirs, tmp_path, monkeypatch
):
    ds = pydicom.dcmread(SHARED_DATA / "pydicom" / "CT_small.dcm")
    ds.SOPInstanceUID = "../../etc/passwd"
    evil = tmp_path / "evil.dcm"
    # A hostile peer writes what it likes: allow the invalid UID for this file.
    monkeypatch.setattr(
        pydicom.config.settings, "writing_validation_mode", pydicom.config.IGNORE
    )
    ds.save_as(evil)

    assert do_ingest_spooled_file(spool_copy(evil)) is None
    assert "invalid" in IngestFailure.objects.get().error
    shutil.rmtree(tmp_path / "storage", ignore_errors=True)


@pytest.mark.django_db
def test_it_keeps_the_header_as_dicom_json_without_pixel_data(tenant_a, storage_dirs):
    source = CT_SERIES / "1-032.dcm"
    do_ingest_spooled_file(spool_copy(source))

    ds = pydicom.dcmread(source)
    metadata = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID).metadata
    assert "7FE00010" not in metadata
    restored = pydicom.Dataset.from_json(metadata)
    assert restored.PatientID == ds.PatientID
    assert restored.ImagePositionPatient == ds.ImagePositionPatient
    assert restored.RescaleIntercept == ds.RescaleIntercept


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    ["pydicom/charset/chrX1.dcm", "pydicom/test-SR.dcm", "pydicom-data/emri_small.dcm"],
)
def test_it_indexes_headers_of_every_kind(tenant_a, storage_dirs, name):
    source = SHARED_DATA / name
    do_ingest_spooled_file(spool_copy(source))

    ds = pydicom.dcmread(source, stop_before_pixels=True)
    instance = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    restored = pydicom.Dataset.from_json(instance.metadata)
    assert str(restored.PatientName) == str(ds.PatientName)


def spool_edited(tmp_path: Path, source: Path, **changes: str) -> Path:
    """A spooled copy of ``source`` with some attributes changed."""
    ds = pydicom.dcmread(source)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    edited = tmp_path / f"{ds.SOPInstanceUID}-{len(changes)}.dcm"
    ds.save_as(edited)
    return spool_copy(edited)


@pytest.mark.django_db
def test_it_indexes_a_batch_with_duplicates_once(tenant_a, storage_dirs):
    files = sorted(CT_SERIES.glob("*.dcm"))[:6]
    do_ingest_spooled_files([spool_copy(files[0])])
    batch = [spool_copy(path) for path in files] + [spool_copy(files[1])]

    results = do_ingest_spooled_files(batch)

    assert [result.created for result in results] == [False] + [True] * 5 + [False]
    study = Study.objects.get()
    assert study.number_of_study_related_instances == 6
    assert study.series.get().number_of_series_related_instances == 6
    assert Instance.objects.count() == 6
    assert not any(spool.spool_dir("hospital_a").glob("*"))
    for path in files:
        uid = pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID
        stored = Instance.objects.get(sop_instance_uid=uid).storage_path
        with default_storage.open(stored, "rb") as handle:
            assert handle.read() == path.read_bytes()


@pytest.mark.django_db
def test_it_counts_two_series_of_two_studies_in_one_batch(
    tenant_a, storage_dirs, tmp_path
):
    ct = sorted(CT_SERIES.glob("*.dcm"))[:2]
    other_series = spool_edited(
        tmp_path,
        ct[1],
        SeriesInstanceUID="1.2.826.0.1.3680043.8.498.1",
        SOPInstanceUID="1.2.826.0.1.3680043.8.498.2",
        Modality="PT",
    )
    mr = SHARED_DATA / "pydicom" / "MR_small.dcm"

    do_ingest_spooled_files([spool_copy(ct[0]), other_series, spool_copy(mr)])

    ct_study = Study.objects.get(
        study_instance_uid=pydicom.dcmread(ct[0]).StudyInstanceUID
    )
    assert ct_study.number_of_study_related_series == 2
    assert ct_study.number_of_study_related_instances == 2
    assert ct_study.modalities_in_study == "CT\\PT"
    assert Study.objects.count() == 2


@pytest.mark.django_db
def test_it_quarantines_only_the_instance_whose_uid_another_study_holds(
    tenant_a, storage_dirs, tmp_path
):
    mr = SHARED_DATA / "pydicom" / "MR_small.dcm"
    do_ingest_spooled_file(spool_copy(mr))
    ct = sorted(CT_SERIES.glob("*.dcm"))[:3]
    # A modality that reuses a SOP Instance UID in another study.
    clash = spool_edited(
        tmp_path, ct[2], SOPInstanceUID=pydicom.dcmread(mr).SOPInstanceUID
    )

    results = do_ingest_spooled_files([spool_copy(ct[0]), spool_copy(ct[1]), clash])

    assert [result.created for result in results] == [True, True]
    failure = IngestFailure.objects.get()
    assert "refused" in failure.error
    assert Path(failure.quarantine_path).exists()
    assert Instance.objects.count() == 3
    ct_study = Study.objects.get(
        study_instance_uid=pydicom.dcmread(ct[0]).StudyInstanceUID
    )
    assert ct_study.number_of_study_related_instances == 2


@pytest.mark.django_db
def test_it_records_one_audit_event_per_study_and_batch(tenant_a, storage_dirs):
    files = sorted(CT_SERIES.glob("*.dcm"))[:4]

    seen = set(AuditEvent.objects.values_list("pk", flat=True))

    do_ingest_spooled_files([spool_copy(path) for path in files], "MODALITY")

    event = AuditEvent.objects.exclude(pk__in=seen).get()
    assert event.event_type == EventType.INSTANCE_STORED
    assert event.actor_username == "MODALITY"
    assert event.detail["instances"] == 4
    assert sorted(event.detail["sop_instance_uids"]) == sorted(
        str(pydicom.dcmread(path).SOPInstanceUID) for path in files
    )
