"""Second-opinion fixtures: a study of hospital A shared with a group of B.

Hospital B has a member of the group (rad.b), a radiologist outside it and
a referrer; hospital C has a radiologist of its own; A has its referrer.
"""

import datetime
from collections.abc import Iterator

import pydicom
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from pydicom.uid import generate_uid

from accounts.models import Role, User
from collab.actions import do_offer_group
from collab.models import CollaborationGroup, SecondOpinion
from conftest import CT_SERIES, make_user, tenant_client
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Study
from referrals.tests.conftest import (
    dataset_bytes,
    make_study,  # noqa: F401  (fixture)
)
from tenants.actions import TenantSpec, do_create_tenant
from tenants.models import Tenant
from viewer.tests.conftest import private_cache  # noqa: F401  (autouse)

TENANT_C = TenantSpec("hospital_c", "Hospital C", ("c.localhost",), "NIMBUS_C")


@pytest.fixture(scope="session", autouse=True)
def _tenant_c_schema(django_db_setup, django_db_blocker) -> None:  # type: ignore[no-untyped-def]
    # Before any test's transaction, as the root conftest creates A and B.
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        do_create_tenant(TENANT_C)
        connection.set_schema_to_public()


@pytest.fixture
def tenant_c(_tenant_c_schema: None, db: None) -> Tenant:
    return Tenant.objects.get(schema_name=TENANT_C.schema)


@pytest.fixture
def neuro(tenant_b: Tenant, radiologist_b: User) -> CollaborationGroup:
    return do_offer_group(tenant_b, "Neuroradiology", [radiologist_b])


@pytest.fixture
def study(make_study) -> Study:  # type: ignore[no-untyped-def]  # noqa: F811
    return make_study("A-77", "Dupont^Marie", "CT head")


@pytest.fixture
def other_study(make_study) -> Study:  # type: ignore[no-untyped-def]  # noqa: F811
    return make_study("A-78", "Other^Olga", "CT abdomen")


def ingest_twin(tenant: Tenant, study: Study, patient_name: str) -> Study:
    """A study of ``tenant`` with the Study Instance UID of another tenant's."""
    ds = pydicom.dcmread(CT_SERIES / "1-030.dcm")
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientID, ds.PatientName = "C-1", patient_name
    with tenant_context(tenant):
        path = spool.write_durably(tenant.schema_name, dataset_bytes(ds))
        assert do_ingest_spooled_file(path, "MODALITY") is not None
        return Study.objects.select_related("patient").get(
            study_instance_uid=study.study_instance_uid
        )


def request_form(group: CollaborationGroup, note: str = "Subtle bleed?") -> dict:
    return {"group": group.pk, "note": note, "days": 7}


@pytest.fixture
def share(
    client_a: Client, study: Study, neuro: CollaborationGroup
) -> Iterator[SecondOpinion]:
    response = client_a.post(
        f"/second-opinions/studies/{study.study_instance_uid}/request/",
        request_form(neuro),
    )
    assert response.status_code == 302, response.content
    yield SecondOpinion.objects.get()


@pytest.fixture
def reader_b(tenant_b: Tenant, radiologist_b: User) -> Client:
    return tenant_client(tenant_b, radiologist_b)


@pytest.fixture
def outsider_b(tenant_b: Tenant) -> Client:
    return tenant_client(tenant_b, make_user(tenant_b, "rad.b2", Role.RADIOLOGIST))


@pytest.fixture
def referrer_b(tenant_b: Tenant) -> Client:
    return tenant_client(tenant_b, make_user(tenant_b, "ref.b", Role.REFERRER))


@pytest.fixture
def reader_c(tenant_c: Tenant) -> Client:
    return tenant_client(tenant_c, make_user(tenant_c, "rad.c", Role.RADIOLOGIST))


def expire(share: SecondOpinion) -> None:
    SecondOpinion.objects.filter(pk=share.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def in_tenant(tenant: Tenant):  # type: ignore[no-untyped-def]
    return tenant_context(tenant)
