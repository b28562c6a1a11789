"""Orders from the RIS: HL7 v2 ORM^O01 and OMI^O23 read, ACK messages written.

Nimbus accepts the two order messages that RIS systems send to a PACS:

``ORM^O01`` (HL7 v2.3 to v2.5.1 chapter 4.4.1, as IHE Scheduled Workflow
uses it)
    Accession number in OBR-18 (placer field 1), else the filler order
    number (OBR-3, then ORC-3); requested procedure ID in OBR-19; modality
    in OBR-24; Study Instance UID, when the RIS assigns one, in ZDS-1.
``OMI^O23`` (HL7 v2.5.1 chapter 4.4.11)
    Accession number in IPC-1, requested procedure ID in IPC-2, Study
    Instance UID in IPC-3 and modality in IPC-5 of the first IPC segment;
    the OBR fields above are read when IPC leaves them empty.

Both: patient in PID-3 (ID and assigning authority), PID-5, PID-7, PID-8;
order control in ORC-1 (``NW``, ``XO``, ``SC`` schedule or update the order,
``CA``, ``DC``, ``OC`` cancel it); placer and filler order numbers in ORC-2
and ORC-3 (OBR-2, OBR-3 when empty); procedure text in OBR-4 component 2;
scheduled time in TQ1-7, else OBR-27 component 4, else OBR-7; referring
physician in OBR-16 (else ORC-12); priority in TQ1-9, else OBR-27 or ORC-7
component 6.

Every message gets an original-mode acknowledgement (HL7 v2.5.1 section
2.9.2): ``AA`` accepted, ``AE`` refused for its content (a required field
missing), ``AR`` refused as a message (wrong type, version or tenant). A
refusal carries an ERR segment with the HL7 table 0357 code and a text in
ERR-8 and MSA-3.
"""

import datetime
import re
from dataclasses import dataclass
from enum import StrEnum

import hl7 as python_hl7
from django.utils import timezone

from reporting.hl7 import CHARACTER_SET, escape, format_ts, new_message_control_id

SUPPORTED_MESSAGES = frozenset({"ORM^O01", "OMI^O23"})
# 2.3 to 2.5.1: these fields have not moved in that range.
SUPPORTED_VERSIONS = frozenset({"2.3", "2.3.1", "2.4", "2.5", "2.5.1"})
NEW_ORDER_CONTROLS = frozenset({"NW", "XO", "SC", ""})
CANCEL_ORDER_CONTROLS = frozenset({"CA", "DC", "OC"})

# MSH-18 values (HL7 table 0211) that Nimbus decodes; none means ASCII,
# which UTF-8 reads as well.
_CHARACTER_SETS = {
    "": "utf-8",
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
}
_TIMESTAMP = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?")


class AckCode(StrEnum):
    """HL7 table 0008, original mode."""

    ACCEPT = "AA"
    ERROR = "AE"
    REJECT = "AR"


class ErrorCode(StrEnum):
    """HL7 table 0357, the codes Nimbus answers with in ERR-3."""

    REQUIRED_FIELD_MISSING = "101"
    UNSUPPORTED_MESSAGE_TYPE = "200"
    UNSUPPORTED_VERSION = "203"
    UNKNOWN_KEY = "204"
    INTERNAL_ERROR = "207"


_ERROR_NAMES = {
    ErrorCode.REQUIRED_FIELD_MISSING: "Required field missing",
    ErrorCode.UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    ErrorCode.UNSUPPORTED_VERSION: "Unsupported version id",
    ErrorCode.UNKNOWN_KEY: "Unknown key identifier",
    ErrorCode.INTERNAL_ERROR: "Application internal error",
}


class OrderRefused(Exception):
    """The message cannot be applied; the ACK says why."""

    def __init__(self, ack_code: AckCode, error_code: ErrorCode, text: str) -> None:
        super().__init__(text)
        self.ack_code = ack_code
        self.error_code = error_code
        self.text = text


