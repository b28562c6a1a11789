"""Anyone but a radiologist reads a preliminary report as it was issued.

A preliminary report stays editable. Its later unsigned edits are the
radiologists' until the report is issued again or signed: the API, the
report page, the PDF and FHIR exports, the websocket and the HL7 message
carry the issued text (security review finding L2).
"""

import base64
import importlib
import io
import json
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.test import Client
from pypdf import PdfReader

from accounts.models import User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from conftest import current_totp, tenant_client
from pacs.models import Instance, Study
from reporting.models import (
    Notification,
    NotificationKind,
    OutboundMessage,
    Report,
    StudyReferral,
)
from reporting.tests.helpers import post, put, url
from reporting.tests.test_consumer import run, session_cookie, socket_for
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

ISSUED = "Small left effusion."
SECRET = "DRAFT-SECRET-AFTER-PRELIM"
CORRECTED = "Small left effusion, no consolidation."
SIGNED = "Small left effusion, no consolidation. No pneumothorax."


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in test_consumer: channels' calls share the test's open transaction.
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


@pytest.fixture
def client_ref(tenant_a: Tenant, referrer: User, study: Study) -> Client:
    StudyReferral.objects.create(study=study, referrer=referrer)
    return mark_reauthenticated(tenant_client(tenant_a, referrer), tenant_a)


@pytest.fixture
def edited(client_a: Client, client_ref: Client, study: Study) -> Study:
    """Issued as preliminary, then edited and saved without issuing again."""
    assert put(client_a, study, "", {"text": ISSUED}).status_code == 200
    assert post(client_a, study, "/preliminary").status_code == 200
    assert put(client_a, study, "", {"text": SECRET}).status_code == 200
    return study


def editor_page(client: Client, study: Study) -> str:
    response = client.get(f"/reports/studies/{study.study_instance_uid}/")
    assert response.status_code == 200
    return response.content.decode()


def pdf_text(client: Client, study: Study) -> str:
    response = client.get(url(study, ".pdf"))
    assert response.status_code == 200
    reader = PdfReader(io.BytesIO(response.content))
    return "\n".join(page.extract_text() for page in reader.pages)


def fhir_text(client: Client, study: Study) -> str:
    response = client.get(url(study, "/fhir"))
    assert response.status_code == 200
    form = json.loads(response.content)["presentedForm"][0]
    return base64.b64decode(form["data"]).decode()


# --- Reading -----------------------------------------------------------------------


def test_the_referrer_reads_the_issued_text_not_a_later_edit(
    edited: Study, client_ref: Client
) -> None:
    body = client_ref.get(url(edited)).json()

    assert body["text"] == ISSUED
    assert body["version"] == body["issued_version"] == 2
    assert body["unissued_changes"] is False
    assert SECRET not in json.dumps(body)


def test_the_radiologist_reads_the_live_text_and_that_it_is_not_issued(
    edited: Study, client_a: Client
) -> None:
    body = client_a.get(url(edited)).json()
    page = editor_page(client_a, edited)

    assert body["text"] == SECRET and body["version"] == 3
    assert body["issued_version"] == 2 and body["unissued_changes"] is True
    assert SECRET in page
    note = re.search(r'<p[^>]* id="unissued-note"[^>]*>', page)
    assert note and "hidden" not in note.group(0)
    assert "Issue the changes as preliminary" in page


def test_the_referrers_report_page_shows_the_issued_text(
    edited: Study, client_ref: Client
) -> None:
    page = editor_page(client_ref, edited)

    assert ISSUED in page
    assert SECRET not in page
    assert "unissued-note" not in page


def test_a_key_image_cited_since_issuing_is_the_radiologists_until_issued(
    edited: Study, client_a: Client, client_ref: Client
) -> None:
    instance = Instance.objects.select_related("series").get(series__study=edited)
    cited = post(
        client_a,
        edited,
        "/images",
        {
            "series_instance_uid": instance.series.series_instance_uid,
            "sop_instance_uid": instance.sop_instance_uid,
        },
    )

    assert cited.status_code == 200
    assert len(client_a.get(url(edited)).json()["image_references"]) == 1
    assert client_ref.get(url(edited)).json()["image_references"] == []
    post(client_a, edited, "/preliminary")
    assert len(client_ref.get(url(edited)).json()["image_references"]) == 1


def test_the_referrers_pdf_and_fhir_carry_the_issued_text(
    edited: Study, client_ref: Client
) -> None:
    pdf = pdf_text(client_ref, edited)
    fhir = fhir_text(client_ref, edited)

    assert ISSUED in pdf and SECRET not in pdf
    assert fhir == ISSUED


def test_the_ris_received_the_issued_text(edited: Study) -> None:
    [message] = OutboundMessage.objects.filter(report__study=edited)

    assert ISSUED in message.payload and SECRET not in message.payload


