"""C-FIND SCP, driven by dcmtk's findscu over real associations (PS3.4 C.4.1).

Real files (and a few made here with pydicom, to carry names in Latin-1,
UTF-8 and ISO 2022 IR 87) are indexed into hospital A and committed, so the
listener's own database connection sees them; every expected value is read
from the files with pydicom. findscu calls as FINDSCU, a known remote AE of
both hospitals (only known remote AEs may query).
"""

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from django.test import override_settings
from django_tenants.utils import schema_context
from pydicom.charset import convert_encodings, encode_string
from pydicom.uid import generate_uid

from audit.models import AuditEvent, EventType
from audit.testing import purge_audit_trail
from conftest import CT_SERIES, SHARED_DATA, TENANT_A, TENANT_B
from pacs import spool
from pacs.dimse.listener import serve
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Patient, RemoteApplicationEntity, Study
from pacs.tests.test_listener import free_port

# The mark makes pytest-django create the test database; the data itself is
# committed from other threads, which the listener's connection can see.
pytestmark = pytest.mark.django_db

MR_SERIES = SHARED_DATA / "dcm_qa_decubitus" / "HFS" / "3_t1_fl2d_sag"
SMALL = [SHARED_DATA / "pydicom" / name for name in ("CT_small.dcm", "MR_small.dcm")]
FRENCH = SHARED_DATA / "pydicom" / "charset" / "chrFren.dcm"
CHINESE = SHARED_DATA / "pydicom" / "charset" / "chrX1.dcm"
# Names to carry in the made files, with the character set each is written in.
MADE_NAMES = {
    "Müller^Jürgen": ["ISO_IR 100"],
    "Ødegård^Åse=Ødegård^Åse": ["ISO_IR 192"],
    "Yamada^Tarou=山田^太郎=やまだ^たろう": ["", "ISO 2022 IR 87"],
}
# findscu's own default calling AE title.
CALLING = "FINDSCU"


def in_thread(work):  # type: ignore[no-untyped-def]
    """Run ``work`` on a connection of its own, so that what it writes commits."""
    from django.db import connection

    result: list[object] = []

    def run() -> None:
        try:
            result.append(work())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(120)
    return result[0] if result else None


def make_files(folder: Path) -> list[Path]:
    made = []
    for index, (name, charsets) in enumerate(MADE_NAMES.items()):
        ds = pydicom.dcmread(SMALL[0])
        ds.SpecificCharacterSet = charsets if len(charsets) > 1 else charsets[0]
        ds.PatientName = name
        ds.PatientID = f"CHARSET{index}"
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"made{index}.dcm"
        ds.save_as(path, enforce_file_format=True)
        made.append(path)
    return made


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    series = sorted(CT_SERIES.glob("*.dcm")) + sorted(MR_SERIES.glob("*.dcm"))
    made = make_files(tmp_path_factory.mktemp("made"))
    return [*series, *SMALL, FRENCH, CHINESE, *made]


@pytest.fixture(scope="module")
def port(  # type: ignore[no-untyped-def]
    files, tmp_path_factory, django_db_setup, django_db_blocker
) -> Iterator[int]:
    root = tmp_path_factory.mktemp("archive")
    storage = {
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root / "storage")},
        },
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    with (
        django_db_blocker.unblock(),
        override_settings(
            NIMBUS_SPOOL_DIR=root / "spool",
            NIMBUS_STORAGE_DIR=root / "storage",
            STORAGES=storage,
        ),
    ):

        def ingest() -> None:
            with schema_context(TENANT_A.schema):
                for path in files:
                    spooled = spool.write_durably(TENANT_A.schema, path.read_bytes())
                    assert do_ingest_spooled_file(spooled) is not None
            for tenant in (TENANT_A, TENANT_B):
                with schema_context(tenant.schema):
                    RemoteApplicationEntity.objects.update_or_create(
                        ae_title=CALLING, defaults={"host": "127.0.0.1", "port": 104}
                    )

        in_thread(ingest)
        number = free_port()
        stop = threading.Event()
        thread = threading.Thread(
            target=serve, args=("127.0.0.1", number, stop), daemon=True
        )
        thread.start()
        stop.wait(1.0)
        try:
            yield number
        finally:
            stop.set()
            thread.join(10)

            def clean() -> None:
                with schema_context(TENANT_A.schema):
                    Study.objects.all().delete()
                    Patient.objects.all().delete()
                for tenant in (TENANT_A, TENANT_B):
                    with schema_context(tenant.schema):
                        RemoteApplicationEntity.objects.all().delete()
                        purge_audit_trail()

            in_thread(clean)


