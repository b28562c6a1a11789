"""A test ATNA repository: a syslog receiver over TCP or TLS on 127.0.0.1.

It parses RFC 6587 octet-counted frames strictly (a bad frame fails the
test that reads ``errors``), and a throw-away CA signs both ends' TLS
certificates.
"""

import datetime
import ipaddress
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# RFC 5424 6.: PRI VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
HEADER = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app>\S+) "
    rb"(?P<procid>\S+) (?P<msgid>\S+) (?P<sd>\[[^\]]*\]) (?P<msg>.*)$",
    re.DOTALL,
)


@dataclass
class SyslogMessage:
    pri: int
    msgid: str
    structured: dict[str, str]
    xml: bytes


def parse_frames(data: bytes) -> list[bytes]:
    """Split RFC 6587 3.4.1 octet-counted frames; raises on anything else."""
    frames = []
    while data:
        length, space, rest = data.partition(b" ")
        if not space or not length.isdigit() or len(rest) < int(length):
            raise ValueError(f"bad frame at {data[:20]!r}")
        frames.append(rest[: int(length)])
        data = rest[int(length) :]
    return frames


def parse_message(frame: bytes) -> SyslogMessage:
    match = HEADER.match(frame)
    if match is None:
        raise ValueError(f"not RFC 5424: {frame[:60]!r}")
    sd = match["sd"].decode()
    params = dict(re.findall(r'(\w+)="([^"]*)"', sd))
    msg = match["msg"]
    if not msg.startswith(b"\xef\xbb\xbf"):
        raise ValueError("MSG without the UTF-8 BOM")
    return SyslogMessage(int(match["pri"]), match["msgid"].decode(), params, msg[3:])


@dataclass
class Receiver:
    port: int
    tls: ssl.SSLContext | None = None
    messages: list[SyslogMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.server.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            try:
                self.read(conn)
            except (OSError, ValueError) as error:
                self.errors.append(str(error))
            finally:
                conn.close()
        self.server.close()

    def read(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        self.messages += [parse_message(frame) for frame in parse_frames(data)]

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_pki(folder: Path, ca_name: str = "Test audit CA") -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name))
        .issuer_name(_name(ca_name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {}
    for role, name in (("server", "127.0.0.1"), ("client", "nimbus")):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if role == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(ca_key, hashes.SHA256())
        (folder / f"{role}.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
        )
        _write_key(key, folder / f"{role}.key")
        paths[role] = (folder / f"{role}.pem", folder / f"{role}.key")
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    return Pki(folder / "ca.pem", *paths["server"], *paths["client"])


def server_context(pki: Pki) -> ssl.SSLContext:
    """The repository's side: its certificate, and a client certificate required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
