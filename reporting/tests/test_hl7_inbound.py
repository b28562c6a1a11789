"""Reading order messages and answering them, apart from the database."""

import datetime
import socket
import threading

import hl7 as python_hl7
import pytest

from reporting import hl7_inbound
from reporting.hl7_inbound import AckCode, ErrorCode, OrderRefused
from reporting.mllp import END_BLOCK, START_BLOCK, MllpServer, parse_acknowledgement

ORM = (
    "MSH|^~\\&|RIS|RAD|NIMBUS|hospital_a|20240506080000||ORM^O01|C9|P|2.4"
    "||||||{charset}\r"
    "PID|1||P-9^^^HOSP&1.2.3&ISO||Müller^Anna^^^Dr||19800203|F\r"
    "ORC|NW|PL-9|FL-9||SC||^^^20240506093000+0200\r"
    "OBR|1|PL-9|FL-9|^CT chest||||||||||||^Roe^Rita||ACC-9|RP-9|||||CT\r"
    "ZDS|1.2.3.4.5^NIMBUS^Application^DICOM\r"
)


def read(text: str) -> hl7_inbound.OrderContent:
    return hl7_inbound.read_order(hl7_inbound.parse_header(text))


def test_it_reads_an_orm_o01_as_ihe_scheduled_workflow_fills_it() -> None:
    order = read(ORM.format(charset="UNICODE UTF-8"))

    assert order.header.message_control_id == "C9"
    assert order.order_control == "NW" and not order.cancels
    assert (order.patient_id, order.issuer_of_patient_id) == ("P-9", "HOSP")
    assert order.patient_name == "Müller^Anna^^Dr"
    assert order.patient_birth_date == datetime.date(1980, 2, 3)
    assert order.accession_number == "ACC-9"
    assert order.requested_procedure_id == "RP-9"
    assert order.study_instance_uid == "1.2.3.4.5"
    assert order.study_description == "CT chest"
    assert order.referring_physician_name == "Roe^Rita"
    assert order.scheduled_at == datetime.datetime(
        2024, 5, 6, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    )


def test_it_decodes_the_character_set_that_msh_18_names() -> None:
    latin = ORM.format(charset="8859/1").encode("latin-1")

    order = read(hl7_inbound.decode(latin))

    assert order.patient_name.startswith("Müller")


def test_it_refuses_bytes_that_are_not_in_the_declared_character_set() -> None:
    latin = ORM.format(charset="UNICODE UTF-8").encode("latin-1")

    with pytest.raises(OrderRefused) as refused:
        hl7_inbound.decode(latin)

    assert refused.value.ack_code == AckCode.REJECT


def test_it_reads_segments_ended_by_line_feeds() -> None:
    order = read(ORM.format(charset="").replace("\r", "\r\n"))

    assert order.accession_number == "ACC-9"


def test_it_refuses_an_order_without_a_patient_id_with_ae_101() -> None:
    without = ORM.format(charset="").replace("P-9^^^HOSP&1.2.3&ISO", "")

    with pytest.raises(OrderRefused) as refused:
        read(without)

    assert refused.value.ack_code == AckCode.ERROR
    assert refused.value.error_code == ErrorCode.REQUIRED_FIELD_MISSING


def test_it_refuses_an_unsupported_version_with_ar_203() -> None:
    with pytest.raises(OrderRefused) as refused:
        read(ORM.format(charset="").replace("|2.4|", "|2.8|"))

    assert refused.value.ack_code == AckCode.REJECT
    assert refused.value.error_code == ErrorCode.UNSUPPORTED_VERSION


def test_its_ack_swaps_sender_and_receiver_and_escapes_the_reason() -> None:
    header = hl7_inbound.read_header(hl7_inbound.parse_header(ORM.format(charset="")))

    ack = hl7_inbound.build_ack(
        header,
        AckCode.ERROR,
        text="No order | ACC^9",
        error_code=ErrorCode.UNKNOWN_KEY,
    )

    parsed = python_hl7.parse(ack)
    msh = parsed.segment("MSH")
    assert [str(msh(n)) for n in (3, 4, 5, 6)] == [
        "NIMBUS",
        "hospital_a",
        "RIS",
        "RAD",
    ]
    assert str(msh(9)) == "ACK^O01^ACK" and str(msh(18)) == "UNICODE UTF-8"
    read_back = parse_acknowledgement(ack)
    assert (read_back.code, read_back.control_id) == ("AE", "C9")
    assert read_back.text == "No order | ACC^9"
    assert str(parsed.segment("ERR")(3)(1)(1)) == "204"


def test_the_listener_answers_each_message_of_a_connection_in_turn() -> None:
    seen: list[bytes] = []

    def answer(frame: bytes) -> bytes:
        seen.append(frame)
        return f"ACK {len(seen)}".encode()

    server = MllpServer(("127.0.0.1", 0), answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as peer:
            # Two frames in one write, the second split across two writes.
            peer.sendall(START_BLOCK + b"one" + END_BLOCK + b"\n" + START_BLOCK + b"tw")
            peer.sendall(b"o" + END_BLOCK)
            replies = b""
            while replies.count(END_BLOCK) < 2:
                replies += peer.recv(1024)
    finally:
        server.shutdown()
        server.server_close()

    assert seen == [b"one", b"two"]
    assert replies == (
        START_BLOCK + b"ACK 1" + END_BLOCK + START_BLOCK + b"ACK 2" + END_BLOCK
    )