# --- Issuing again and signing -----------------------------------------------------


def test_issuing_the_changes_shows_them_to_the_referrer_and_the_ris(
    edited: Study, client_a: Client, client_ref: Client, referrer: User
) -> None:
    put(client_a, edited, "", {"text": CORRECTED})
    reissued = post(client_a, edited, "/preliminary")

    body = client_ref.get(url(edited)).json()
    assert reissued.status_code == 200 and reissued.json()["unissued_changes"] is False
    assert body["text"] == CORRECTED and body["version"] == 5
    assert CORRECTED in editor_page(client_ref, edited)
    assert fhir_text(client_ref, edited) == CORRECTED
    first, second = OutboundMessage.objects.filter(report__study=edited).order_by("id")
    assert CORRECTED in second.payload and CORRECTED not in first.payload
    notices = Notification.objects.filter(
        recipient=referrer, kind=NotificationKind.REPORT_PRELIMINARY
    )
    assert notices.count() == 2
    [again] = AuditEvent.objects.filter(
        event_type=EventType.REPORT_PRELIMINARY, detail__reissued=True
    )
    assert again.detail["version"] == 5


def test_issuing_an_unchanged_preliminary_report_again_does_nothing(
    client_a: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": ISSUED})
    post(client_a, study, "/preliminary")

    again = post(client_a, study, "/preliminary")

    assert again.status_code == 200 and again.json()["version"] == 2
    assert OutboundMessage.objects.filter(report__study=study).count() == 1


def test_signing_shows_the_signed_text_to_the_referrer(
    edited: Study, client_a: Client, client_ref: Client
) -> None:
    put(client_a, edited, "", {"text": CORRECTED})
    assert post(client_a, edited, "/sign", {"otp": current_totp()}).status_code == 200

    body = client_ref.get(url(edited)).json()
    report = Report.objects.get(study=edited)
    assert body["text"] == CORRECTED and body["status"] == "signed"
    assert report.issued_text == CORRECTED and report.issued_version == 5
    assert CORRECTED in pdf_text(client_ref, edited)
    assert fhir_text(client_ref, edited) == CORRECTED


# --- The websocket -----------------------------------------------------------------


def test_a_referrers_socket_never_carries_an_unsigned_edit(
    client_a: Client,
    client_ref: Client,
    study: Study,
    django_capture_on_commit_callbacks: Any,
) -> None:
    put(client_a, study, "", {"text": ISSUED})
    post(client_a, study, "/preliminary")

    def edit_then_issue_the_correction() -> None:
        # The broadcasts wait for the commit; run them as the commit would.
        for text in (SECRET, CORRECTED):
            with django_capture_on_commit_callbacks(execute=True):
                assert put(client_a, study, "", {"text": text}).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client_a, study, "/preliminary").status_code == 200

    def edit_then_sign() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            assert put(client_a, study, "", {"text": SIGNED}).status_code == 200
        with django_capture_on_commit_callbacks(execute=True):
            signed = post(client_a, study, "/sign", {"otp": current_totp()})
            assert signed.status_code == 200

    async def scenario() -> None:
        referrer = socket_for(study, cookie=session_cookie(client_ref))
        radiologist = socket_for(study, cookie=session_cookie(client_a))
        try:
            assert (await referrer.connect())[0]
            assert (await radiologist.connect())[0]
            assert (await referrer.receive_json_from(timeout=5))["text"] == ISSUED
            await radiologist.receive_json_from(timeout=5)

            await database_sync_to_async(edit_then_issue_the_correction)()

            live = [await radiologist.receive_json_from(timeout=5) for _ in range(3)]
            assert [state["text"] for state in live] == [SECRET, CORRECTED, CORRECTED]
            # The two saves sent the referrer nothing: the next state it gets
            # is the issued correction's.
            update = await referrer.receive_json_from(timeout=5)
            assert update["text"] == CORRECTED and update["version"] == 5
            assert SECRET not in json.dumps(update)

            await database_sync_to_async(edit_then_sign)()
            signed = await referrer.receive_json_from(timeout=5)
            assert signed["status"] == "signed" and signed["text"] == SIGNED
            assert await referrer.receive_nothing(timeout=0.5)
        finally:
            await referrer.disconnect()
            await radiologist.disconnect()

    run(scenario)


# --- Reports issued before the issued text was kept ------------------------------


def test_the_migration_finds_the_issued_text_among_the_versions(
    edited: Study, client_a: Client
) -> None:
    migration = importlib.import_module("reporting.migrations.0007_report_issued_text")
    Report.objects.filter(study=edited).update(issued_text="", issued_version=None)

    migration.record_what_was_issued(apps, None)

    report = Report.objects.get(study=edited)
    assert report.issued_text == ISSUED and report.issued_version == 2
