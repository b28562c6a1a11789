import datetime

import hl7 as python_hl7

from reporting import hl7
from reporting.mllp import parse_acknowledgement

SIGNED_AT = datetime.datetime(2024, 5, 6, 10, 30, tzinfo=datetime.UTC)
ENDPOINTS = hl7.Endpoints("NIMBUS", "hospital_a", "RIS", "RADIOLOGY")


def content(**changes: object) -> hl7.OruContent:
    values: dict[str, object] = {
        "patient_id": "P|1^2",
        "issuer_of_patient_id": "HOSP&A",
        "patient_name": "Doe^Jane^Quinn^Dr^Jr",
        "patient_birth_date": datetime.date(1970, 1, 2),
        "patient_sex": "F",
        "accession_number": "ACC~7",
        "study_instance_uid": "1.2.840.113619.2.55.3",
        "study_description": "CT ABDOMEN & PELVIS",
        "study_date": datetime.date(2024, 5, 6),
        "study_time": datetime.time(8, 15, 0),
        "report_text": "Findings: cyst 1|2 cm ^ left\\right ~ & more.\n\nImpression: é ok",
        "result_status": hl7.ResultStatus.FINAL,
        "status_changed_at": SIGNED_AT,
        "interpreter_id": "rad.a",
        "interpreter_family_name": "House",
        "interpreter_given_name": "Greg",
    }
    values.update(changes)
    return hl7.OruContent(**values)  # type: ignore[arg-type]


def parsed(**changes: object) -> python_hl7.Message:
    return python_hl7.parse(hl7.build_oru_r01(content(**changes), ENDPOINTS, "CTRL1"))


def test_it_escapes_every_delimiter_with_its_escape_sequence() -> None:
    assert hl7.escape("a|b^c~d\\e&f") == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f"


def test_it_turns_line_breaks_and_control_characters_into_spaces() -> None:
    assert hl7.escape("a\rb\nc\x1cd\x0be") == "a b c d e"


def test_it_writes_an_msh_for_oru_r01_version_2_5_1_in_utf_8() -> None:
    msh = parsed().segment("MSH")

    assert str(msh(9)) == "ORU^R01^ORU_R01"
    assert str(msh(10)) == "CTRL1"
    assert str(msh(11)) == "P"
    assert str(msh(12)) == "2.5.1"
    assert str(msh(18)) == "UNICODE UTF-8"
    assert [str(msh(n)) for n in (3, 4, 5, 6)] == [
        "NIMBUS",
        "hospital_a",
        "RIS",
        "RADIOLOGY",
    ]


def test_it_makes_a_new_control_id_for_every_message() -> None:
    ids = {hl7.new_message_control_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(len(control_id) <= 20 for control_id in ids)


def test_it_carries_patient_id_and_name_components_in_pid() -> None:
    message = parsed()
    pid = message.segment("PID")

    assert message.unescape(str(pid(3)(1)(1))) == "P|1^2"
    assert message.unescape(str(pid(3)(1)(4))) == "HOSP&A"
    assert [str(pid(5)(1)(n)) for n in range(1, 6)] == [
        "Doe",
        "Jane",
        "Quinn",
        "Jr",
        "Dr",
    ]
    assert str(pid(7)) == "19700102"
    assert str(pid(8)) == "F"


def test_it_identifies_the_order_by_accession_number_in_obr() -> None:
    message = parsed()
    obr = message.segment("OBR")

    assert message.unescape(str(obr(2))) == "ACC~7"
    assert message.unescape(str(obr(3))) == "ACC~7"
    assert message.unescape(str(obr(4)(1)(2))) == "CT ABDOMEN & PELVIS"
    assert str(obr(7)) == "20240506081500"
    assert str(obr(25)) == "F"


def test_it_marks_a_preliminary_report_with_status_p() -> None:
    message = parsed(result_status=hl7.ResultStatus.PRELIMINARY)

    assert str(message.segment("OBR")(25)) == "P"
    assert {str(obx(11)) for obx in message.segments("OBX")} == {"P"}


def test_it_carries_the_study_instance_uid_in_the_first_obx() -> None:
    first = parsed().segments("OBX")[0]

    assert str(first(2)) == "ST"
    assert str(first(3)) == "110180^Study Instance UID^DCM"
    assert str(first(5)) == "1.2.840.113619.2.55.3"


def test_it_sends_one_tx_obx_per_report_line_unescaping_to_the_original() -> None:
    message = parsed()
    text_obx = message.segments("OBX")[1:]

    assert [str(obx(2)) for obx in text_obx] == ["TX", "TX", "TX"]
    assert [str(obx(1)) for obx in text_obx] == ["2", "3", "4"]
    assert [message.unescape(str(obx(5))) for obx in text_obx] == [
        "Findings: cyst 1|2 cm ^ left\\right ~ & more.",
        "",
        "Impression: é ok",
    ]
    assert {str(obx(11)) for obx in text_obx} == {"F"}


def test_it_reads_the_ris_error_text_from_a_refusing_ack() -> None:
    ack = parse_acknowledgement(
        "MSH|^~\\&|RIS||NIMBUS||20240101||ACK^R01^ACK|9|P|2.5.1\r"
        "MSA|AE|CTRL1|Unknown order \\F\\ ACC~7\r"
    )

    assert ack.code == "AE" and not ack.accepted
    assert ack.control_id == "CTRL1"
    assert ack.text == "Unknown order | ACC~7"


def test_it_falls_back_to_err_8_when_msa_3_is_empty() -> None:
    ack = parse_acknowledgement(
        "MSH|^~\\&|RIS||NIMBUS||20240101||ACK^R01^ACK|9|P|2.5.1\r"
        "MSA|AR|CTRL1\r"
        "ERR|||207^Application internal error^HL70357|E||||Patient unknown\r"
    )

    assert ack.code == "AR"
    assert ack.text == "Patient unknown"
