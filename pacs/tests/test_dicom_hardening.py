"""Listener hardening over real associations: allow-list with hosts, limits, TLS.

dcmtk's echoscu, storescu and findscu are the peers; where a test needs bytes
no well-behaved toolkit sends (a PDU longer than announced, a dataset cut
short), pynetdicom or a raw socket sends them. The listener runs in a thread
with its own database connections, so rows are committed from another thread
and removed at the end (helpers from test_retrieve).
"""

import datetime
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django_tenants.utils import schema_context
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from audit.models import AuditEvent, EventType
from conftest import CT_SERIES
from pacs import spool
from pacs.dimse.listener import serve
from pacs.dimse.transport import tls_context
from pacs.models import IngestFailure
from pacs.tests.test_listener import dcmtk, free_port, storescu
from pacs.tests.test_retrieve import (
    add_remote,
    committed,
    set_only_known_peers,
    wipe,
)

CT_SLICE = sorted(CT_SERIES.glob("*.dcm"))[0]


@contextmanager
def running_listener(django_db_blocker, tls_port: int | None = None) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The listener in a thread on a free port; everything committed is wiped after."""
    port = free_port()
    stop = threading.Event()
    with django_db_blocker.unblock():
        thread = threading.Thread(
            target=serve,
            args=("127.0.0.1", port, stop),
            kwargs={"tls_port": tls_port, "sweep": False},
            daemon=True,
        )
        thread.start()
        for waited_port in filter(None, (port, tls_port)):
            for _ in range(50):
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", waited_port)) == 0:
                        break
                stop.wait(0.1)
        try:
            yield port
        finally:
            stop.set()
            thread.join(10)
            committed(wipe)


@pytest.fixture
def listener(storage_dirs, db, django_db_blocker) -> Iterator[int]:  # type: ignore[no-untyped-def]
    with running_listener(django_db_blocker) as port:
        yield port


def store(port: int, calling: str, *files: Path, called: str = "NIMBUS_A"):  # type: ignore[no-untyped-def]
    return storescu(port, calling, *(files or (CT_SLICE,)), called=called)


def rejections(schema: str) -> list[AuditEvent]:
    def load() -> list[AuditEvent]:
        with schema_context(schema):
            return list(
                AuditEvent.objects.filter(
                    event_type=EventType.DICOM_ASSOCIATION_REJECTED
                )
            )

    return committed(load)  # type: ignore[no-any-return]


# --- allow-list: calling AE title and host ------------------------------------


def test_it_rejects_a_known_ae_title_calling_from_another_host(listener):
    committed(set_only_known_peers, "hospital_a", True)
    committed(add_remote, "hospital_a", "MODALITY", 104, may_store=True)
    committed(move_remote, "hospital_a", "MODALITY", "192.0.2.10")

    result = store(listener, "MODALITY")

    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stdout + result.stderr
    [event] = rejections("hospital_a")
    assert event.outcome == "failure"
    assert event.source_ip == "127.0.0.1"
    assert event.actor_username == "MODALITY"
    assert event.detail["reason"] == "calling AE title from another host than its own"
    assert not rejections("hospital_b")


def test_it_accepts_a_known_ae_title_from_its_host_given_by_name(listener):
    committed(set_only_known_peers, "hospital_a", True)
    committed(add_remote, "hospital_a", "MODALITY", 104, may_store=True)
    committed(move_remote, "hospital_a", "MODALITY", "localhost")

    result = store(listener, "MODALITY")

    assert result.returncode == 0, result.stderr
    assert len(list(spool.spool_dir("hospital_a").glob("*.dcm"))) == 1
    assert not rejections("hospital_a")


def test_it_refuses_queries_from_an_unknown_peer_when_the_allow_list_is_on(listener):
    committed(set_only_known_peers, "hospital_a", True)

    find = dcmtk(
        "findscu", "-S", "-aet", "STRANGER", "-aec", "NIMBUS_A",
        "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName=*",
        "127.0.0.1", str(listener),
    )  # fmt: skip
    echo = dcmtk(
        "echoscu", "-aet", "STRANGER", "-aec", "NIMBUS_A", "127.0.0.1", str(listener)
    )

    assert "Calling AE Title Not Recognized" in find.stdout + find.stderr
    assert echo.returncode == 0, echo.stderr
    [event] = rejections("hospital_a")
    assert event.detail["reason"] == "calling AE title not in the allow-list"


def test_it_logs_rejections_without_patient_data(listener, caplog):
    committed(set_only_known_peers, "hospital_a", True)

    with caplog.at_level("INFO", logger="nimbus.security"):
        store(listener, "STRANGER")

    [record] = [r for r in caplog.records if r.name == "nimbus.security"]
    message = record.getMessage()
    assert "STRANGER" in message and "127.0.0.1" in message
    patient = pydicom.dcmread(CT_SLICE, stop_before_pixels=True)
    assert str(patient.PatientID) not in message
    assert str(patient.PatientName) not in message


def move_remote(schema: str, ae_title: str, host: str) -> None:
    from pacs.models import RemoteApplicationEntity

    with schema_context(schema):
        RemoteApplicationEntity.objects.filter(ae_title=ae_title).update(host=host)


# --- association limits --------------------------------------------------------


def open_associations(port: int, calling: str, count: int) -> list:  # type: ignore[type-arg]
    scu = AE(ae_title=calling)
    scu.add_requested_context(Verification)
    return [scu.associate("127.0.0.1", port, ae_title="NIMBUS_A") for _ in range(count)]


def test_it_limits_concurrent_associations_per_peer_not_per_listener(
    storage_dirs, db, django_db_blocker, settings
):
    settings.NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_PEER = 2
    with running_listener(django_db_blocker) as port:
        held = open_associations(port, "BUSY", 2)
        established = [assoc.is_established for assoc in held]
        third = open_associations(port, "BUSY", 1)[0]
        other_peer = dcmtk(
            "echoscu", "-aet", "QUIET", "-aec", "NIMBUS_A", "127.0.0.1", str(port)
        )
        held[0].release()
        after_release = wait_until_accepted(port, "BUSY")

        assert established == [True, True]
        assert third.is_rejected
        assert other_peer.returncode == 0, other_peer.stderr
        assert after_release
        held[1].release()
        assert rejections("hospital_a")[0].detail["reason"] == (
            "too many associations from this peer"
        )


def test_it_limits_concurrent_associations_per_host_whatever_the_calling_title(
    storage_dirs, db, django_db_blocker, settings
):
    settings.NIMBUS_DICOM_MAX_ASSOCIATIONS_PER_HOST = 3
    with running_listener(django_db_blocker) as port:
        held = [open_associations(port, f"TITLE{n}", 1)[0] for n in range(3)]
        established = [assoc.is_established for assoc in held]
        fourth = open_associations(port, "TITLE3", 1)[0]
        held[0].release()
        after_release = wait_until_accepted(port, "TITLE4")

        assert established == [True, True, True]
        assert fourth.is_rejected
        assert after_release
        for assoc in held[1:]:
            assoc.release()
        [event] = rejections("hospital_a")
        assert event.detail["reason"] == "too many associations from this host"
        assert event.actor_username == "TITLE3"
        assert event.source_ip == "127.0.0.1"


def wait_until_accepted(port: int, calling: str) -> bool:
    for _ in range(50):
        [assoc] = open_associations(port, calling, 1)
        if assoc.is_established:
            assoc.release()
            return True
        threading.Event().wait(0.1)
    return False


def read_pdu_type(sock: socket.socket) -> int:
    sock.settimeout(10)
    header = sock.recv(6)
    return header[0] if header else 0


def test_it_aborts_a_peer_that_announces_an_enormous_pdu_and_stays_up(listener):
    with socket.create_connection(("127.0.0.1", listener), timeout=10) as sock:
        # An A-ASSOCIATE-RQ header claiming 2 GB: refused before a byte more.
        sock.sendall(b"\x01\x00" + struct.pack(">L", 2_000_000_000))
        answer = read_pdu_type(sock)

    assert answer == 0x07  # A-ABORT (PS3.8 9.3.8)
    echo = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))
    assert echo.returncode == 0, echo.stderr


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the listener sends before it closes, and how long that took."""
    sock.settimeout(10)
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass  # closed with the peer's bytes unread
    return received, time.monotonic() - started


