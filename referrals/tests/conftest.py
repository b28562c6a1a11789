"""Portal fixtures: a study shared with the referrer and one that is not."""

from collections.abc import Callable
from io import BytesIO

import pydicom
import pytest
from pydicom.uid import generate_uid

from accounts.models import User
from conftest import CT_SERIES
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Instance, Study
from reporting.models import StudyReferral
from tenants.models import Tenant
from viewer.tests.conftest import private_cache  # noqa: F401  (autouse)

MakeStudy = Callable[..., Study]


@pytest.fixture
def make_study(tenant_a: Tenant, storage_dirs: object) -> MakeStudy:
    """Ingest one CT slice as a study of its own, for the given patient."""

    def make(patient_id: str, patient_name: str, description: str) -> Study:
        ds = pydicom.dcmread(CT_SERIES / "1-030.dcm")
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.PatientName = patient_id, patient_name
        ds.StudyDescription = description
        path = spool.write_durably(tenant_a.schema_name, dataset_bytes(ds))
        result = do_ingest_spooled_file(path, "MODALITY")
        assert result is not None
        return Study.objects.select_related("patient").get(
            study_instance_uid=result.study_instance_uid
        )

    return make


def dataset_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def shared(make_study: MakeStudy, referrer: User) -> Study:
    study = make_study("GP-1", "Jansen^Eva", "CT chest")
    StudyReferral.objects.create(study=study, referrer=referrer)
    return study


@pytest.fixture
def unshared(make_study: MakeStudy) -> Study:
    return make_study("GP-2", "Stranger^Sam", "CT abdomen")


def first_instance(study: Study) -> Instance:
    return Instance.objects.select_related("series").get(series__study=study)
