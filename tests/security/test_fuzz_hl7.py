"""Fuzzing the HL7 v2 code: escaping both ways, and the order listener's edge.

Escaping is checked against python-hl7's reading (an independent parser):
any text Nimbus escapes reads back as that text. The order listener must
answer every frame with an ACK that a RIS can parse, AA, AE or AR, and the
internal-error code (207) only for a fault of Nimbus's own, never for
something a sender can put in a message. Budget: tests/support/fuzzing.py.
"""

import datetime
import re

import hl7 as python_hl7
import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from reporting.hl7 import (
    Endpoints,
    OruContent,
    ResultStatus,
    build_oru_r01,
    escape,
    split_report_lines,
)
from reporting.hl7_listener import answer_order_message
from tests.support.fuzzing import examples

CONTROL = re.compile(r"\r\n|\r|\n|[\x00-\x08\x0b-\x1f\x7f]")
# HL7's delimiters and escape sequences, and text around them.
HL7_TEXT = st.text(
    st.sampled_from("|^~\\&EFSRTHN.br X0A\r\n\x00\x1c\x0béü山 ") | st.characters(),
    max_size=40,
)


def as_sent(text: str) -> str:
    """What ``escape`` keeps of ``text``: control characters become spaces."""
    return CONTROL.sub(" ", text)


@examples(300)
@given(HL7_TEXT)
def test_any_escaped_text_reads_back_as_the_text_in_python_hl7(text):
    # A field before the segment's end: python-hl7 strips a message's end.
    message = python_hl7.parse(f"MSH|^~\\&|A\rZZZ|{escape(text)}|END\r")

    field = str(message.segment("ZZZ")(1))
    assert message.unescape(field) == as_sent(text)


def oru(report_text: str, patient_name: str, patient_id: str) -> str:
    now = timezone.now()
    content = OruContent(
        patient_id=patient_id,
        issuer_of_patient_id="",
        patient_name=patient_name,
        patient_birth_date=datetime.date(1970, 1, 1),
        patient_sex="F",
        accession_number="ACC1",
        study_instance_uid="1.2.3",
        study_description="CT",
        study_date=None,
        study_time=None,
        report_text=report_text,
        result_status=ResultStatus.FINAL,
        status_changed_at=now,
    )
    return build_oru_r01(content, Endpoints("NIMBUS", "h", "RIS", "R"), "C1")


@examples(150)
@given(report_text=HL7_TEXT, family=HL7_TEXT, patient_id=HL7_TEXT)
def test_an_oru_message_carries_every_report_line_and_name_unchanged(
    report_text, family, patient_id
):
    # One name component: DICOM's "^" and "=" would split it.
    family = re.sub(r"[\^=]", " ", family)
    message = python_hl7.parse(oru(report_text, family, patient_id))

    lines = [
        message.unescape(str(obx(5)))
        for obx in message.segments("OBX")
        if str(obx(1)) != "1"
    ]
    assert lines == [as_sent(line) for line in split_report_lines(report_text)]
    pid = message.segment("PID")
    assert message.unescape(str(pid(3))) == as_sent(patient_id)
    assert message.unescape(str(pid(5))) == as_sent(family.strip())


# --- The order listener ----------------------------------------------------------

SEGMENT_NAMES = st.sampled_from(["PV1", "IPC", "ZDS", "TQ1", "NTE", "MSH", "X"])
TIMESTAMP = st.from_regex(r"\A(\^\^\^)?[0-9]{4,14}([+-][0-9]{4})?\Z")
FIELD = (
    HL7_TEXT
    | TIMESTAMP
    | st.sampled_from(["", "NW", "CA", "19800203", "^^^^", "&&", "\\X0D\\"])
)


@st.composite
def order_messages(draw: st.DrawFn) -> bytes:
    """An ORM^O01 or OMI^O23 whose segments and fields are mostly random.

    PID, ORC and OBR are there most of the time, so that most messages get
    past the checks of their presence to the reading of each field.
    """
    # Mostly what Nimbus reads, so that most messages reach their fields.
    message_type = draw(st.sampled_from(["ORM^O01"] * 3 + ["OMI^O23", "ADT^A01", ""]))
    version = draw(st.sampled_from(["2.3", "2.4", "2.5.1", "2.5.1", "9"]))
    charset = draw(st.sampled_from(["", "", "UNICODE UTF-8", "8859/1", "ASCII", "?"]))
    msh = (
        f"MSH|^~\\&|RIS|RAD|NIMBUS|hospital_a|20240506080000||{message_type}"
        f"|C{draw(st.integers(0, 999))}|P|{version}||||||{charset}"
    )
    names = [name for name in ("PID", "ORC", "OBR") if draw(st.integers(0, 9))]
    names += draw(st.lists(SEGMENT_NAMES, max_size=3))
    segments = [msh]
    for name in draw(st.permutations(names)):
        # Long enough to reach the dates: PID-7, ORC-7, OBR-7, TQ1-7.
        fields = draw(st.lists(FIELD, min_size=8, max_size=30))
        segments.append("|".join([name, *fields]))
    separator = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    text = separator.join(segments) + separator
    encoding = "latin-1" if charset == "8859/1" and text.isascii() else "utf-8"
    return text.encode(encoding, "replace")


def ack_of(frame: bytes) -> python_hl7.Message:
    ack = answer_order_message(frame, tenant_schema="hospital_a")
    return python_hl7.parse(ack.decode("utf-8"))


def assert_a_refusal_or_acceptance_of_the_sender(ack: python_hl7.Message) -> None:
    msa = ack.segment("MSA")
    assert str(msa(1)) in ("AA", "AE", "AR")
    if str(msa(1)) != "AA":
        assert str(msa(3)), "a refusal says why"
        err = ack.segment("ERR")
        assert str(err(3)(1)(1)) != "207", f"an internal error: {msa(3)}"


@pytest.mark.django_db
@examples(60)
@given(frame=order_messages())
def test_the_order_listener_answers_any_order_message_with_aa_ae_or_ar(tenant_a, frame):
    assert_a_refusal_or_acceptance_of_the_sender(ack_of(frame))


@pytest.mark.django_db
@examples(150)
@given(
    frame=st.binary(max_size=200)
    | HL7_TEXT.map(lambda t: ("MSH" + t).encode("utf-8", "surrogatepass"))
)
def test_the_order_listener_answers_any_bytes_with_an_ack(tenant_a, frame):
    assert_a_refusal_or_acceptance_of_the_sender(ack_of(frame))
