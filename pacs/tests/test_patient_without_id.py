"""Studies whose Patient ID is empty never share a patient (PatientID is type 2).

Two people sent without a Patient ID must not become one record: each study
keeps its own name on the worklist and in QIDO-RS and C-FIND answers.
"""

from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import CT_SERIES
from pacs import spool
from pacs.ingest import do_ingest_spooled_file, do_ingest_spooled_files
from pacs.models import Instance, Patient, Study
from pacs.query.engine import Level, answer_datasets, build_query, find
from pacs.tests.test_dicomweb import bearer_client, token  # noqa: F401 - fixture
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

FIRST_NAME = "Firstperson^Ann"
SECOND_NAME = "Secondperson^Bob"


@dataclass(frozen=True)
class NoIdStudy:
    study_instance_uid: str
    sop_instance_uid: str
    patient_name: str
    path: Path


def no_id_studies(folder: Path) -> tuple[NoIdStudy, NoIdStudy]:
    """Two one-slice CT studies of two people, one with an empty Patient ID,
    the other with a blank one; written to ``folder``, not yet spooled."""
    made = []
    for n, (name, patient_id) in enumerate(
        ((FIRST_NAME, ""), (SECOND_NAME, "   ")), start=1
    ):
        ds = pydicom.dcmread(CT_SERIES / f"1-03{n}.dcm")
        ds.PatientID = patient_id
        ds.PatientName = name
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.900{n}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.901{n}"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.902{n}"
        path = folder / f"no-id-{n}.dcm"
        ds.save_as(path)
        made.append(NoIdStudy(ds.StudyInstanceUID, ds.SOPInstanceUID, name, path))
    return made[0], made[1]


def spooled(study: NoIdStudy, schema: str = "hospital_a") -> Path:
    return spool.write_durably(schema, study.path.read_bytes())


def ingest_one_by_one(*studies: NoIdStudy) -> None:
    for study in studies:
        assert do_ingest_spooled_file(spooled(study), "MODALITY") is not None


def names_by_study() -> dict[str, str]:
    return dict(
        Study.objects.values_list("study_instance_uid", "patient__patient_name")
    )


def assert_two_patients(first: NoIdStudy, second: NoIdStudy) -> None:
    assert Patient.objects.count() == 2
    assert set(Patient.objects.values_list("patient_id", flat=True)) == {""}
    assert names_by_study() == {
        first.study_instance_uid: FIRST_NAME,
        second.study_instance_uid: SECOND_NAME,
    }


def test_two_studies_without_patient_id_get_two_patients(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path
) -> None:
    first, second = no_id_studies(tmp_path)
    ingest_one_by_one(first, second)
    assert_two_patients(first, second)


def test_a_batch_of_two_studies_without_patient_id_gets_two_patients(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path
) -> None:
    first, second = no_id_studies(tmp_path)
    do_ingest_spooled_files([spooled(first), spooled(second)], "MODALITY")
    assert_two_patients(first, second)


def test_a_study_without_patient_id_sent_again_makes_no_new_rows(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path
) -> None:
    first, second = no_id_studies(tmp_path)
    ingest_one_by_one(first, second, first)
    do_ingest_spooled_files([spooled(second), spooled(first)], "MODALITY")

    assert_two_patients(first, second)
    assert Instance.objects.count() == 2
    assert (
        Study.objects.get(
            study_instance_uid=first.study_instance_uid
        ).number_of_study_related_instances
        == 1
    )


def test_studies_with_the_same_patient_id_still_share_their_patient(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path
) -> None:
    first, second = no_id_studies(tmp_path)
    for study in (first, second):
        ds = pydicom.dcmread(study.path)
        ds.PatientID = "P-42"
        ds.save_as(study.path)
    ingest_one_by_one(first, second)

    assert Patient.objects.get().studies.count() == 2


def test_the_worklist_shows_each_study_under_its_own_name(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path, client_a: Client
) -> None:
    first, second = no_id_studies(tmp_path)
    ingest_one_by_one(first, second)

    response = client_a.get("/")

    shown = {
        s.study_instance_uid: s.patient.patient_name for s in response.context["page"]
    }
    assert shown == names_by_study()
    page = response.content.decode()
    assert "Firstperson" in page and "Secondperson" in page


def test_qido_rs_answers_each_study_with_its_own_name(
    tenant_a: Tenant,
    storage_dirs: Path,
    tmp_path: Path,
    token: str,  # noqa: F811
) -> None:
    first, second = no_id_studies(tmp_path)
    with tenant_context(tenant_a):
        ingest_one_by_one(first, second)

    response = bearer_client(tenant_a, token).get(
        "/dicomweb/studies", {"includefield": "PatientName"}
    )

    assert response.status_code == 200
    answered = {
        s["0020000D"]["Value"][0]: s["00100010"]["Value"][0]["Alphabetic"]
        for s in response.json()
    }
    assert answered == {
        first.study_instance_uid: FIRST_NAME,
        second.study_instance_uid: SECOND_NAME,
    }


def test_c_find_answers_each_study_and_patient_with_its_own_name(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path
) -> None:
    first, second = no_id_studies(tmp_path)
    ingest_one_by_one(first, second)

    # What the C-FIND handler (pacs/dimse/find.py) runs for a STUDY query.
    query = build_query(
        Level.STUDY, {"PatientName": "*person*"}, [0x00100010, 0x00100020]
    )
    answers = answer_datasets(query, list(find(Study.objects.all(), query)))
    assert {str(a.StudyInstanceUID): str(a.PatientName) for a in answers} == {
        first.study_instance_uid: FIRST_NAME,
        second.study_instance_uid: SECOND_NAME,
    }

    patients = build_query(Level.PATIENT, {"PatientID": ""}, [0x00100010, 0x00100020])
    answers = answer_datasets(patients, list(find(Study.objects.all(), patients)))
    assert sorted(str(a.PatientName) for a in answers) == [FIRST_NAME, SECOND_NAME]
