"""Orders from the RIS over a real MLLP connection, and the images that join them."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hl7 as python_hl7
import pydicom
import pytest
from django.conf import settings
from django.test import Client
from hl7.client import MLLPClient

from audit.models import AuditEvent, EventType
from conftest import CT_SERIES
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import OrderStatus, ScheduledStudy, Study
from reporting.hl7_listener import answer_order_message
from reporting.mllp import MllpServer
from reporting.tests.conftest import free_port
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

ORM = (
    "MSH|^~\\&|RIS|RADIOLOGY|NIMBUS|hospital_a|20240506080000||ORM^O01|ORD1|P|2.5.1"
    "||||||UNICODE UTF-8\r"
    "PID|1||P-77^^^HOSP||Müller^Åsa^Łukasz||19800203|F\r"
    "ORC|NW|PL-1|FL-1||SC||^^^20240506093000\r"
    "OBR|1|PL-1|FL-1|CTABD^CT abdomen \\T\\ pelvis||||||||||||^Doe^John"
    "||ACC-900|RP-1|||||CT\r"
)
OMI = (
    "MSH|^~\\&|RIS|RADIOLOGY|NIMBUS|HOSPITAL_A|20240506080000||OMI^O23^OMI_O23|"
    "ORD2|P|2.5.1||||||UNICODE UTF-8\r"
    "PID|1||P-78||Roe^Richard||19700101|M\r"
    "ORC|NW|PL-2|FL-2\r"
    "TQ1|1||||||20240507101500\r"
    "OBR|1|PL-2|FL-2|MRHEAD^MR head\r"
    "IPC|ACC-901|RP-2|1.2.826.0.1.3680043.8.498.901|SPS-1|MR\r"
)


class InlineMllpServer(MllpServer):
    """Answers in the test's thread, so orders land in the test's transaction."""

    def process_request(self, request: object, client_address: object) -> None:
        self.finish_request(request, client_address)  # type: ignore[arg-type]
        self.shutdown_request(request)  # type: ignore[arg-type]


def send_over_mllp(message: str) -> python_hl7.Message:
    """Send one message to a listener on this thread, with python-hl7's client."""
    server = InlineMllpServer(("127.0.0.1", 0), answer_order_message)
    replies: list[str] = []

    def client() -> None:
        with MLLPClient("127.0.0.1", server.port, encoding="utf-8") as mllp:
            replies.append(mllp.send_message(message).decode("utf-8"))

    sender = threading.Thread(target=client)
    sender.start()
    server.handle_request()
    sender.join(10)
    server.server_close()
    return python_hl7.parse(replies[0].strip("\x0b\x1c\r"))


def ack_code(ack: python_hl7.Message) -> str:
    return str(ack.segment("MSA")(1))


def spool_image_with(accession_number: str, patient_id: str) -> Path:
    ds = pydicom.dcmread(CT_SERIES / "1-030.dcm")
    ds.AccessionNumber = accession_number
    ds.PatientID = patient_id
    path = spool.spool_dir("hospital_a") / "ordered.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def test_an_orm_o01_schedules_a_study_with_its_accession_number_and_patient(
    tenant_a: Tenant,
) -> None:
    ack = send_over_mllp(ORM)

    assert ack_code(ack) == "AA"
    assert str(ack.segment("MSA")(2)) == "ORD1"
    study = Study.objects.select_related("patient").get(accession_number="ACC-900")
    assert study.patient.patient_id == "P-77"
    assert study.patient.issuer_of_patient_id == "HOSP"
    assert study.patient.patient_name == "Müller^Åsa^Łukasz"
    assert study.study_description == "CT abdomen & pelvis"
    assert study.referring_physician_name == "Doe^John"
    assert study.study_instance_uid.startswith("2.25.")
    order = ScheduledStudy.objects.get(study=study)
    assert order.status == OrderStatus.SCHEDULED
    assert (order.placer_order_number, order.filler_order_number) == ("PL-1", "FL-1")
    assert order.requested_procedure_id == "RP-1" and order.modality == "CT"
    assert AuditEvent.objects.filter(event_type=EventType.ORDER_RECEIVED).count() == 1


def test_an_omi_o23_schedules_the_study_under_the_uid_of_its_ipc_segment(
    tenant_a: Tenant,
) -> None:
    ack = send_over_mllp(OMI)

    assert ack_code(ack) == "AA"
    study = Study.objects.get(accession_number="ACC-901")
    assert study.study_instance_uid == "1.2.826.0.1.3680043.8.498.901"
    assert study.modalities_in_study == "MR"
    assert str(study.study_date) == "2024-05-07"
    assert ScheduledStudy.objects.get(study=study).uid_from_order