def test_it_closes_the_connection_after_a_refused_pdu_and_logs_it_once(
    listener, caplog
):
    caplog.set_level("DEBUG", logger="nimbus.security")
    with socket.create_connection(("127.0.0.1", listener), timeout=10) as sock:
        # A refused header, then bytes that would read as 1,000 more headers.
        sock.sendall(struct.pack(">BBL", 0x01, 0, 0xFFFFFFF0) + bytes(6000))
        received, waited = read_until_closed(sock)

    # One A-ABORT (PS3.8 9.3.8), 10 bytes, then the close.
    assert received[:6] == b"\x07\x00" + struct.pack(">L", 4)
    assert len(received) == 10
    assert waited < 2
    refused = [r for r in caplog.records if "PDU refused" in r.getMessage()]
    assert [r.getMessage() for r in refused] == [
        "PDU refused from 127.0.0.1: type 0x01, 4294967280 bytes, limit 1048576"
    ]
    echo = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))
    assert echo.returncode == 0, echo.stderr


def test_it_aborts_a_p_data_pdu_longer_than_it_announced(listener):
    scu = AE(ae_title="SLOPPY")
    scu.add_requested_context(Verification)
    assoc = scu.associate("127.0.0.1", listener, ae_title="NIMBUS_A")
    assert assoc.is_established
    announced = assoc.acceptor.maximum_length

    raw = assoc.dul.socket.socket  # type: ignore[union-attr]
    raw.sendall(b"\x04\x00" + struct.pack(">L", announced + 1024))
    for _ in range(50):
        if assoc.is_aborted:
            break
        threading.Event().wait(0.1)

    assert announced == 1048576
    assert assoc.is_aborted


