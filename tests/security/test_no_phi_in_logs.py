"""No patient data in any log, with every logger at debug level.

A stack is started with NIMBUS_LOG_LEVEL=DEBUG and NIMBUS_LOG_FILE (one file
per process: web, listener, worker, HL7 listener, management commands), and
this pytest process logs at debug level to a file of its own through the same
configuration (config/logs.py). Then the whole clinical flow runs: C-STORE
with dcmtk, a C-FIND by patient name, an HL7 order, QIDO-RS by name,
WADO-RS metadata and a rendered frame, a viewer frame in a signed-in
session, a report saved, dictated and signed with its ORU^R01 delivered to a
python-hl7 test RIS. Every log file, and what each process wrote to its
stdout and stderr, is searched for the names, patient IDs and birth dates of
the patients in the files and messages sent.
"""

import logging
import logging.config
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
from django.conf import settings
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from config.logs import logging_config
from conftest import SHARED_DATA
from tests.e2e.test_bad_input import storescu
from tests.support.ris import RisListener
from tests.support.stack import PASSWORD, Stack, running_stack, wait_for

pytestmark = pytest.mark.e2e

SOURCES = [SHARED_DATA / "pydicom" / name for name in ("CT_small.dcm", "MR_small.dcm")]
# A patient made for this test: values that appear nowhere else, so a hit is
# a leak and never a coincidence.
MADE = {
    "PatientName": "Quillfeather^Ysolde^Maren",
    "PatientID": "PHI-77310-QX",
    "PatientBirthDate": "19610417",
}
ORDERED = {"name": "Brackenridge^Odalys", "id": "PHI-55120-OR", "birth": "19720311"}


def patient_values(files: list[Path]) -> set[str]:
    """Names (and each name part), IDs and birth dates of the patients in ``files``."""
    values: set[str] = set()
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        name = str(ds.get("PatientName", ""))
        values |= {name, *name.split("^")}
        values |= {str(ds.get("PatientID", "")), str(ds.get("PatientBirthDate", ""))}
    values |= {ORDERED["name"], *ORDERED["name"].split("^"), ORDERED["id"]}
    values.add(ORDERED["birth"])
    # Short parts ("CT1") would match unrelated text; what is left is enough.
    return {value for value in values if len(value) >= 4}


def made_copy(folder: Path) -> Path:
    ds = pydicom.dcmread(SOURCES[0])
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in MADE.items():
        setattr(ds, keyword, value)
    target = folder / "made.dcm"
    ds.save_as(target)
    return target


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Debug logging to files for the stack's processes and for this process."""
    folder = tmp_path_factory.mktemp("phi-logs")
    saved = {
        name: os.environ.get(name) for name in ("NIMBUS_LOG_LEVEL", "NIMBUS_LOG_FILE")
    }
    os.environ["NIMBUS_LOG_LEVEL"] = "DEBUG"
    os.environ["NIMBUS_LOG_FILE"] = str(folder / "nimbus-{pid}.log")
    logging.config.dictConfig(logging_config("DEBUG", str(folder / "pytest-{pid}.log")))
    try:
        yield folder
    finally:
        logging.config.dictConfig(settings.LOGGING)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def ris() -> Iterator[RisListener]:
    with RisListener() as listener:
        yield listener


@pytest.fixture(scope="module")
def stack(log_dir: Path, ris: RisListener) -> Iterator[Stack]:
    with running_stack(log_dir.parent / "stack", ris.port) as running:
        yield running


def find_by_name(stack: Stack, name: str) -> list[str]:
    """C-FIND at study level by patient name, with pynetdicom as Nimbus uses it."""
    stack.manage(
        "create_remote_ae", "--tenant", stack.schema, "--ae-title", "PHI_TEST",
        "--host", "127.0.0.1", "--port", "104",
    )  # fmt: skip
    # The test's own client follows Nimbus's rule for its SCUs and SCP.
    _config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title="PHI_TEST")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", stack.dicom_port, ae_title=stack.ae_title)
    assert assoc.is_established
    query = pydicom.Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientName = name
    query.StudyInstanceUID = ""
    found = [
        str(answer.StudyInstanceUID)
        for status, answer in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind
        )
        if status and status.Status in (0xFF00, 0xFF01) and answer is not None
    ]
    assoc.release()
    return found