def read(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def findscu(
    port: int,
    *keys: str | bytes,
    model: str = "-S",
    called: str = "NIMBUS_A",
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.CompletedProcess[bytes], list[pydicom.Dataset]]:
    """Run findscu, and read every pending response it extracted."""
    with tempfile.TemporaryDirectory(prefix="findscu-") as folder:
        out = Path(folder)
        args: list[str | bytes] = ["findscu", "-v", model, "-aec", called, "-X"]
        args += ["-od", str(out), *extra, "127.0.0.1", str(port)]
        for key in keys:
            args += ["-k", key]
        result = subprocess.run(args, capture_output=True, timeout=60)
        answers = [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]
    return result, answers


def log(result: subprocess.CompletedProcess[bytes]) -> str:
    return (result.stdout + result.stderr).decode("latin-1")


def values(answers: list[pydicom.Dataset], keyword: str) -> set[str]:
    return {str(answer.get(keyword, "")) for answer in answers}


def studies_where(files: list[Path], predicate) -> set[str]:  # type: ignore[no-untyped-def]
    return {str(read(p).StudyInstanceUID) for p in files if predicate(read(p))}


# --- Study Root, STUDY level ---------------------------------------------------


def test_it_answers_every_study_with_its_return_keys(port, files):
    result, answers = findscu(
        port,
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID",
        "PatientID",
        "StudyDate",
        "NumberOfStudyRelatedInstances",
        "ModalitiesInStudy",
    )

    assert result.returncode == 0, log(result)
    assert values(answers, "StudyInstanceUID") == studies_where(files, bool)
    by_uid = {str(a.StudyInstanceUID): a for a in answers}
    for path in files:
        ds = read(path)
        answer = by_uid[str(ds.StudyInstanceUID)]
        assert answer.PatientID == ds.PatientID
        assert answer.StudyDate == ds.get("StudyDate", "")
        assert ds.Modality in answer.ModalitiesInStudy
        same_study = [
            p for p in files if read(p).StudyInstanceUID == ds.StudyInstanceUID
        ]
        assert int(answer.NumberOfStudyRelatedInstances) == len(same_study)


def test_it_matches_a_person_name_with_wildcards_whatever_its_case(port, files):
    _result, answers = findscu(
        port, "QueryRetrieveLevel=STUDY", "PatientName=compressed*^?T1"
    )

    assert values(answers, "StudyInstanceUID") == studies_where(
        files, lambda ds: str(ds.PatientName).upper() == "COMPRESSEDSAMPLES^CT1"
    )


@pytest.mark.parametrize(
    ("key", "lower", "upper"),
    [
        ("20040101-20041231", "20040101", "20041231"),
        ("20100101-", "20100101", "99991231"),
        ("-20050101", "00000000", "20050101"),
    ],
)
def test_it_matches_a_date_range(port, files, key, lower, upper):
    _result, answers = findscu(port, "QueryRetrieveLevel=STUDY", f"StudyDate={key}")

    assert values(answers, "StudyInstanceUID") == studies_where(
        files, lambda ds: bool(ds.get("StudyDate")) and lower <= ds.StudyDate <= upper
    )


def test_it_matches_a_time_range(port, files):
    _result, answers = findscu(
        port, "QueryRetrieveLevel=STUDY", "StudyTime=070000-120000"
    )

    assert values(answers, "StudyInstanceUID") == studies_where(
        files,
        lambda ds: (
            bool(ds.get("StudyTime")) and "070000" <= ds.StudyTime[:6] <= "120000"
        ),
    )


def test_it_matches_a_list_of_uids(port, files):
    wanted = [str(read(p).StudyInstanceUID) for p in SMALL]

    _result, answers = findscu(
        port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + "\\".join(wanted)
    )

    assert values(answers, "StudyInstanceUID") == set(wanted)


def test_it_answers_a_study_attribute_it_does_not_index_from_the_header(port):
    ds = read(SMALL[1])

    _result, (answer,) = findscu(
        port,
        "QueryRetrieveLevel=STUDY",
        f"StudyInstanceUID={ds.StudyInstanceUID}",
        "InstitutionName",
        "PatientWeight",
    )

    assert answer.InstitutionName == ds.get("InstitutionName", "")
    assert float(answer.PatientWeight) == float(ds.PatientWeight)


def test_it_warns_that_an_optional_key_could_not_be_matched(port):
    result, answers = findscu(
        port,
        "QueryRetrieveLevel=STUDY",
        "PatientWeight=70",
        "PatientID=1CT1",
        extra=("-d",),
    )

    assert len(answers) == 1
    assert "0xff01" in log(result).lower()


# --- SERIES and IMAGE levels, both roots ------------------------------------------


@pytest.mark.parametrize("model", ["-S", "-P"])
def test_it_answers_the_series_of_a_study(port, files, model):
    first = read(sorted(MR_SERIES.glob("*.dcm"))[0])
    in_study = [
        read(p) for p in files if read(p).StudyInstanceUID == first.StudyInstanceUID
    ]

    _result, answers = findscu(
        port,
        "QueryRetrieveLevel=SERIES",
        f"PatientID={first.PatientID}",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "SeriesDescription",
        model=model,
    )

    assert values(answers, "SeriesInstanceUID") == {
        str(ds.SeriesInstanceUID) for ds in in_study
    }
    for answer in answers:
        mine = [
            ds for ds in in_study if ds.SeriesInstanceUID == answer.SeriesInstanceUID
        ]
        assert answer.Modality == mine[0].Modality
        assert int(answer.SeriesNumber) == int(mine[0].SeriesNumber)
        assert answer.SeriesDescription == mine[0].get("SeriesDescription", "")
        assert int(answer.NumberOfSeriesRelatedInstances) == len(mine)


@pytest.mark.parametrize("model", ["-S", "-P"])
def test_it_answers_the_instances_of_a_series(port, model):
    slices = [read(p) for p in sorted(CT_SERIES.glob("*.dcm"))]
    first = slices[0]

    _result, answers = findscu(
        port,
        "QueryRetrieveLevel=IMAGE",
        f"PatientID={first.PatientID}",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
        "SOPInstanceUID",
        "InstanceNumber",
        "SliceLocation",
        model=model,
    )

    assert values(answers, "SOPInstanceUID") == {
        str(ds.SOPInstanceUID) for ds in slices
    }
    by_uid = {ds.SOPInstanceUID: ds for ds in slices}
    for answer in answers:
        ds = by_uid[answer.SOPInstanceUID]
        assert int(answer.InstanceNumber) == int(ds.InstanceNumber)
        assert float(answer.SliceLocation) == float(ds.SliceLocation)


def test_it_matches_an_instance_number_at_image_level(port):
    slices = [read(p) for p in sorted(CT_SERIES.glob("*.dcm"))]
    first = slices[0]

    _result, answers = findscu(
        port,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
        f"InstanceNumber={first.InstanceNumber}",
    )

    assert values(answers, "SOPInstanceUID") == {
        str(ds.SOPInstanceUID)
        for ds in slices
        if int(ds.InstanceNumber) == int(first.InstanceNumber)
    }


def test_it_answers_patients_with_their_counts_at_patient_level(port, files):
    ds = read(sorted(MR_SERIES.glob("*.dcm"))[0])

    _result, (answer,) = findscu(
        port,
        "QueryRetrieveLevel=PATIENT",
        f"PatientID={ds.PatientID}",
        "PatientName",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedInstances",
        model="-P",
    )

    mine = [read(p) for p in files if read(p).PatientID == ds.PatientID]
    assert answer.PatientName == ds.PatientName
    assert int(answer.NumberOfPatientRelatedStudies) == len(
        {m.StudyInstanceUID for m in mine}
    )
    assert int(answer.NumberOfPatientRelatedInstances) == len(mine)


# --- Specific Character Set ------------------------------------------------------


def encoded_key(keyword: str, value: str, charsets: list[str]) -> bytes:
    return f"{keyword}=".encode() + encode_string(value, convert_encodings(charsets))


@pytest.mark.parametrize(
    ("charsets", "name", "query"),
    [
        (["ISO_IR 100"], "Buc^Jérôme", "Buc^Jérôme"),
        (["ISO_IR 100"], "Müller^Jürgen", "müller^j*"),
        (["ISO_IR 192"], "Wang^XiaoDong=王^小東", "王^小東"),
        (["ISO_IR 192"], "Ødegård^Åse=Ødegård^Åse", "ødegård*"),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "山田*"),
    ],
)
def test_it_honours_the_character_set_of_query_and_answer(
    port, files, charsets, name, query
):
    result, answers = findscu(
        port,
        "QueryRetrieveLevel=STUDY",
        "SpecificCharacterSet=" + "\\".join(charsets),
        encoded_key("PatientName", query, charsets),
    )

    assert result.returncode == 0, log(result)
    assert values(answers, "PatientName") == {name}
    assert values(answers, "StudyInstanceUID") == studies_where(
        files, lambda ds: str(ds.PatientName) == name
    )


