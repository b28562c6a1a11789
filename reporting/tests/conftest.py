"""Fixtures of the reporting tests: a real ingested study, tokens, a RIS."""

import socket

import pytest
from django.db import connection

from accounts.models import ApiToken, User
from conftest import CT_SERIES
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Patient, Study
from tenants.models import Tenant


@pytest.fixture
def study(tenant_a: Tenant, storage_dirs: object) -> Study:
    """A study indexed from a real CT slice, given an accession number."""
    path = spool.write_durably("hospital_a", (CT_SERIES / "1-030.dcm").read_bytes())
    result = do_ingest_spooled_file(path, "MODALITY")
    assert result is not None
    study = Study.objects.select_related("patient").get(
        study_instance_uid=result.study_instance_uid
    )
    study.accession_number = "ACC-2024-001"
    study.save()
    return study


@pytest.fixture
def other_study(tenant_a: Tenant) -> Study:
    patient = Patient.objects.create(patient_id="P-2", patient_name="Roe^Richard")
    return Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.8.498.2", patient=patient
    )


@pytest.fixture
def token_a(tenant_a: Tenant, radiologist: User) -> str:
    _token, raw = ApiToken.issue(radiologist, label="dictation client")
    return raw


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (until a test starts something)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def point_ris_at(tenant: Tenant, port: int) -> None:
    tenant.ris_host = "127.0.0.1"
    tenant.ris_port = port
    Tenant.objects.filter(pk=tenant.pk).update(ris_host="127.0.0.1", ris_port=port)
    assert connection.schema_name == tenant.schema_name
