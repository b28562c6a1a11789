"""MLLP: a client that sends one HL7 v2 message and reads its ACK,
and a threaded listener that answers each message it receives.

MLLP (HL7 v2.5.1 appendix C, "Minimal Lower Layer Protocol") frames a message
as ``<VT> message <FS><CR>`` (0x0B ... 0x1C 0x0D) on a TCP stream. The
receiver answers with an ACK message in the same framing; its MSA segment
(HL7 v2.5.1 section 2.14.8) tells whether the message was accepted.

Both ends may run over TLS, as MLLP release 2 and IHE ITI TF-2 3.2 (ATNA
secure node) leave the lower layer to it: TLS 1.2 or later with Python's
default (BCP 195) cipher suites. The client verifies the RIS's certificate
chain and its host name (RFC 6125, as :func:`ssl.match_hostname` did) and
may present a certificate of its own; the listener may ask for one.
"""

import logging
import re
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
MAX_ACK_BYTES = 1024 * 1024

# HL7 table 0008. Original mode (AA/AE/AR) and enhanced mode commit
# acknowledgements (CA/CE/CR) are both accepted from a RIS.
ACCEPTED_CODES = frozenset({"AA", "CA"})
REFUSED_CODES = frozenset({"AE", "AR", "CE", "CR"})

_ESCAPE_SEQUENCE = re.compile(r"\\([FSRTE])\\")


class MllpError(Exception):
    """The message may not have arrived: nothing listens, a timeout, a cut line."""


class MalformedAcknowledgement(MllpError):
    """The peer answered, but not with an ACK that Nimbus can read."""


@dataclass(frozen=True)
class Acknowledgement:
    """MSA-1, MSA-2 and the peer's error text (MSA-3 and ERR)."""

    code: str
    control_id: str
    text: str

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED_CODES