def send_order(stack: Stack) -> bytes:
    family, given = ORDERED["name"].split("^")
    message = (
        f"MSH|^~\\&|RIS|RAD|NIMBUS|{stack.schema}|20240506080000||ORM^O01|PHI1|P|2.5.1\r"
        f"PID|1||{ORDERED['id']}||{family}^{given}||{ORDERED['birth']}|F\r"
        "ORC|NW|PL-1|FL-1||SC\r"
        "OBR|1|PL-1|FL-1|^CT chest||||||||||||||ACC-PHI-1\r"
    )
    with socket.create_connection(("127.0.0.1", stack.hl7_port), timeout=30) as conn:
        conn.sendall(b"\x0b" + message.encode() + b"\x1c\r")
        return conn.recv(65536)


def signed_in(stack: Stack) -> requests.Session:
    session = requests.Session()
    session.headers["Host"] = f"{stack.host}:{stack.web_port}"
    base = f"http://127.0.0.1:{stack.web_port}"
    form = session.get(f"{base}/accounts/login/", timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert token
    answer = session.post(
        f"{base}/accounts/login/",
        data={
            "csrfmiddlewaretoken": token.group(1),
            "username": stack.username,
            "password": PASSWORD,
            "otp_token": stack.fresh_otp(),
        },
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 302, answer.text[:300]
    return session


def run_the_clinical_flow(stack: Stack, ris: RisListener, made: Path) -> None:
    assert storescu(stack, stack.ae_title, *SOURCES, made).returncode == 0
    rows = wait_for(
        lambda: stack.sql(
            "SELECT s.study_instance_uid, e.series_instance_uid, i.sop_instance_uid"
            " FROM pacs_instance i JOIN pacs_series e ON i.series_id = e.id"
            " JOIN pacs_study s ON e.study_id = s.id JOIN pacs_patient p"
            " ON s.patient_id = p.id WHERE p.patient_id = %s",
            MADE["PatientID"],
        ),
        what="the made file indexed",
    )
    study, series, sop = (str(value) for value in rows[0])

    assert find_by_name(stack, "Quillfeather*") == [study]
    assert b"MSA|AA" in send_order(stack)

    token = stack.token
    status, _ = stack.get("/dicomweb/studies?PatientName=Quillfeather*", token)
    assert status == 200
    instance = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    assert stack.get(f"/dicomweb/studies/{study}/metadata", token)[0] == 200
    assert stack.get(f"{instance}/rendered", token)[0] == 200

    session = signed_in(stack)
    frame = f"/viewer/studies/{study}/series/{series}/instances/{sop}/frames/1.png"
    base = f"http://127.0.0.1:{stack.web_port}"
    assert session.get(base + frame, timeout=30).status_code == 200

    report = f"/api/studies/{study}/report"
    text = "No focal lesion. Quillfeather is not named in a report line."
    assert stack.call("PUT", report, {"text": text}, token)[0] == 200
    assert (
        stack.call("POST", f"{report}/dictation", {"text": "Normal."}, token)[0] == 200
    )
    status, body = stack.call(
        "POST", f"{report}/sign", {"otp": stack.fresh_otp()}, token
    )
    assert status == 200, body
    wait_for(lambda: ris.received, seconds=60, what="the ORU^R01 at the RIS")
    time.sleep(2)  # the worker logs the delivery after the ACK


def leaks(folder: Path, values: set[str]) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.log")):
        text = path.read_text("utf-8", errors="replace")
        for value in sorted(values):
            for line in text.splitlines():
                if value.lower() in line.lower():
                    found.append(f"{path.name}: {value!r} in {line[:300]}")
    return found


def test_no_log_line_of_any_process_names_a_patient(stack, ris, log_dir, tmp_path):
    made = made_copy(tmp_path)
    values = patient_values([*SOURCES, made])

    run_the_clinical_flow(stack, ris, made)

    files = sorted(log_dir.glob("*.log"))
    assert any(path.name.startswith("pytest-") for path in files)
    assert len(files) >= 5, [path.name for path in files]  # web, dicom, worker, hl7
    assert sum(path.stat().st_size for path in files) > 100_000, "debug logs written"
    assert ris.received and MADE["PatientID"] in str(ris.received[-1])
    assert not leaks(log_dir, values) + leaks(stack.logs, values)
