"""HL7 v2.5.1 ORU^R01 messages that carry a report to the tenant's RIS.

The message follows HL7 v2.5.1 chapter 7 (observation reporting), unsolicited
transmission of an observation (ORU^R01), with the encoding rules of chapter
2.6 and the escape sequences of chapter 2.7.

Segments written, in order:

``MSH``
    Encoding characters ``^~\\&``, processing ID ``P``, version ``2.5.1``,
    character set ``UNICODE UTF-8`` (MSH-18). The message control ID (MSH-10)
    is unique per message and kept by Nimbus, so a redelivery carries the same
    ID and the RIS can drop the duplicate.
``PID``
    Patient ID (PID-3, with the issuer as assigning authority), name (PID-5,
    from the DICOM PN), birth date (PID-7) and administrative sex (PID-8).
``OBR``
    The accession number as placer (OBR-2) and filler (OBR-3) order number,
    the study description as text of the universal service ID (OBR-4), the
    study date and time as observation date (OBR-7), the time of the status
    change (OBR-22), the result status (OBR-25: ``P`` preliminary, ``F``
    signed, ``C`` signed and corrected by an addendum) and the signing
    radiologist (OBR-32).
``OBX`` (value type ``ST``), set ID 1
    The Study Instance UID, coded ``110180^Study Instance UID^DCM`` (DICOM
    PS3.16 code for the attribute), so that the RIS can link the report to the
    images without relying on the accession number alone.
``OBX`` (value type ``TX``), set ID 2 onwards
    One segment per line of report text, observation identifier
    ``18782-3^Radiology Study observation (narrative)^LN``, sub-ID 1, with the
    result status in OBX-11. An empty line is sent as an empty OBX-5 so that
    the RIS can rebuild the paragraphs.

Line breaks: one OBX per line rather than one per section with ``\\.br\\``
(section 2.7.6) inside a FT value. Every RIS reads TX lines; formatting
escapes are often shown raw, and a line never needs one. A message with a
``C`` status carries the whole report (the signed text and every signed
addendum), because it replaces the ``F`` result at the RIS.
"""

import datetime
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.utils import timezone

FIELD_SEPARATOR = "|"
ENCODING_CHARACTERS = "^~\\&"
SEGMENT_TERMINATOR = "\r"
VERSION = "2.5.1"
CHARACTER_SET = "UNICODE UTF-8"

STUDY_INSTANCE_UID_CODE = ("110180", "Study Instance UID", "DCM")
REPORT_TEXT_CODE = ("18782-3", "Radiology Study observation (narrative)", "LN")

# HL7 v2.5.1 section 2.7.1: the escape character first, so that the escape
# sequences written for the other delimiters are not escaped again.
_ESCAPES = (
    ("\\", "\\E\\"),
    ("|", "\\F\\"),
    ("^", "\\S\\"),
    ("~", "\\R\\"),
    ("&", "\\T\\"),
)
# Segment and frame delimiters inside a value would end the segment or the
# MLLP frame early; other C0 controls have no meaning in a TX or ST value.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")

_SEX_CODES = {"M": "M", "F": "F", "O": "O"}


class ResultStatus:
    """HL7 table 0123 (OBR-25) and table 0085 (OBX-11), the codes Nimbus sends."""

    PRELIMINARY = "P"
    FINAL = "F"
    CORRECTED = "C"


@dataclass(frozen=True)
class OruContent:
    """What an ORU^R01 message says, in plain values taken from the archive."""

    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: datetime.date | None
    patient_sex: str
    accession_number: str
    study_instance_uid: str
    study_description: str
    study_date: datetime.date | None
    study_time: datetime.time | None
    report_text: str
    result_status: str
    status_changed_at: datetime.datetime
    interpreter_id: str = ""
    interpreter_family_name: str = ""
    interpreter_given_name: str = ""


@dataclass(frozen=True)
class Endpoints:
    """MSH-3 to MSH-6: who sends and who receives the message."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str


def escape(value: str) -> str:
    """Escape a value for one HL7 field, component or subcomponent.

    Parameters
    ----------
    value : str
        Text as a person wrote it. Line breaks and other control characters
        are replaced by a space: callers split multi-line text first.

    Returns
    -------
    str
        The value with ``\\``, ``|``, ``^``, ``~`` and ``&`` written as the
        escape sequences ``\\E\\``, ``\\F\\``, ``\\S\\``, ``\\R\\`` and
        ``\\T\\`` (HL7 v2.5.1 section 2.7.1). Characters beyond ASCII are
        kept as they are: MSH-18 declares UTF-8.
    """
    cleaned = _CONTROL_CHARACTERS.sub(" ", _LINE_BREAKS.sub(" ", value))
    for character, sequence in _ESCAPES:
        cleaned = cleaned.replace(character, sequence)
    return cleaned


def new_message_control_id() -> str:
    """A message control ID (MSH-10, at most 20 characters) unique across tenants."""
    return uuid.uuid4().hex[:20].upper()


def format_ts(moment: datetime.datetime) -> str:
    """A DTM value (HL7 v2.5.1 section 2.A.22) in local time with its offset."""
    return timezone.localtime(moment).strftime("%Y%m%d%H%M%S%z")


def build_oru_r01(content: OruContent, endpoints: Endpoints, control_id: str) -> str:
    """Build the ORU^R01 message for one report.

    Parameters
    ----------
    content : OruContent
        Patient, study and report values.
    endpoints : Endpoints
        Sending and receiving application and facility.
    control_id : str
        MSH-10; keep it with the message so that a resend reuses it.

    Returns
    -------
    str
        The message, segments separated by carriage returns (HL7 v2.5.1
        section 2.5.2), without MLLP framing.
    """
    segments = [
        _msh(endpoints, control_id, timezone.now()),
        _pid(content),
        _obr(content),
        _study_uid_obx(content),
        *_text_obx(content, first_set_id=2),
    ]
    return SEGMENT_TERMINATOR.join(segments) + SEGMENT_TERMINATOR


def split_report_lines(text: str) -> list[str]:
    """The report's lines as sent in OBX-5, trailing blank lines dropped."""
    lines = _LINE_BREAKS.split(text.rstrip())
    return lines if lines != [""] else []


