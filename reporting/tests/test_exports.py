"""The issued report as PDF and as a FHIR R4 DiagnosticReport."""

import base64
import json

import pytest
from django.test import Client

from accounts.models import User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from conftest import current_totp
from pacs.models import Patient, Study
from reporting.actions import (
    do_issue_preliminary_report,
    do_save_addendum,
    do_save_report_draft,
    do_sign_addendum,
    do_sign_report,
)
from reporting.exports import report_html
from reporting.models import Report
from reporting.tests.test_workflow import next_totp
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

TEXT = "Findings: cyst 1|2 cm & more.\n\nImpression: no change, Müller."


def url(study: Study, suffix: str) -> str:
    return f"/api/studies/{study.study_instance_uid}/report{suffix}"


@pytest.fixture
def signed(tenant_a: Tenant, radiologist: User, study: Study) -> Study:
    Patient.objects.filter(pk=study.patient_id).update(patient_name="Müller^Åsa^Łukasz")
    do_save_report_draft(radiologist, study, TEXT)
    do_sign_report(radiologist, study, current_totp())
    return study


@pytest.fixture
def client_a(client_a: Client, tenant_a: Tenant) -> Client:
    # Exports by a person need a fresh one-time password (accounts/reauth.py).
    return mark_reauthenticated(client_a, tenant_a)


def fhir(client: Client, study: Study) -> dict[str, object]:
    response = client.get(url(study, "/fhir"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    return json.loads(response.content)  # type: ignore[no-any-return]


def test_the_signed_report_is_a_pdf_with_its_text(
    signed: Study, client_a: Client
) -> None:
    response = client_a.get(url(signed, ".pdf"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"]
    assert response.content.startswith(b"%PDF-")
    assert len(response.content) > 2000
    event = AuditEvent.objects.get(
        event_type=EventType.REPORT_READ, detail__via="application/pdf"
    )
    assert event.study_instance_uid == signed.study_instance_uid


def test_the_pdf_is_made_from_the_report_text_and_non_ascii_names(
    signed: Study,
) -> None:
    html = report_html(Report.objects.get(study=signed))

    assert "Müller, Åsa Łukasz" in html
    assert "Findings: cyst 1|2 cm &amp; more." in html
    assert "Final report" in html and "ACC-2024-001" in html


def test_the_signed_report_is_a_final_fhir_diagnostic_report(
    signed: Study, client_a: Client
) -> None:
    resource = fhir(client_a, signed)

    assert resource["resourceType"] == "DiagnosticReport"
    assert resource["status"] == "final"
    assert resource["code"]["coding"][0]["code"] == "18782-3"  # type: ignore[index]
    assert resource["identifier"][0]["value"] == "ACC-2024-001"  # type: ignore[index]
    assert resource["subject"]["display"] == "Müller, Åsa Łukasz"  # type: ignore[index]
    assert resource["imagingStudy"][0]["identifier"]["value"] == (  # type: ignore[index]
        f"urn:oid:{signed.study_instance_uid}"
    )
    data = resource["presentedForm"][0]["data"]  # type: ignore[index]
    assert base64.b64decode(data).decode("utf-8") == TEXT
    assert resource["resultsInterpreter"][0]["identifier"]["value"] == "rad.a"  # type: ignore[index]
    assert AuditEvent.objects.filter(
        event_type=EventType.REPORT_READ, detail__via="application/fhir+json"
    ).exists()


def test_a_report_with_a_signed_addendum_is_appended_in_fhir(
    signed: Study, radiologist: User, client_a: Client
) -> None:
    do_save_addendum(radiologist, signed, "Also a small effusion.")
    do_sign_addendum(radiologist, signed, next_totp(radiologist))

    resource = fhir(client_a, signed)

    assert resource["status"] == "appended"
    text = base64.b64decode(resource["presentedForm"][0]["data"]).decode()  # type: ignore[index]
    assert text.startswith(TEXT) and text.endswith("Also a small effusion.")


def test_a_preliminary_report_is_preliminary_in_fhir(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    do_save_report_draft(radiologist, study, TEXT)
    do_issue_preliminary_report(radiologist, study)

    assert fhir(client_a, study)["status"] == "preliminary"


def test_a_draft_is_not_exported(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    do_save_report_draft(radiologist, study, TEXT)

    assert client_a.get(url(study, ".pdf")).status_code == 409
    assert client_a.get(url(study, "/fhir")).status_code == 409


def test_a_user_without_access_gets_404(
    signed: Study, referrer: User, tenant_a: Tenant
) -> None:
    from conftest import tenant_client

    client = mark_reauthenticated(tenant_client(tenant_a, referrer), tenant_a)

    assert client.get(url(signed, ".pdf")).status_code == 404
    assert client.get(url(signed, "/fhir")).status_code == 404
