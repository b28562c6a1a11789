"""A minimal MLLP client: send one HL7 v2 message, read its acknowledgement.

MLLP (HL7 v2.5.1 appendix C, "Minimal Lower Layer Protocol") frames a message
as ``<VT> message <FS><CR>`` (0x0B ... 0x1C 0x0D) on a TCP stream. The
receiver answers with an ACK message in the same framing; its MSA segment
(HL7 v2.5.1 section 2.14.8) tells whether the message was accepted.
"""

import logging
import re
import socket
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
