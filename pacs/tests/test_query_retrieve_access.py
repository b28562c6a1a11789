"""Only known remote AEs may query and retrieve, whatever the allow-list says.

dcmtk's findscu, movescu and getscu are the peers, over real associations to
the listener in a thread (fixtures and helpers from test_retrieve). The
tenant's "only known peers may store" stays off unless a test turns it on.
"""

import subprocess
from pathlib import Path

import pydicom
from django_tenants.utils import schema_context

from audit.models import AuditEvent, EventType
from pacs.tests import test_listener, test_retrieve
from pacs.tests.test_dicom_hardening import move_remote, rejections
from pacs.tests.test_listener import dcmtk
from pacs.tests.test_retrieve import (
    CT_SLICES,
    add_remote,
    committed,
    final_response,
    ingest,
    set_only_known_peers,
)

# The fixtures of the listener and retrieve tests, found here by name.
listener = test_listener.listener
archive = test_retrieve.archive
storescp = test_retrieve.storescp

NOT_AUTHORISED = 0x0124


def events(event_type: EventType, schema: str = "hospital_a") -> list[AuditEvent]:
    def load() -> list[AuditEvent]:
        with schema_context(schema):
            return list(AuditEvent.objects.filter(event_type=event_type))

    return committed(load)  # type: ignore[no-any-return]


def findscu(port: int, calling: str) -> subprocess.CompletedProcess[str]:
    return dcmtk(
        "findscu", "-v", "-d", "-S", "-aet", calling, "-aec", "NIMBUS_A",
        "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=*",
        "-k", "PatientID", "-k", "StudyInstanceUID", "127.0.0.1", str(port),
    )  # fmt: skip


def getscu(port: int, calling: str, folder: Path) -> str:
    study_uid = pydicom.dcmread(CT_SLICES[0]).StudyInstanceUID
    result = dcmtk(
        "getscu", "-d", "-S", "-aet", calling, "-aec", "NIMBUS_A",
        "-od", str(folder), "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(port),
    )  # fmt: skip
    return result.stdout + result.stderr


def test_it_refuses_c_find_from_an_unknown_ae_and_audits_it(archive):
    committed(ingest, "hospital_a", CT_SLICES[:1])
    patient = pydicom.dcmread(CT_SLICES[0], stop_before_pixels=True)

    find = findscu(archive, "STRANGER")
    echo = dcmtk(
        "echoscu", "-aet", "STRANGER", "-aec", "NIMBUS_A", "127.0.0.1", str(archive)
    )

    output = find.stdout + find.stderr
    assert "0x0124" in output, output
    assert str(patient.PatientID) not in output
    assert echo.returncode == 0, echo.stderr
    [event] = events(EventType.DICOM_QUERY)
    assert event.outcome == "failure"
    assert event.actor_username == "STRANGER"
    assert event.source_ip == "127.0.0.1"
    assert event.detail["status"] == NOT_AUTHORISED
    assert event.detail["reason"] == "calling AE title is not a known remote AE"
    assert event.detail["keys"] == ["PatientName", "PatientID", "StudyInstanceUID"]
    assert event.detail["results"] == 0


def test_it_answers_c_find_from_a_known_ae_and_audits_the_count(archive):
    committed(ingest, "hospital_a", CT_SLICES[:1])
    committed(add_remote, "hospital_a", "VIEWER", 104)
    patient = pydicom.dcmread(CT_SLICES[0], stop_before_pixels=True)

    find = findscu(archive, "VIEWER")

    assert find.returncode == 0, find.stderr
    assert str(patient.StudyInstanceUID) in find.stdout + find.stderr
    [event] = events(EventType.DICOM_QUERY)
    assert event.outcome == "success"
    assert event.actor_username == "VIEWER"
    assert event.detail["results"] == 1
    assert event.detail["level"] == "STUDY"