@dataclass(frozen=True)
class ClientTls:
    """Where the files of an MLLP-over-TLS client are (PEM, paths, never keys).

    Attributes
    ----------
    ca_file : str
        The CAs that may sign the RIS's certificate; empty: the system's
        trust store.
    cert_file, key_file : str
        Nimbus's client certificate (chain) and its private key, both or
        neither; empty: no client certificate is offered.
    """

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2+, chain and host name verified.

        Raises
        ------
        MllpError
            A file is missing or does not hold a certificate or key.
        """
        try:
            context = ssl.create_default_context(cafile=self.ca_file or None)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if self.cert_file or self.key_file:
                context.load_cert_chain(self.cert_file, self.key_file or None)
        except (OSError, ValueError) as error:
            # SSLError is an OSError; its strerror is often empty.
            reason = getattr(error, "strerror", None) or str(error)
            text = _(
                "TLS set-up failed: the CA bundle or client certificate "
                "could not be read (%(reason)s)."
            )
            raise MllpError(text % {"reason": reason}) from error
        return context


def send_message(
    host: str,
    port: int,
    message: str,
    timeout: float,
    *,
    tls: ClientTls | None = None,
) -> Acknowledgement:
    """Send ``message`` over MLLP and return the peer's acknowledgement.

    Parameters
    ----------
    host, port : str, int
        The RIS's MLLP listener. Over TLS, ``host`` is also the name (or IP
        address) that the RIS's certificate must carry.
    message : str
        One HL7 v2 message, segments ended by carriage returns. It is encoded
        as UTF-8, as its MSH-18 declares.
    timeout : float
        Seconds allowed for connecting, the TLS handshake, and for each read
        or write.
    tls : ClientTls, optional
        Connect over TLS with these files; plain TCP when None.

    Returns
    -------
    Acknowledgement
        The parsed MSA segment, accepted or refused.

    Raises
    ------
    MllpError
        The connection failed or closed before a complete ACK arrived, or
        the TLS handshake failed (the RIS's certificate not verified, no
        common protocol, Nimbus's certificate refused).
    MalformedAcknowledgement
        The reply has no MSA segment or an unknown acknowledgement code.
    """
    frame = START_BLOCK + message.encode("utf-8") + END_BLOCK
    context = tls.context() if tls else None
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            stream = (
                context.wrap_socket(connection, server_hostname=host)
                if context
                else connection
            )
            with stream:
                stream.sendall(frame)
                reply = _read_frame(stream, over_tls=context is not None)
    except TimeoutError as error:
        raise MllpError(f"No answer from {host}:{port} within {timeout} s.") from error
    except ssl.SSLCertVerificationError as error:
        text = _("%(peer)s: TLS: the RIS's certificate was not accepted (%(reason)s).")
        reason = error.verify_message or str(error)
        raise MllpError(text % {"peer": f"{host}:{port}", "reason": reason}) from error
    except ssl.SSLError as error:
        text = _("%(peer)s: TLS handshake failed (%(reason)s).")
        reason = error.reason or str(error)
        raise MllpError(text % {"peer": f"{host}:{port}", "reason": reason}) from error
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise MllpError(f"{host}:{port}: {reason}.") from error
    logger.debug("MLLP reply of %d bytes from %s:%s", len(reply), host, port)
    return parse_acknowledgement(reply.decode("utf-8", errors="replace"))


def _read_frame(connection: socket.socket, *, over_tls: bool = False) -> bytes:
    received = bytearray()
    while END_BLOCK not in received:
        chunk = connection.recv(65536)
        if not chunk and over_tls and not received:
            # Under TLS 1.3 the server checks the client's certificate after
            # the client's handshake ended; some close without an alert.
            raise MllpError(
                _(
                    "The RIS closed the TLS connection without answering; it "
                    "may have refused Nimbus's client certificate (none, or "
                    "not signed by a CA it trusts)."
                )
            )
        if not chunk:
            raise MllpError("The peer closed the connection before acknowledging.")
        received.extend(chunk)
        if len(received) > MAX_ACK_BYTES:
            raise MalformedAcknowledgement("The acknowledgement is too long.")
    start = received.find(START_BLOCK)
    end = received.find(END_BLOCK)
    if start == -1 or start > end:
        raise MalformedAcknowledgement("The reply is not framed with MLLP.")
    return bytes(received[start + 1 : end])


def parse_acknowledgement(reply: str) -> Acknowledgement:
    """Read MSA-1 (code), MSA-2 (control ID) and the error text of an ACK.

    The error text is MSA-3 if present, else ERR-8 (user message), else the
    text component of ERR-3 (HL7 error code), unescaped.
    """
    segments = [s for s in re.split(r"\r\n|\r|\n", reply) if s]
    if not segments or not segments[0].startswith("MSH") or len(segments[0]) < 8:
        raise MalformedAcknowledgement("The reply has no MSH segment.")
    field_separator = segments[0][3]
    fields_by_name = {s[:3]: s.split(field_separator) for s in reversed(segments)}
    msa = fields_by_name.get("MSA")
    if msa is None or len(msa) < 2:
        raise MalformedAcknowledgement("The reply has no MSA segment.")
    code = msa[1].strip().upper()
    if code not in ACCEPTED_CODES | REFUSED_CODES:
        raise MalformedAcknowledgement(f"Unknown acknowledgement code {code[:4]!r}.")
    control_id = _field(msa, 2)
    text = _field(msa, 3) or _error_text(fields_by_name.get("ERR"))
    return Acknowledgement(code=code, control_id=control_id, text=text)


def _error_text(err: list[str] | None) -> str:
    if err is None:
        return ""
    user_message = _field(err, 8)
    if user_message:
        return user_message
    error_code = _field(err, 3, raw=True).split("^")
    return _unescape(error_code[1] if len(error_code) > 1 else error_code[0])


def _field(fields: list[str], index: int, *, raw: bool = False) -> str:
    value = fields[index] if len(fields) > index else ""
    return value if raw else _unescape(value)


def _unescape(value: str) -> str:
    replacements = {"F": "|", "S": "^", "R": "~", "T": "&", "E": "\\"}
    return _ESCAPE_SEQUENCE.sub(lambda match: replacements[match.group(1)], value)


MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class MllpServer(socketserver.ThreadingTCPServer):
    """An MLLP listener: one thread per connection, one answer per message.

    ``answer`` turns the bytes of one received message (framing removed) into
    the bytes of its acknowledgement; it is called for each message in the
    order they arrive on a connection, and must not raise.

    With ``ssl_context`` (a server context, see
    ``pacs.dimse.transport.tls_context``) every connection is TLS: the
    handshake runs in the connection's thread within ``handshake_timeout``
    seconds, and one that fails (no common protocol, a client certificate
    missing or not from the context's CAs) closes that connection only and
    is logged under ``nimbus.security``.

    At most ``max_connections`` connections are served at once (0: no
    limit); one more is closed as soon as it is accepted, and logged, so a
    RIS that leaks connections or a flood of them cannot take every thread
    and file descriptor of the listener. The connections already open, and
    the listener, carry on.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        answer: Callable[[bytes], bytes],
        *,
        idle_timeout: float = 300.0,
        on_connection_end: Callable[[], None] = lambda: None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float = 30.0,
        max_connections: int = 0,
    ) -> None:
        self.answer = answer
        self.idle_timeout = idle_timeout
        self.on_connection_end = on_connection_end
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout
        self.max_connections = max_connections
        self._open = 0
        self._open_lock = threading.Lock()
        super().__init__(address, _MllpConnection)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Take a connection slot; refuse (socketserver closes it) when none is free."""
        with self._open_lock:
            if self.max_connections and self._open >= self.max_connections:
                refused = True
            else:
                self._open += 1
                refused = False
        if refused:
            logger.warning(
                "MLLP connection from %s refused: %d connections open already",
                client_address[0],
                self.max_connections,
            )
        return not refused

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1

    @property
    def open_connections(self) -> int:
        return self._open

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, address = self.socket.accept()
        if self.ssl_context is None:
            return connection, address
        # The handshake waits for the connection's own thread: here, a peer
        # that connects and never says hello would hold up every other one.
        wrapped = self.ssl_context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _MllpConnection(socketserver.BaseRequestHandler):
    server: MllpServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        host, port = self.client_address[:2]
        peer = f"{host}:{port}"
        if isinstance(connection, ssl.SSLSocket) and not self._handshake(peer):
            self.server.on_connection_end()
            return
        connection.settimeout(self.server.idle_timeout)
        logger.info("MLLP connection from %s", peer)
        buffered = bytearray()
        try:
            while True:
                frame = _next_frame(connection, buffered)
                if frame is None:
                    break
                connection.sendall(START_BLOCK + self.server.answer(frame) + END_BLOCK)
        except (OSError, MllpError) as error:
            logger.warning("MLLP connection from %s ended: %s", peer, error)
        finally:
            self.server.on_connection_end()

    def _handshake(self, peer: str) -> bool:
        """The TLS handshake; False (logged as a security event) when it failed.

        A client certificate, when the context asks for one, is verified
        against the listener's CA bundle during the handshake.
        """
        connection: ssl.SSLSocket = self.request
        try:
            connection.settimeout(self.server.handshake_timeout)
            connection.do_handshake()
        except (OSError, ValueError) as error:
            security_logger.warning(
                "MLLP TLS handshake failed from %s: %s", peer, error
            )
            return False
        logger.debug("MLLP TLS %s from %s", connection.version(), peer)
        return True


def _next_frame(connection: socket.socket, buffered: bytearray) -> bytes | None:
    """The next framed message on the connection; None when the peer closed.

    Bytes before the start block (stray line feeds some senders write
    between frames) are skipped.
    """
    while END_BLOCK not in buffered:
        chunk = connection.recv(65536)
        if not chunk:
            if buffered.strip():
                raise MllpError("The peer closed the connection inside a message.")
            return None
        buffered.extend(chunk)
        if len(buffered) > MAX_MESSAGE_BYTES:
            raise MllpError("A message is longer than the listener accepts.")
    end = buffered.find(END_BLOCK)
    start = buffered.find(START_BLOCK, 0, end)
    frame = bytes(buffered[start + 1 : end]) if start != -1 else None
    del buffered[: end + len(END_BLOCK)]
    if frame is None:
        raise MllpError("A message was not framed with MLLP.")
    return frame
