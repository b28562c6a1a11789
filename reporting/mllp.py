"""MLLP: a client that sends one HL7 v2 message and reads its ACK,
and a threaded listener that answers each message it receives.

MLLP (HL7 v2.5.1 appendix C, "Minimal Lower Layer Protocol") frames a message
as ``<VT> message <FS><CR>`` (0x0B ... 0x1C 0x0D) on a TCP stream. The
receiver answers with an ACK message in the same framing; its MSA segment
(HL7 v2.5.1 section 2.14.8) tells whether the message was accepted.
"""

import logging
import re
import socket
import socketserver
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

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


def send_message(host: str, port: int, message: str, timeout: float) -> Acknowledgement:
    """Send ``message`` over MLLP and return the peer's acknowledgement.

    Parameters
    ----------
    host, port : str, int
        The RIS's MLLP listener.
    message : str
        One HL7 v2 message, segments ended by carriage returns. It is encoded
        as UTF-8, as its MSH-18 declares.
    timeout : float
        Seconds allowed for connecting, and for each read or write.

    Returns
    -------
    Acknowledgement
        The parsed MSA segment, accepted or refused.

    Raises
    ------
    MllpError
        The connection failed or closed before a complete ACK arrived.
    MalformedAcknowledgement
        The reply has no MSA segment or an unknown acknowledgement code.
    """
    frame = START_BLOCK + message.encode("utf-8") + END_BLOCK
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(frame)
            reply = _read_frame(connection)
    except TimeoutError as error:
        raise MllpError(f"No answer from {host}:{port} within {timeout} s.") from error
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise MllpError(f"{host}:{port}: {reason}.") from error
    logger.debug("MLLP reply of %d bytes from %s:%s", len(reply), host, port)
    return parse_acknowledgement(reply.decode("utf-8", errors="replace"))


def _read_frame(connection: socket.socket) -> bytes:
    received = bytearray()
    while END_BLOCK not in received:
        chunk = connection.recv(65536)
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
    ) -> None:
        self.answer = answer
        self.idle_timeout = idle_timeout
        self.on_connection_end = on_connection_end
        super().__init__(address, _MllpConnection)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _MllpConnection(socketserver.BaseRequestHandler):
    server: MllpServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        connection.settimeout(self.server.idle_timeout)
        host, port = self.client_address[:2]
        peer = f"{host}:{port}"
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