def test_it_refuses_c_find_from_a_known_ae_on_another_host_when_hosts_are_checked(
    archive,
):
    committed(set_only_known_peers, "hospital_a", True)
    committed(add_remote, "hospital_a", "VIEWER", 104)
    committed(move_remote, "hospital_a", "VIEWER", "192.0.2.10")

    find = findscu(archive, "VIEWER")

    assert "Calling AE Title Not Recognized" in find.stdout + find.stderr
    [event] = rejections("hospital_a")
    assert event.detail["reason"] == "calling AE title from another host than its own"
    assert not events(EventType.DICOM_QUERY)


def test_it_refuses_a_known_ae_title_from_another_host_with_the_allow_list_off(
    archive, tmp_path
):
    committed(ingest, "hospital_a", CT_SLICES[:1])
    committed(add_remote, "hospital_a", "VIEWER", 104, may_retrieve=True)
    committed(move_remote, "hospital_a", "VIEWER", "192.0.2.10")
    patient = pydicom.dcmread(CT_SLICES[0], stop_before_pixels=True)

    find = findscu(archive, "VIEWER")
    get = getscu(archive, "VIEWER", tmp_path)
    echo = dcmtk(
        "echoscu", "-aet", "VIEWER", "-aec", "NIMBUS_A", "127.0.0.1", str(archive)
    )

    assert "Calling AE Title Not Recognized" in find.stdout + find.stderr
    assert "Calling AE Title Not Recognized" in get
    assert str(patient.PatientID) not in find.stdout + find.stderr
    assert not list(tmp_path.glob("*.*.*"))
    assert echo.returncode == 0, echo.stderr  # a connection test stays open
    reasons = [event.detail["reason"] for event in rejections("hospital_a")]
    assert reasons == ["calling AE title from another host than its own"] * 2
    assert {event.source_ip for event in rejections("hospital_a")} == {"127.0.0.1"}
    assert not events(EventType.DICOM_QUERY) and not events(EventType.DICOM_GET)


def test_it_refuses_c_move_from_an_unknown_ae_without_contacting_the_destination(
    archive, storescp
):
    title, port, folder = storescp
    committed(ingest, "hospital_a", CT_SLICES[:1])
    committed(add_remote, "hospital_a", title, port, may_retrieve=True)
    study_uid = pydicom.dcmread(CT_SLICES[0]).StudyInstanceUID

    result = dcmtk(
        "movescu", "-d", "-S", "-aet", "STRANGER", "-aec", "NIMBUS_A",
        "-aem", title, "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study_uid}", "127.0.0.1", str(archive),
    )  # fmt: skip

    output = result.stdout + result.stderr
    assert final_response(output) == {
        "status": NOT_AUTHORISED,
        "completed": 0,
        "failed": 0,
        "warning": 0,
    }
    assert not any(folder.iterdir())
    [event] = events(EventType.DICOM_MOVE)
    assert event.outcome == "failure"
    assert event.actor_username == "STRANGER"
    assert event.object_id == title
    assert event.detail["reason"] == "calling AE title is not a known remote AE"


def test_it_refuses_c_get_from_an_unknown_ae_and_releases_cleanly(archive, tmp_path):
    committed(ingest, "hospital_a", CT_SLICES[:1])

    output = getscu(archive, "STRANGER", tmp_path)

    assert final_response(output)["status"] == NOT_AUTHORISED
    # Status and Error Comment only: no empty data set left unread.
    assert "Release Failed" not in output, output
    assert not list(tmp_path.glob("*.*.*"))
    [event] = events(EventType.DICOM_GET)
    assert event.outcome == "failure"
    assert event.source_ip == "127.0.0.1"
    assert event.detail["reason"] == "calling AE title is not a known remote AE"


def test_it_refuses_c_get_from_a_known_ae_that_may_not_retrieve(archive, tmp_path):
    committed(ingest, "hospital_a", CT_SLICES[:1])
    committed(add_remote, "hospital_a", "MODALITY", 104, may_store=True)

    output = getscu(archive, "MODALITY", tmp_path)

    assert final_response(output)["status"] == NOT_AUTHORISED
    assert not list(tmp_path.glob("*.*.*"))
    [event] = events(EventType.DICOM_GET)
    assert event.detail["reason"] == "calling AE title may not retrieve"
