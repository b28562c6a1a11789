import shutil
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage

from conftest import CT_SERIES, SHARED_DATA
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
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