@dataclass(frozen=True)
class MessageHeader:
    """The MSH fields an acknowledgement echoes back."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    trigger_event: str
    message_control_id: str
    processing_id: str
    version: str


@dataclass(frozen=True)
class OrderContent:
    """One order as Nimbus keeps it, from an ORM^O01 or OMI^O23."""

    header: MessageHeader
    order_control: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str  # as a DICOM PN: family^given^middle^prefix^suffix
    patient_birth_date: datetime.date | None
    patient_sex: str
    placer_order_number: str
    filler_order_number: str
    accession_number: str
    requested_procedure_id: str
    study_instance_uid: str
    study_description: str
    modality: str
    scheduled_at: datetime.datetime | None
    referring_physician_name: str
    # TQ1-9, else OBR-27.6, else ORC-7.6 (table 0485: S, A, R...); reading/ maps it.
    priority: str = ""

    @property
    def cancels(self) -> bool:
        return self.order_control in CANCEL_ORDER_CONTROLS


def decode(frame: bytes) -> str:
    """Decode a message in the character set its MSH-18 names (UTF-8 if none).

    Raises
    ------
    OrderRefused
        ``AR`` when MSH-18 names a character set Nimbus does not read, or the
        bytes are not in the one it names.
    """
    # Segments may end in LF too (parse_header reads them): MSH-18 must not
    # run on into the next segment.
    first_segment = re.split(rb"\r|\n", frame, maxsplit=1)[0].decode("latin-1")
    fields = first_segment.split(first_segment[3:4] or "|")
    declared = fields[17].split("~")[0].strip().upper() if len(fields) > 17 else ""
    codec = _CHARACTER_SETS.get(declared)
    if codec is None:
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"Unsupported character set {declared[:20]!r} in MSH-18.",
        )
    try:
        return frame.decode(codec)
    except UnicodeDecodeError as error:
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"The message is not valid {declared or 'UTF-8'}.",
        ) from error


def parse_header(text: str) -> python_hl7.Message:
    """Parse a message with python-hl7; segments may end in CR, LF or CRLF.

    Raises
    ------
    OrderRefused
        ``AR`` when the text is not an HL7 v2 message.
    """
    normalised = "\r".join(s for s in re.split(r"\r\n|\r|\n", text) if s)
    if not normalised.startswith("MSH") or len(normalised) < 8:
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "The message does not start with an MSH segment.",
        )
    if "\x00" in normalised:
        # HL7 has no use for NUL, and PostgreSQL cannot store it.
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "The message contains a NUL character.",
        )
    try:
        return python_hl7.parse(normalised)
    except Exception as error:  # python-hl7 raises several types on bad input
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            "The message cannot be parsed as HL7 v2.",
        ) from error


def read_header(message: python_hl7.Message) -> MessageHeader:
    """MSH-3 to MSH-12 of a parsed message, unescaped."""
    msh = message.segment("MSH")
    return MessageHeader(
        sending_application=_value(message, msh, 3),
        sending_facility=_value(message, msh, 4),
        receiving_application=_value(message, msh, 5),
        receiving_facility=_value(message, msh, 6),
        message_type=_value(message, msh, 9, 1),
        trigger_event=_value(message, msh, 9, 2),
        message_control_id=_value(message, msh, 10),
        processing_id=_value(message, msh, 11, 1),
        version=_value(message, msh, 12, 1),
    )


def read_order(message: python_hl7.Message) -> OrderContent:
    """Read the order of an ORM^O01 or OMI^O23 message.

    Raises
    ------
    OrderRefused
        ``AR`` for another message type or version; ``AE`` when the patient
        ID, the accession number or the ORC/OBR segments are missing.
    """
    header = read_header(message)
    kind = f"{header.message_type}^{header.trigger_event}"
    if kind not in SUPPORTED_MESSAGES:
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_MESSAGE_TYPE,
            f"Nimbus accepts ORM^O01 and OMI^O23, not {kind[:20]}.",
        )
    if header.version not in SUPPORTED_VERSIONS:
        raise OrderRefused(
            AckCode.REJECT,
            ErrorCode.UNSUPPORTED_VERSION,
            f"HL7 version {header.version[:10]!r} is not supported.",
        )

    pid = _required_segment(message, "PID")
    orc = _required_segment(message, "ORC")
    obr = _required_segment(message, "OBR")
    ipc = _optional_segment(message, "IPC")
    zds = _optional_segment(message, "ZDS")
    tq1 = _optional_segment(message, "TQ1")

    def first(*candidates: tuple[object, int, int]) -> str:
        for segment, field, component in candidates:
            value = _value(message, segment, field, component)
            if value:
                return value
        return ""

    accession_number = first((ipc, 1, 1), (obr, 18, 1), (obr, 3, 1), (orc, 3, 1))
    patient_id = _value(message, pid, 3, 1)
    if not patient_id:
        raise _missing("PID-3 (patient ID)")
    if not accession_number:
        raise _missing("the accession number (IPC-1, OBR-18 or OBR-3)")

    return OrderContent(
        header=header,
        order_control=_value(message, orc, 1).upper(),
        patient_id=patient_id[:64],
        issuer_of_patient_id=_value(message, pid, 3, 4)[:64],
        patient_name=_person_name(message, pid, 5),
        patient_birth_date=_date(_value(message, pid, 7, 1)),
        patient_sex=_value(message, pid, 8)[:16],
        placer_order_number=first((orc, 2, 1), (obr, 2, 1))[:64],
        filler_order_number=first((orc, 3, 1), (obr, 3, 1))[:64],
        accession_number=accession_number[:64],
        requested_procedure_id=first((ipc, 2, 1), (obr, 19, 1))[:64],
        study_instance_uid=first((ipc, 3, 1), (zds, 1, 1))[:64],
        study_description=first((obr, 4, 2), (obr, 4, 1))[:200],
        modality=first((ipc, 5, 1), (obr, 24, 1))[:16],
        scheduled_at=_timestamp(
            first((tq1, 7, 1), (obr, 27, 4), (orc, 7, 4), (obr, 7, 1))
        ),
        referring_physician_name=_referrer(message, obr, orc),
        priority=first((tq1, 9, 1), (obr, 27, 6), (orc, 7, 6))[:8],
    )


def build_ack(
    header: MessageHeader | None,
    code: AckCode,
    *,
    text: str = "",
    error_code: ErrorCode | None = None,
) -> str:
    """Build the original-mode ACK (HL7 v2.5.1 section 2.14.1) to a message.

    Parameters
    ----------
    header : MessageHeader or None
        The received message's header; None when it could not be read, in
        which case MSA-2 is empty.
    code : AckCode
        MSA-1.
    text : str
        The reason of a refusal, in MSA-3 and ERR-8.
    error_code : ErrorCode, optional
        ERR-3, from HL7 table 0357.

    Returns
    -------
    str
        The ACK, segments ended by carriage returns, MSH-18 ``UNICODE UTF-8``.
    """
    header = header or MessageHeader("", "", "", "", "", "", "", "P", "2.5.1")
    trigger = escape(header.trigger_event)
    msh = [
        "^~\\&",
        escape(header.receiving_application or "NIMBUS"),
        escape(header.receiving_facility),
        escape(header.sending_application),
        escape(header.sending_facility),
        format_ts(timezone.now()),
        "",
        f"ACK^{trigger}^ACK" if trigger else "ACK",
        new_message_control_id(),
        escape(header.processing_id or "P"),
        escape(header.version or "2.5.1"),
        "",
        "",
        "",
        "",
        "",
        CHARACTER_SET,
    ]
    segments = [
        "MSH|" + "|".join(msh),
        "|".join(["MSA", code, escape(header.message_control_id), escape(text)]),
    ]
    if error_code is not None:
        error = f"{error_code}^{_ERROR_NAMES[error_code]}^HL70357"
        segments.append("|".join(["ERR", "", "", error, "E", "", "", "", escape(text)]))
    return "\r".join(segment.rstrip("|") for segment in segments) + "\r"


def _missing(what: str) -> OrderRefused:
    return OrderRefused(
        AckCode.ERROR,
        ErrorCode.REQUIRED_FIELD_MISSING,
        f"The order has no {what}.",
    )


def _required_segment(message: python_hl7.Message, name: str) -> object:
    segment = _optional_segment(message, name)
    if segment is None:
        raise _missing(f"{name} segment")
    return segment


def _optional_segment(message: python_hl7.Message, name: str) -> object | None:
    try:
        return message.segment(name)
    except KeyError:
        return None


def _value(
    message: python_hl7.Message,
    segment: object,
    field: int,
    component: int | None = None,
) -> str:
    """One field (its first repetition) or component, unescaped, "" if absent."""
    if segment is None:
        return ""
    try:
        repetition = segment(field)(1)  # type: ignore[operator]
        if isinstance(repetition, str):
            value = repetition if component in (None, 1) else ""
        elif component is None:
            value = str(repetition)
        else:
            part = repetition(component)
            # A component with subcomponents (CX-4 as HD, XPN-1 as FN): the
            # first one, the namespace ID or the surname.
            value = part if isinstance(part, str) else str(part(1))
    except IndexError:
        return ""
    return str(message.unescape(value)).strip()


def _person_name(message: python_hl7.Message, segment: object, field: int) -> str:
    """An XPN as a DICOM PN; XPN puts the suffix (4) before the prefix (5)."""
    family, given, middle, suffix, prefix = (
        _value(message, segment, field, n).replace("^", " ") for n in range(1, 6)
    )
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")[:324]


def _referrer(message: python_hl7.Message, obr: object, orc: object) -> str:
    """OBR-16 (else ORC-12) as XCN: ID^family^given^middle^suffix^prefix."""
    for segment, field in ((obr, 16), (orc, 12)):
        family, given, middle, suffix, prefix = (
            _value(message, segment, field, n).replace("^", " ") for n in range(2, 7)
        )
        if family or given:
            return "^".join([family, given, middle, prefix, suffix]).rstrip("^")[:324]
    return ""


def _date(value: str) -> datetime.date | None:
    try:
        return datetime.datetime.strptime(value[:8], "%Y%m%d").date()  # noqa: DTZ007
    except ValueError:
        return None


def _timestamp(value: str) -> datetime.datetime | None:
    """A DTM (HL7 v2.5.1 section 2.A.22) in the server's time zone when it has none."""
    match = _TIMESTAMP.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (
        int(p or d)
        for p, d in zip(match.groups(), ("0", "1", "1", "0", "0", "0"), strict=True)
    )
    try:
        naive = datetime.datetime(year, month, day, hour, minute, second)  # noqa: DTZ001
    except ValueError:
        return None
    offset = re.search(r"([+-])(\d{2})(\d{2})$", value)
    if offset is None:
        return timezone.make_aware(naive)
    sign = 1 if offset.group(1) == "+" else -1
    delta = datetime.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3)))
    if delta >= datetime.timedelta(hours=24):
        return None  # no such offset; datetime.timezone would raise
    return naive.replace(tzinfo=datetime.timezone(sign * delta))