def test_images_with_the_orders_accession_number_join_the_ordered_study(
    tenant_a: Tenant, storage_dirs: Path
) -> None:
    send_over_mllp(ORM)
    ordered = Study.objects.get(accession_number="ACC-900")

    result = do_ingest_spooled_file(spool_image_with("ACC-900", "P-77"), "MODALITY")

    assert result is not None
    [study] = Study.objects.all()
    assert study.pk == ordered.pk
    assert study.study_instance_uid == result.study_instance_uid
    assert study.number_of_study_related_instances == 1
    assert ScheduledStudy.objects.get().status == OrderStatus.IMAGES_RECEIVED


def test_the_worklist_shows_the_order_before_and_one_study_after_its_images(
    tenant_a: Tenant, storage_dirs: Path, client_a: Client
) -> None:
    send_over_mllp(ORM)
    before = client_a.get("/").content.decode()

    do_ingest_spooled_file(spool_image_with("ACC-900", "P-77"), "MODALITY")
    after = client_a.get("/").content.decode()

    assert before.count("ACC-900") == 1
    assert after.count("ACC-900") == 1
    assert Study.objects.get().number_of_study_related_instances == 1


def test_images_of_another_patient_do_not_join_the_order(
    tenant_a: Tenant, storage_dirs: Path
) -> None:
    send_over_mllp(ORM)

    do_ingest_spooled_file(spool_image_with("ACC-900", "SOMEONE-ELSE"), "MODALITY")

    assert Study.objects.count() == 2
    assert ScheduledStudy.objects.get().status == OrderStatus.SCHEDULED


def test_an_order_for_images_already_received_joins_their_study(
    tenant_a: Tenant, storage_dirs: Path
) -> None:
    do_ingest_spooled_file(spool_image_with("ACC-900", "P-77"), "MODALITY")

    assert ack_code(send_over_mllp(ORM)) == "AA"

    [study] = Study.objects.all()
    assert ScheduledStudy.objects.get().study == study
    assert ScheduledStudy.objects.get().status == OrderStatus.IMAGES_RECEIVED


def test_a_second_message_of_the_same_order_updates_it_instead_of_adding_one(
    tenant_a: Tenant,
) -> None:
    send_over_mllp(ORM)

    changed = ORM.replace("ORC|NW", "ORC|XO").replace("CT abdomen", "CT chest")
    assert ack_code(send_over_mllp(changed)) == "AA"

    [study] = Study.objects.all()
    assert study.study_description == "CT chest & pelvis"


def test_a_cancelled_order_without_images_leaves_the_worklist(
    tenant_a: Tenant,
) -> None:
    send_over_mllp(ORM)

    assert ack_code(send_over_mllp(ORM.replace("ORC|NW", "ORC|CA"))) == "AA"

    assert not Study.objects.exists()


def test_it_answers_ae_with_the_reason_when_the_order_has_no_accession_number(
    tenant_a: Tenant,
) -> None:
    without = OMI.replace("IPC|ACC-901", "IPC|").replace("FL-2", "")

    ack = send_over_mllp(without)

    assert ack_code(ack) == "AE"
    assert "accession number" in ack.unescape(str(ack.segment("MSA")(3)))
    assert str(ack.segment("ERR")(3)(1)(1)) == "101"
    assert not Study.objects.exists()


def test_it_answers_ar_to_a_message_for_a_facility_that_is_no_tenant(
    tenant_a: Tenant,
) -> None:
    ack = send_over_mllp(ORM.replace("|hospital_a|", "|ELSEWHERE|"))

    assert ack_code(ack) == "AR"
    assert "ELSEWHERE" in str(ack.segment("MSA")(3))
    assert not Study.objects.exists()


def test_it_answers_ar_to_a_message_type_it_does_not_read(tenant_a: Tenant) -> None:
    ack = send_over_mllp(ORM.replace("ORM^O01", "ADT^A01"))

    assert ack_code(ack) == "AR"
    assert str(ack.segment("ERR")(3)(1)(1)) == "200"


@contextmanager
def running_listener_command(**env: str) -> Iterator[tuple[int, str]]:
    """``manage.py run_hl7_listener`` on a free port: the port and its first line."""
    port = free_port()
    database = settings.DATABASES["default"]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_hl7_listener"],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": f"postgresql://{database['USER']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}",
            "NIMBUS_HL7_PORT": str(port),
            **env,
        },
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        yield port, process.stdout.readline()
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def listener_command() -> Iterator[int]:
    with running_listener_command() as (port, first_line):
        assert "HL7 listener on 127.0.0.1" in first_line
        yield port


def test_the_run_hl7_listener_command_answers_over_mllp(
    tenant_a: Tenant, listener_command: int
) -> None:
    # A facility that is no tenant: the command answers without writing.
    with MLLPClient("127.0.0.1", listener_command, encoding="utf-8") as mllp:
        reply = mllp.send_message(ORM.replace("|hospital_a|", "|NOWHERE|"))

    ack = python_hl7.parse(reply.decode("utf-8").strip("\x0b\x1c\r"))
    assert ack_code(ack) == "AR"
    assert str(ack.segment("MSA")(2)) == "ORD1"
