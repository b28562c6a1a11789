"""Reading-queue fixtures: studies ingested the way the listener does it."""

from collections.abc import Callable
from io import BytesIO
from typing import Any

import pydicom
import pytest
from pydicom.uid import generate_uid

from accounts.models import Role, User
from conftest import CT_SERIES, make_user
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Study
from tenants.models import Tenant

MakeStudy = Callable[..., Study]


def dataset_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def make_study(
    tenant_a: Tenant, storage_dirs: object, django_capture_on_commit_callbacks: Any
) -> MakeStudy:
    """Ingest one CT slice as a new study with ``attributes``; rules run on commit."""

    def make(calling_ae_title: str = "MODALITY", **attributes: str) -> Study:
        ds = pydicom.dcmread(CT_SERIES / "1-030.dcm")
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        path = spool.write_durably(tenant_a.schema_name, dataset_bytes(ds))
        with django_capture_on_commit_callbacks(execute=True):
            result = do_ingest_spooled_file(path, calling_ae_title)
        assert result is not None
        return Study.objects.select_related("patient", "reading").get(
            study_instance_uid=result.study_instance_uid
        )

    return make


@pytest.fixture
def study(make_study: MakeStudy) -> Study:
    return make_study()


@pytest.fixture
def second_radiologist(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "rad2.a", Role.RADIOLOGIST)


@pytest.fixture
def it_admin(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "it.a", Role.TENANT_ADMIN)


@pytest.fixture
def helpdesk(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "help.a", Role.HELPDESK)


@pytest.fixture
def patient_user(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "pat.a", Role.PATIENT)
