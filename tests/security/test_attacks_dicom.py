"""Attacks through DICOM files and UIDs on a running Nimbus: traversal, bad lengths,
polyglots and a pixel-data bomb.

Files go in the way an attacker's modality or client would send them: over a
C-STORE association (pynetdicom, which sends a file's bytes as they are) and
as STOW-RS parts. The listener must answer with a standard status, keep what
it cannot read in quarantine, record it, and stay up.
"""

import io
import struct
from pathlib import Path

import pydicom
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    Verification,
)

from tests.security.conftest import Attack, dicom_copy
from tests.support.stack import wait_for

INSTANCE_STORED, ACCESS_DENIED = 300, 110
ASSOCIATION_REJECTED, DICOM_QUERY, DICOM_GET = 151, 232, 231
READS = {201, 202, 210, 221}


def c_store(attack: Attack, target: Path | pydicom.Dataset) -> int:
    """Send one file or dataset over a fresh association; the C-STORE status."""
    ae = AE(ae_title="ATTACKER")
    for syntax in (ExplicitVRLittleEndian, RLELossless):
        ae.add_requested_context(CTImageStorage, syntax)
    assoc = ae.associate(
        "127.0.0.1", attack.stack.dicom_port, ae_title=attack.stack.ae_title
    )
    assert assoc.is_established
    try:
        status = assoc.send_c_store(target)
        return int(status.Status) if "Status" in status else -1
    finally:
        assoc.release()


def listener_answers_echo(attack: Attack) -> bool:
    ae = AE(ae_title="ATTACKER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(
        "127.0.0.1", attack.stack.dicom_port, ae_title=attack.stack.ae_title
    )
    try:
        return bool(assoc.is_established and assoc.send_c_echo().Status == 0)
    finally:
        assoc.release()


def stow(attack: Attack, *parts: bytes, disposition: str = "") -> tuple[int, dict]:
    boundary = "attack-boundary"
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n".encode()
        if disposition:
            body += f"Content-Disposition: {disposition}\r\n".encode()
        body += b"\r\n" + part + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    answer = attack.api(
        "author",
        "POST",
        "/dicomweb/studies",
        data=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {}


def failure_reasons(answer: dict) -> list[int]:
    failed = answer.get("00081198", {}).get("Value", [])
    return [item["00081197"]["Value"][0] for item in failed]


def quarantined(attack: Attack, sop_uid: str) -> list[tuple]:
    return attack.sql(
        "e2e",
        "SELECT quarantine_path, error FROM pacs_ingestfailure WHERE sop_instance_uid = %s",
        sop_uid,
    )


# --- A known AE title from another address -------------------------------------------


def associate_as(
    attack: Attack, title: str, source: str, *contexts: str
) -> Association:
    """An association calling as ``title`` from the loopback address ``source``."""
    ae = AE(ae_title=title)
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate(
        "127.0.0.1",
        attack.stack.dicom_port,
        ae_title=attack.stack.ae_title,
        bind_address=(source, 0),
    )


def find_study_uids(assoc: Association) -> list[str]:
    query = pydicom.Dataset()
    query.QueryRetrieveLevel, query.StudyInstanceUID = "STUDY", ""
    answers = assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind)
    return [str(found.StudyInstanceUID) for status, found in answers if found]


def dicom_events(attack: Attack, since: int) -> list[tuple]:
    return attack.sql(
        "e2e",
        "SELECT event_type, outcome, actor_username, host(source_ip),"
        " detail->>'reason' FROM audit_auditevent WHERE id > %s ORDER BY id",
        since,
    )


def test_it_rejects_a_known_query_retrieve_title_calling_from_another_address(
    attack,
):
    # The allow-list ("only known peers may store") stays off, as by default.
    attack.stack.manage(
        "create_remote_ae", "--tenant", "e2e", "--ae-title", "KNOWN_SCP",
        "--host", "127.0.0.1", "--port", "11399", "--may-retrieve",
    )  # fmt: skip
    query_retrieve = (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelGet,
    )
    since = attack.mark()

    spoofed = associate_as(attack, "KNOWN_SCP", "127.0.0.2", *query_retrieve)
    storing = associate_as(attack, "KNOWN_SCP", "127.0.0.2", CTImageStorage)
    echo = associate_as(attack, "KNOWN_SCP", "127.0.0.2", Verification)

    assert spoofed.is_rejected and storing.is_rejected
    assert echo.is_established and echo.send_c_echo().Status == 0
    echo.release()
    reason = "calling AE title from another host than its own"
    assert dicom_events(attack, since) == [
        (ASSOCIATION_REJECTED, "failure", "KNOWN_SCP", "127.0.0.2", reason),
        (ASSOCIATION_REJECTED, "failure", "KNOWN_SCP", "127.0.0.2", reason),
    ]

    # From its own address the same title queries as before.
    since = attack.mark()
    genuine = associate_as(attack, "KNOWN_SCP", "127.0.0.1", *query_retrieve)
    assert genuine.is_established
    try:
        assert attack.studies["xss"]["study"] in find_study_uids(genuine)
    finally:
        genuine.release()
    wait_for(
        lambda: (
            (DICOM_QUERY, "success", "KNOWN_SCP", "127.0.0.1", None)
            in dicom_events(attack, since)
        ),
        30,
        "the query audited",
    )