def big_instance(folder: Path, megabytes: int) -> Path:
    """A CT instance with ``megabytes`` of pixel data."""
    side = int((megabytes * (1 << 20) / 2) ** 0.5) + 1
    ds = pydicom.dcmread(CT_SLICE)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows = ds.Columns = side
    ds.PixelData = b"\x01\x02" * side * side
    path = folder / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_it_refuses_an_instance_over_the_size_limit_and_stores_nothing(
    storage_dirs, db, django_db_blocker, settings, tmp_path
):
    settings.NIMBUS_DICOM_MAX_INSTANCE_MB = 1
    big = big_instance(tmp_path, 3)
    with running_listener(django_db_blocker) as port:
        scu = AE(ae_title="MODALITY")
        scu.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        scu.add_requested_context(CTImageStorage, pydicom.uid.ImplicitVRLittleEndian)
        assoc = scu.associate("127.0.0.1", port, ae_title="NIMBUS_A")
        assert assoc.is_established
        too_big = assoc.send_c_store(pydicom.dcmread(big))
        normal = assoc.send_c_store(pydicom.dcmread(CT_SLICE))
        assoc.release()

        assert too_big.Status == 0xA700
        assert normal.Status == 0x0000
        spooled = list(spool.spool_dir("hospital_a").glob("*.dcm"))
        assert [pydicom.dcmread(p).SOPInstanceUID for p in spooled] == [
            pydicom.dcmread(CT_SLICE).SOPInstanceUID
        ]
        assert not list(spool.quarantine_dir("hospital_a").glob("*"))


# --- files that fail to parse: quarantine with the reason ----------------------