def test_it_answers_in_utf8_what_the_asked_character_set_cannot_hold(port, files):
    _result, answers = findscu(
        port,
        "QueryRetrieveLevel=STUDY",
        "SpecificCharacterSet=ISO_IR 100",
        "PatientName",
    )

    assert {a.SpecificCharacterSet for a in answers} == {"ISO_IR 192"}
    assert values(answers, "PatientName") == {str(read(p).PatientName) for p in files}


# --- Failures, cancel, tenants ---------------------------------------------------


@pytest.mark.parametrize("bad", ["20240131-20240101", "2024-01-01", "2024013"])
def test_it_answers_unable_to_process_to_a_malformed_date_range(port, bad):
    result, answers = findscu(port, "QueryRetrieveLevel=STUDY", f"StudyDate={bad}")

    assert answers == []
    assert "Failed: UnableToProcess" in log(result), log(result)
    echo = subprocess.run(
        ["echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(port)], capture_output=True
    )
    assert echo.returncode == 0


def test_it_refuses_a_level_the_information_model_does_not_have(port):
    result, answers = findscu(port, "QueryRetrieveLevel=PATIENT", "PatientID")

    assert answers == []
    assert "DataSetDoesNotMatchSOPClass" in log(result), log(result)


def test_it_records_each_query_with_its_keys_and_result_count(port, files):
    ds = read(SMALL[1])

    _result, answers = findscu(
        port, "QueryRetrieveLevel=STUDY", f"PatientID={ds.PatientID}", "PatientName"
    )

    event = last_query()
    assert event.outcome == "success"
    assert event.actor_username == CALLING
    assert event.source_ip == "127.0.0.1"
    assert event.object_type == "study"
    assert event.detail["level"] == "STUDY"
    assert event.detail["match"] == {"PatientID": ds.PatientID}
    assert event.detail["keys"] == ["PatientName", "PatientID"]  # in tag order
    assert event.detail["results"] == len(answers) == 1
    assert event.detail["status"] == 0


def test_it_records_a_query_it_could_not_process_as_a_failure(port):
    findscu(port, "QueryRetrieveLevel=STUDY", "StudyDate=20240131-20240101")

    event = last_query()
    assert event.outcome == "failure"
    assert event.detail["status"] == 0xC000
    assert event.detail["results"] == 0


def last_query() -> AuditEvent:
    def load() -> AuditEvent:
        with schema_context(TENANT_A.schema):
            return AuditEvent.objects.filter(event_type=EventType.DICOM_QUERY).latest(
                "pk"
            )

    return in_thread(load)  # type: ignore[no-any-return]


def test_it_shows_another_tenant_none_of_our_studies(port):
    result, answers = findscu(
        port, "QueryRetrieveLevel=STUDY", "StudyInstanceUID", called="NIMBUS_B"
    )

    assert result.returncode == 0, log(result)
    assert answers == []