# --- Path traversal through UIDs and file names ----------------------------------------

# Each reaches a view as one path segment, so the access helper sees it.
# (A bare ".." never leaves the client: HTTP clients resolve dot segments.)
SEGMENT_PAYLOADS = ["%2e%2e", "%2E%2e", "..%5c..%5cwindows", "....", "1" * 80]
# Each holds a slash once decoded: the router refuses it before any view.
SLASHED_PAYLOADS = ["..%2f..%2f..%2fetc%2fpasswd", "%2fetc%2fpasswd", "..%252f..%252f"]


def test_it_refuses_traversal_uids_in_one_segment_and_audits_each(attack):
    xss = attack.studies["xss"]
    for payload in SEGMENT_PAYLOADS:
        since = attack.mark()
        routes = [
            f"/viewer/studies/{payload}/",
            f"/viewer/studies/{xss['study']}/series/{payload}/",
            f"/viewer/studies/{xss['study']}/series/{xss['series']}/instances/{payload}/frames/1.png",
            f"/api/studies/{payload}/report",
            f"/reports/studies/{payload}/",
        ]

        answers = [attack.browser("reader").get(route) for route in routes]

        assert [a.status_code for a in answers] == [404] * len(routes), payload
        assert all("root:" not in a.text for a in answers)
        assert len(attack.denials(since, "reader2")) == len(routes), payload


def test_it_refuses_slashed_traversal_uids_before_any_view_reads_a_file(attack):
    since = attack.mark()
    xss = attack.studies["xss"]
    for payload in SLASHED_PAYLOADS:
        routes = [
            f"/viewer/studies/{payload}/",
            f"/api/studies/{payload}/report",
            f"/dicomweb/studies/{payload}/metadata",
            f"/dicomweb/studies/{xss['study']}/series/{xss['series']}/instances/{payload}",
            f"/viewer/studies/{xss['study']}/series/{xss['series']}/instances/{payload}/frames/1.png",
        ]

        answers = [attack.browser("reader").get(route) for route in routes]

        assert {a.status_code for a in answers} == {404}, payload
        assert all("root:" not in a.text and b"DICM" not in a.content for a in answers)
    assert READS.isdisjoint(e[0] for e in attack.events(since))


def test_it_refuses_nul_bytes_and_overlong_uids_on_dicomweb_without_an_error(attack):
    since = attack.mark()
    routes = [
        "/dicomweb/studies/1.2.3%00.4/metadata",
        f"/dicomweb/studies/{'1.' * 40}1/metadata",
        "/viewer/studies/1.2.3%00/",
    ]

    answers = [attack.api("author", "GET", route) for route in routes]

    assert [a.status_code for a in answers[:2]] == [404, 404]
    assert answers[2].status_code in (400, 401, 302, 404)
    assert READS.isdisjoint(e[0] for e in attack.events(since))


def test_it_keeps_a_c_store_whose_study_uid_is_a_path_in_quarantine_and_audits_it(
    attack, tmp_path
):
    _path, ds = dicom_copy(tmp_path, "climb")
    ds.StudyInstanceUID = "../../../../../../tmp/nimbus-attack-study"
    since = attack.mark()

    status = c_store(attack, ds)

    # Refused at once: the modality must not believe the image archived.
    assert status == 0xC000
    [(kept, error)] = wait_for(lambda: quarantined(attack, str(ds.SOPInstanceUID)), 30)
    assert "/quarantine/" in kept and "UID missing or invalid" in error
    assert not Path("/tmp/nimbus-attack-study").exists()
    stored = [e for e in attack.events(since) if e[0] == INSTANCE_STORED]
    assert [(e[1], e[4]) for e in stored] == [("failure", str(ds.SOPInstanceUID))]
    assert listener_answers_echo(attack)