def send_raw_file(port: int, path: Path, monkeypatch) -> int:  # type: ignore[no-untyped-def]
    # Send the bytes as they are, without decoding them first.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    scu = AE(ae_title="HOSTILE")
    scu.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = scu.associate("127.0.0.1", port, ae_title="NIMBUS_A")
    assert assoc.is_established
    status = assoc.send_c_store(path)
    assoc.release()
    return int(status.Status)


def file_with_meta(path: Path, body: bytes, sop_instance_uid: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    with open(path, "wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        pydicom.filewriter.write_file_meta_info(handle, meta)
        handle.write(body)
    return path


def quarantined(schema: str) -> list[IngestFailure]:
    def load() -> list[IngestFailure]:
        with schema_context(schema):
            return list(IngestFailure.objects.all())

    return committed(load)  # type: ignore[no-any-return]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_it_keeps_a_file_that_fails_to_parse_in_quarantine_with_the_reason(
    listener, tmp_path, monkeypatch, damage
):
    original = pydicom.dcmread(CT_SLICE)
    uid = str(original.SOPInstanceUID)
    if damage == "truncated":
        # Cut inside the header, before the SOP Instance UID is complete.
        encoded = DicomBytesIO()
        encoded.is_little_endian, encoded.is_implicit_VR = True, False
        pydicom.filewriter.write_dataset(encoded, original)
        whole = encoded.getvalue()
        body = whole[: whole.index(uid.encode()) + 3]
    else:
        body = bytes(range(256)) * 64
    path = file_with_meta(tmp_path / f"{damage}.dcm", body, uid)

    status = send_raw_file(listener, path, monkeypatch)

    assert status == 0xC000
    [failure] = quarantined("hospital_a")
    kept = Path(failure.quarantine_path)
    assert kept.parent == spool.quarantine_dir("hospital_a")
    assert body in kept.read_bytes()
    assert "unreadable" in failure.error
    assert failure.sop_instance_uid == uid
    assert failure.calling_ae_title == "HOSTILE"
    assert not list(spool.spool_dir("hospital_a").glob("*.dcm"))
    echo = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))
    assert echo.returncode == 0


# --- DICOM TLS (PS3.15 B.9) ------------------------------------------------------