def _segment(name: str, fields: Sequence[str]) -> str:
    return FIELD_SEPARATOR.join([name, *fields]).rstrip(FIELD_SEPARATOR)


def _components(*values: str) -> str:
    return "^".join(escape(value) for value in values).rstrip("^")


def _msh(endpoints: Endpoints, control_id: str, now: datetime.datetime) -> str:
    fields = [""] * 18  # MSH-2 .. MSH-19; MSH-1 is the separator itself
    fields[0] = ENCODING_CHARACTERS
    fields[1] = escape(endpoints.sending_application)
    fields[2] = escape(endpoints.sending_facility)
    fields[3] = escape(endpoints.receiving_application)
    fields[4] = escape(endpoints.receiving_facility)
    fields[5] = format_ts(now)
    fields[7] = "ORU^R01^ORU_R01"
    fields[8] = escape(control_id)
    fields[9] = "P"
    fields[10] = VERSION
    fields[16] = CHARACTER_SET
    return "MSH" + FIELD_SEPARATOR + FIELD_SEPARATOR.join(fields).rstrip("|")


def _pid(content: OruContent) -> str:
    fields = [""] * 8  # PID-1 .. PID-8
    fields[0] = "1"
    fields[2] = _patient_identifier(content)
    fields[4] = _patient_name(content.patient_name)
    fields[6] = _date(content.patient_birth_date)
    fields[7] = _SEX_CODES.get(content.patient_sex.strip().upper(), "U")
    return _segment("PID", fields)


def _patient_identifier(content: OruContent) -> str:
    """PID-3 as CX: ID^^^assigning authority."""
    if not content.issuer_of_patient_id:
        return escape(content.patient_id)
    return f"{escape(content.patient_id)}^^^{escape(content.issuer_of_patient_id)}"


def _patient_name(dicom_name: str) -> str:
    """PID-5 as XPN from a DICOM PN (PS3.5 6.2: family^given^middle^prefix^suffix).

    Only the alphabetic group (before the first ``=``) is sent. XPN puts the
    suffix (XPN-4) before the prefix (XPN-5), unlike DICOM.
    """
    alphabetic = dicom_name.split("=", 1)[0]
    parts = (alphabetic.split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = (part.strip() for part in parts)
    return _components(family, given, middle, suffix, prefix)


def _obr(content: OruContent) -> str:
    fields = [""] * 32  # OBR-1 .. OBR-32
    fields[0] = "1"
    fields[1] = escape(content.accession_number)
    fields[2] = escape(content.accession_number)
    fields[3] = _components("", content.study_description)
    fields[6] = _study_datetime(content)
    fields[21] = format_ts(content.status_changed_at)
    fields[24] = content.result_status
    fields[31] = _interpreter(content)
    return _segment("OBR", fields)


def _interpreter(content: OruContent) -> str:
    """OBR-32 as NDL whose first component is a CNN, written as subcomponents."""
    if not content.interpreter_id:
        return ""
    values = (
        content.interpreter_id,
        content.interpreter_family_name,
        content.interpreter_given_name,
    )
    return "&".join(escape(value) for value in values).rstrip("&")


def _study_uid_obx(content: OruContent) -> str:
    return _obx(
        set_id=1,
        value_type="ST",
        code=STUDY_INSTANCE_UID_CODE,
        value=escape(content.study_instance_uid),
        content=content,
    )


def _text_obx(content: OruContent, first_set_id: int) -> Iterable[str]:
    for offset, line in enumerate(split_report_lines(content.report_text)):
        yield _obx(
            set_id=first_set_id + offset,
            value_type="TX",
            code=REPORT_TEXT_CODE,
            value=escape(line),
            content=content,
        )


def _obx(
    *,
    set_id: int,
    value_type: str,
    code: tuple[str, str, str],
    value: str,
    content: OruContent,
) -> str:
    fields = [""] * 14  # OBX-1 .. OBX-14
    fields[0] = str(set_id)
    fields[1] = value_type
    fields[2] = _components(*code)
    fields[3] = "1"
    fields[4] = value
    fields[10] = content.result_status
    fields[13] = format_ts(content.status_changed_at)
    # Keep OBX-5 and OBX-11 in place even when the value is empty.
    return FIELD_SEPARATOR.join(["OBX", *fields])


def _date(value: datetime.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def _study_datetime(content: OruContent) -> str:
    if content.study_date is None:
        return ""
    if content.study_time is None:
        return _date(content.study_date)
    return content.study_date.strftime("%Y%m%d") + content.study_time.strftime("%H%M%S")