def test_it_refuses_a_c_store_whose_series_uid_climbs_out_and_audits_it(
    attack, tmp_path
):
    _path, ds = dicom_copy(tmp_path, "series-climb")
    ds.SeriesInstanceUID = "1.2.3/../../../x"
    since = attack.mark()

    status = c_store(attack, ds)

    assert status == 0xC000
    [(kept, error)] = quarantined(attack, str(ds.SOPInstanceUID))
    assert "/quarantine/" in kept and "UID missing or invalid" in error
    stored = [e for e in attack.events(since) if e[0] == INSTANCE_STORED]
    assert [(e[1], e[4]) for e in stored] == [("failure", str(ds.SOPInstanceUID))]


def test_it_stores_a_stow_part_under_its_uids_whatever_its_file_name(attack, tmp_path):
    path, ds = dicom_copy(tmp_path, "named")
    since = attack.mark()

    status, _ = stow(
        attack,
        path.read_bytes(),
        disposition='attachment; filename="../../../../../../tmp/nimbus-attack.dcm"',
    )

    assert status == 200
    [(storage_path,)] = attack.sql(
        "e2e",
        "SELECT storage_path FROM pacs_instance WHERE sop_instance_uid = %s",
        str(ds.SOPInstanceUID),
    )
    assert (
        storage_path
        == f"e2e/{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"
    )
    assert not Path("/tmp/nimbus-attack.dcm").exists()
    assert (INSTANCE_STORED, "success", "author") in [
        e[:3] for e in attack.events(since)
    ]


def test_it_refuses_a_stow_part_whose_uids_are_paths_and_audits_it(attack, tmp_path):
    _path, ds = dicom_copy(tmp_path, "stow-climb")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "../../../etc/passwd"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    since = attack.mark()

    status, answer = stow(attack, buffer.getvalue())

    assert status == 409
    assert failure_reasons(answer) == [0xC000]
    stored = [e for e in attack.events(since) if e[0] == INSTANCE_STORED]
    assert [e[1] for e in stored] == ["failure"]


# --- An element length past the end of the file -----------------------------------------


def with_oversized_length(tmp_path: Path) -> tuple[Path, pydicom.Dataset]:
    """A file whose Study Description claims 2 GB: its length ends past the file."""
    path, ds = dicom_copy(tmp_path, "oversized", StudyDescription="SHORT")
    raw = path.read_bytes()
    # Explicit VR little endian: (0008,1030) LO, 2-byte length. As UN it takes
    # a 4-byte length, which is set far past the end.
    element = b"\x08\x00\x30\x10LO" + struct.pack("<H", 6) + b"SHORT "
    assert element in raw
    forged = b"\x08\x00\x30\x10UN\x00\x00" + struct.pack("<I", 0x7FFFFFF0) + b"SHORT "
    path.write_bytes(raw.replace(element, forged))
    return path, ds


def test_it_refuses_an_element_length_past_the_end_over_c_store_and_keeps_it(
    attack, tmp_path
):
    path, ds = with_oversized_length(tmp_path)
    since = attack.mark()

    status = c_store(attack, path)

    assert status in (0xC000, 0xA700) or status == 0x0000
    kept = wait_for(lambda: quarantined(attack, str(ds.SOPInstanceUID)), 30)
    assert kept
    assert not attack.sql(
        "e2e",
        "SELECT 1 FROM pacs_instance WHERE sop_instance_uid = %s",
        str(ds.SOPInstanceUID),
    )
    stored = [e for e in attack.events(since) if e[0] == INSTANCE_STORED]
    assert [e[1] for e in stored] == ["failure"]
    assert listener_answers_echo(attack)


def test_it_refuses_an_element_length_past_the_end_over_stow_rs_and_audits_it(
    attack, tmp_path
):
    path, _ds = with_oversized_length(tmp_path)
    since = attack.mark()

    status, answer = stow(attack, path.read_bytes())

    assert status == 409
    assert failure_reasons(answer) == [0xC000]
    stored = [e for e in attack.events(since) if e[0] == INSTANCE_STORED]
    assert [e[1] for e in stored] == ["failure"]
    assert attack.stack.get("/healthz")[0] == 200


# --- The preamble polyglot ---------------------------------------------------------------

PE_STUB = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00"
ELF_STUB = b"\x7fELF\x02\x01\x01\x00"