def make_certificate(
    folder: Path,
    name: str,
    issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None,
    *,
    server: bool = False,
) -> tuple[Path, Path, x509.Certificate, rsa.RSAPrivateKey]:
    """A throw-away RSA key and certificate; self-signed (a CA) without issuer."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    issuer_cert, issuer_key = issuer or (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ip("127.0.0.1"))]
            ),
            critical=False,
        )
    certificate = builder.sign(issuer_key, hashes.SHA256())
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, certificate, key


def ip(address: str):  # type: ignore[no-untyped-def]
    import ipaddress

    return ipaddress.ip_address(address)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "pki"
    folder.mkdir()
    _, ca_cert, ca, ca_key = make_certificate(folder, "nimbus-test-ca")
    server_key, server_cert, *_ = make_certificate(
        folder, "listener", (ca, ca_key), server=True
    )
    client_key, client_cert, *_ = make_certificate(folder, "modality", (ca, ca_key))
    _, _, rogue, rogue_key = make_certificate(folder, "rogue-ca")
    rogue_client_key, rogue_client_cert, *_ = make_certificate(
        folder, "impostor", (rogue, rogue_key)
    )
    return {
        "ca": ca_cert,
        "server_key": server_key,
        "server_cert": server_cert,
        "client_key": client_key,
        "client_cert": client_cert,
        "rogue_key": rogue_client_key,
        "rogue_cert": rogue_client_cert,
    }


@pytest.fixture
def tls_listener(storage_dirs, db, django_db_blocker, settings, pki):  # type: ignore[no-untyped-def]
    settings.NIMBUS_DICOM_TLS_CERT = str(pki["server_cert"])
    settings.NIMBUS_DICOM_TLS_KEY = str(pki["server_key"])
    settings.NIMBUS_DICOM_TLS_CA = str(pki["ca"])
    tls_port = free_port()
    with running_listener(django_db_blocker, tls_port=tls_port) as port:
        yield port, tls_port


def tls(  # type: ignore[no-untyped-def]
    pki: dict[str, Path],
    tool: str,
    port: int,
    *options: str,
    files: tuple[Path, ...] = (),
    client: str = "client",
):
    """A dcmtk tool over TLS, verifying the listener against the test CA."""
    identity = (
        ["+tla"]
        if client == "anonymous"
        else ["+tls", str(pki[f"{client}_key"]), str(pki[f"{client}_cert"]), "-pw"]
    )
    return dcmtk(
        tool,
        *identity,
        "+cf",
        str(pki["ca"]),
        *options,
        "127.0.0.1",
        str(port),
        *map(str, files),
    )


def test_it_answers_c_echo_and_stores_over_dicom_tls(tls_listener, pki):
    _, tls_port = tls_listener

    echo = tls(pki, "echoscu", tls_port, "-aec", "NIMBUS_A")
    stored = tls(pki, "storescu", tls_port, "-aec", "NIMBUS_A", files=(CT_SLICE,))

    assert echo.returncode == 0, echo.stderr
    assert stored.returncode == 0, stored.stderr
    [path] = spool.spool_dir("hospital_a").glob("*.dcm")
    assert pydicom.dcmread(path) == pydicom.dcmread(CT_SLICE)


def test_it_accepts_an_internet_peer_only_over_tls_with_a_client_certificate(
    tls_listener, pki
):
    port, tls_port = tls_listener
    committed(add_remote, "hospital_a", "REMOTE_CT", 104, may_store=True)
    committed(flag_over_internet, "hospital_a", "REMOTE_CT")
    calling = ("-aet", "REMOTE_CT", "-aec", "NIMBUS_A")

    plain = dcmtk("storescu", *calling, "127.0.0.1", str(port), str(CT_SLICE))
    anonymous = tls(
        pki, "storescu", tls_port, *calling, files=(CT_SLICE,), client="anonymous"
    )
    certified = tls(pki, "storescu", tls_port, *calling, files=(CT_SLICE,))

    assert "Calling AE Title Not Recognized" in plain.stdout + plain.stderr
    assert "Calling AE Title Not Recognized" in anonymous.stdout + anonymous.stderr
    assert certified.returncode == 0, certified.stderr
    assert len(list(spool.spool_dir("hospital_a").glob("*.dcm"))) == 1
    reasons = {event.detail["reason"] for event in rejections("hospital_a")}
    assert reasons == {"internet peer without a verified TLS client certificate"}


def flag_over_internet(schema: str, ae_title: str) -> None:
    from pacs.models import RemoteApplicationEntity

    with schema_context(schema):
        RemoteApplicationEntity.objects.filter(ae_title=ae_title).update(
            comes_over_internet=True
        )


def test_it_refuses_a_client_certificate_from_another_ca_and_stays_up(
    tls_listener, pki
):
    _, tls_port = tls_listener

    impostor = tls(pki, "echoscu", tls_port, "-aec", "NIMBUS_A", client="rogue")
    echo = tls(pki, "echoscu", tls_port, "-aec", "NIMBUS_A")

    assert impostor.returncode != 0
    assert echo.returncode == 0, echo.stderr


def test_a_silent_connection_to_the_tls_port_does_not_block_other_peers(
    tls_listener, pki
):
    _, tls_port = tls_listener

    with socket.create_connection(("127.0.0.1", tls_port), timeout=10):
        echo = tls(pki, "echoscu", tls_port, "-aec", "NIMBUS_A")

    assert echo.returncode == 0, echo.stderr


def test_it_offers_no_tls_version_older_than_1_2(pki):
    # The system OpenSSL may refuse TLS 1.1 anyway; the listener does not rely on it.
    context = tls_context(
        str(pki["server_cert"]), str(pki["server_key"]), str(pki["ca"])
    )

    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
