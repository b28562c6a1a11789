"""Nothing the console shows names a patient or quotes a report."""

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from helpdesk.tests.conftest import CONSOLE, Events
from pacs.models import IngestFailure, Patient, Study
from reporting.models import DeliveryState, OutboundMessage, Report, ReportStatus

pytestmark = pytest.mark.django_db

PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-777"
ACCESSION = "ACC-555"
STUDY_UID = "1.2.826.0.1.3680043.8.498.4242"
REPORT_TEXT = "Spiculated mass in the right lower lobe"
AUDIT_TRAIL = "/helpdesk/audit/"
SECRETS = ("Doe", "Jane", PATIENT_ID, ACCESSION, STUDY_UID, "Spiculated")


@pytest.fixture
def clinical_data(ann_a: User, storage_dirs: object) -> None:
    with schema_context("hospital_a"):
        patient = Patient.objects.create(
            patient_id=PATIENT_ID, patient_name=PATIENT_NAME
        )
        study = Study.objects.create(
            study_instance_uid=STUDY_UID, patient=patient, accession_number=ACCESSION
        )
        report = Report.objects.create(
            study=study, text=REPORT_TEXT, status=ReportStatus.SIGNED
        )
        OutboundMessage.objects.create(
            report=report,
            message_control_id="NIM000123",
            payload=f"PID|||{PATIENT_ID}||{PATIENT_NAME}\rOBX|1|TX|||{REPORT_TEXT}",
            state=DeliveryState.REJECTED,
            ack_code="AE",
            # A RIS's refusal may quote the message it refuses.
            last_error=f"Unknown patient {PATIENT_NAME} {PATIENT_ID}",
            attempts=1,
        )
        OutboundMessage.objects.create(
            report=report,
            message_control_id="NIM000124",
            payload=f"PID|||{PATIENT_ID}||{PATIENT_NAME}",
            state=DeliveryState.RETRYING,
            last_error="Connection refused by 127.0.0.1:2575",
            attempts=3,
        )
        IngestFailure.objects.create(
            quarantine_path="/spool/hospital_a/quarantine/x.dcm",
            sop_instance_uid=STUDY_UID + ".1",
            error=f"Bad value {PATIENT_NAME!r} in PatientName",
            calling_ae_title="CT_SCANNER",
        )
        do_record_event(
            EventType.ACCESS_DENIED,
            actor=ann_a,
            outcome=Outcome.FAILURE,
            object_type="study",
            object_id=STUDY_UID,
            patient_id=PATIENT_ID,
            study_instance_uid=STUDY_UID,
            detail={"reason": "not yours", "text": REPORT_TEXT},
        )


def test_no_page_of_the_console_shows_patient_data_or_report_text(
    helpdesk_client: Client, ann_a: User, clinical_data: None
) -> None:
    pages = {
        "overview": helpdesk_client.get(CONSOLE),
        "search": helpdesk_client.get(CONSOLE, {"q": "smith"}),
        "tenant": helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/"),
        "user": helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/users/{ann_a.pk}/"),
    }

    for name, response in pages.items():
        assert response.status_code == 200, name
        content = response.content.decode()
        for secret in SECRETS:
            assert secret not in content, (name, secret)
        assert "no-store" in response["Cache-Control"]


def test_the_tenant_page_still_tells_what_went_wrong(
    helpdesk_client: Client, clinical_data: None
) -> None:
    content = helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/").content.decode()

    assert "NIM000123" in content and "NIM000124" in content
    assert "Refused by the RIS" in content
    assert "Connection refused by 127.0.0.1:2575" in content
    assert "CT_SCANNER" in content
    assert "uid#" in content


def test_the_console_says_that_only_the_audit_trail_page_shows_patient_data(
    helpdesk_client: Client,
) -> None:
    console = helpdesk_client.get(CONSOLE).content.decode()
    audit_page = helpdesk_client.get(AUDIT_TRAIL).content.decode()

    assert "never appear here" not in console
    assert "These console pages show no patient names, patient IDs" in console
    assert "audit trail page is different: it shows patient IDs" in console
    assert "This page shows patient IDs and Study Instance UIDs" in audit_page
    assert "Every search and export is itself recorded" in audit_page


def test_a_search_of_the_audit_trail_by_patient_is_itself_audited(
    helpdesk_client: Client, events: Events
) -> None:
    helpdesk_client.get(AUDIT_TRAIL, {"patient_id": PATIENT_ID})

    searches = events("public", EventType.AUDIT_SEARCHED)
    assert [(e.actor_username, e.patient_id) for e in searches] == [
        ("help.desk", PATIENT_ID)
    ]
