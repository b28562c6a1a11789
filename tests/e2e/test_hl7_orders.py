"""End to end: the RIS orders a study over MLLP, the modality sends its image
with storescu, and the worklist shows one study, the ordered one, with the image.

The order goes to the stack's `run_hl7_listener` process (started the way
`make run` starts it) through python-hl7's MLLP client.
"""

import subprocess
from pathlib import Path

import hl7
import pydicom
import pytest
from hl7.client import MLLPClient
from pydicom.uid import generate_uid

from conftest import CT_SERIES
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

ACCESSION = "E2E-ORDER-1"
PATIENT_ID = "E2E-P-ORDER"


def order_message(schema: str) -> str:
    return (
        f"MSH|^~\\&|RIS|RADIOLOGY|NIMBUS|{schema}|20240506080000||OMI^O23^OMI_O23"
        "|E2E-ORD-1|P|2.5.1||||||UNICODE UTF-8\r"
        f"PID|1||{PATIENT_ID}||Wójcik^Łukasz||19750304|M\r"
        "ORC|NW|PL-E2E|FL-E2E\r"
        "TQ1|1||||||20240506093000\r"
        "OBR|1|PL-E2E|FL-E2E|CTABD^CT abdomen\r"
        f"IPC|{ACCESSION}|RP-E2E||SPS-E2E|CT\r"
    )


def studies_with_accession(stack: Stack) -> list[tuple[object, ...]]:
    return stack.sql(
        "SELECT t.study_instance_uid, t.number_of_study_related_instances, "
        "p.patient_name FROM pacs_study t JOIN pacs_patient p ON p.id = t.patient_id "
        "WHERE t.accession_number = %s",
        ACCESSION,
    )


def test_an_ordered_study_takes_the_image_that_storescu_sends_for_it(
    stack: Stack, tmp_path: Path
) -> None:
    with MLLPClient("127.0.0.1", stack.hl7_port, encoding="utf-8") as client:
        reply = client.send_message(order_message(stack.schema))
    ack = hl7.parse(reply.decode("utf-8").strip("\x0b\x1c\r"))
    assert str(ack.segment("MSA")(1)) == "AA"

    [(placeholder_uid, instances, name)] = studies_with_accession(stack)
    assert str(placeholder_uid).startswith("2.25.") and instances == 0
    assert name == "Wójcik^Łukasz"

    image = pydicom.dcmread(CT_SERIES / "1-030.dcm")
    image.StudyInstanceUID = generate_uid()
    image.SeriesInstanceUID = generate_uid()
    image.SOPInstanceUID = image.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    image.AccessionNumber = ACCESSION
    image.PatientID = PATIENT_ID
    path = tmp_path / "ordered.dcm"
    image.save_as(path)
    sent = subprocess.run(
        ["storescu", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)]
        + [str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr

    wait_for(
        lambda: (
            [row[:2] for row in studies_with_accession(stack)]
            == [(image.StudyInstanceUID, 1)]
        ),
        what="the image joined to the ordered study",
    )
    status, _body = stack.get(
        f"/api/studies/{image.StudyInstanceUID}/report", stack.token
    )
    assert status == 200