def polyglot(tmp_path: Path, stub: bytes) -> tuple[bytes, pydicom.Dataset]:
    path, ds = dicom_copy(tmp_path, "polyglot")
    raw = path.read_bytes()
    return stub + raw[len(stub) : 128] + raw[128:], ds


def test_it_stores_a_pe_polyglot_as_received_and_serves_it_only_as_dicom(
    attack, tmp_path
):
    data, ds = polyglot(tmp_path, PE_STUB)
    status, _ = stow(attack, data)
    assert status == 200
    instance = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    since = attack.mark()

    answers = [
        attack.api("author", "GET", instance, headers={"Accept": accept})
        for accept in (
            "*/*",
            'multipart/related; type="application/dicom"',
            "application/octet-stream",
            "application/x-msdownload",
            "text/html",
        )
    ]

    served = [a for a in answers if a.status_code == 200]
    assert served, [a.status_code for a in answers]
    for answer in answers:
        kind = answer.headers.get("Content-Type", "")
        assert answer.headers.get("X-Content-Type-Options") == "nosniff"
        assert "html" not in kind and "msdownload" not in kind and "octet" not in kind
        assert answer.status_code in (200, 406)
    assert all("application/dicom" in a.headers["Content-Type"] for a in served)
    assert PE_STUB in served[0].content  # stored and served bit for bit
    retrieved = [e for e in attack.events(since) if e[0] == 221]
    assert len(retrieved) == len(served)


def test_it_stores_an_elf_polyglot_and_no_download_of_it_is_executable(
    attack, tmp_path
):
    data, ds = polyglot(tmp_path, ELF_STUB)
    status, _ = stow(attack, data)
    assert status == 200
    [(storage_path,)] = attack.sql(
        "e2e",
        "SELECT storage_path FROM pacs_instance WHERE sop_instance_uid = %s",
        str(ds.SOPInstanceUID),
    )
    stored = Path(attack.stack.env["NIMBUS_VAR_DIR"]) / "storage" / storage_path
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    since = attack.mark()

    answers = [
        attack.api("author", "GET", base, headers={"Accept": "*/*"}),
        attack.api("author", "GET", f"{base}/instances/{ds.SOPInstanceUID}/rendered"),
        attack.api("author", "GET", f"{base}/instances/{ds.SOPInstanceUID}/thumbnail"),
    ]

    if stored.exists():
        assert stored.read_bytes()[:4] == ELF_STUB[:4]
    for answer in answers:
        assert answer.status_code == 200
        kind = answer.headers["Content-Type"]
        assert kind.startswith(("multipart/related", "image/")), kind
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        answers[1].content.startswith(b"\x89PNG")
        or answers[1].content[:2] == b"\xff\xd8"
    )
    assert 221 in [e[0] for e in attack.events(since)]


# --- A pixel-data bomb -----------------------------------------------------------------


def pixel_bomb(tmp_path: Path) -> pydicom.Dataset:
    """RLE pixel data of a few bytes claiming 65535 x 65535 16-bit pixels (8 GB)."""
    _path, ds = dicom_copy(tmp_path, "bomb")
    ds.Rows = ds.Columns = 65535
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    header = struct.pack("<16I", 2, 64, 96, *([0] * 13))
    segment = b"\x81\x00" * 16  # PackBits: runs of zeros
    ds.PixelData = pydicom.encaps.encapsulate([header + segment + segment])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    return ds


def peak_memory_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(
        next(
            line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")
        )
    )


def test_it_renders_a_pixel_bomb_as_an_error_image_without_exhausting_memory(
    attack, tmp_path
):
    ds = pixel_bomb(tmp_path)
    assert c_store(attack, ds) == 0x0000  # stored as received
    wait_for(
        lambda: attack.sql(
            "e2e",
            "SELECT 1 FROM pacs_instance WHERE sop_instance_uid = %s",
            str(ds.SOPInstanceUID),
        ),
        30,
    )
    web = attack.stack.processes[0].pid
    before = peak_memory_kb(web)
    frame = (
        f"/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1.png"
    )
    since = attack.mark()

    answer = attack.browser("reader").get(frame)

    assert answer.status_code in (200, 422)
    assert answer.content.startswith(b"\x89PNG")  # the error image, not a crash
    assert peak_memory_kb(web) - before < 256 * 1024
    assert attack.stack.get("/healthz")[0] == 200
    assert listener_answers_echo(attack)
    assert 202 in [e[0] for e in attack.events(since)]
