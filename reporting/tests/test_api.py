import json
from typing import Any

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import tenant_context

from accounts.models import User
from audit.models import AuditEvent, EventType, Outcome
from conftest import current_totp, tenant_client
from pacs.models import ReadingStatus, Study
from reporting.models import OutboundMessage, Report, ReportStatus, ReportVersion
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def url(study: Study, action: str = "") -> str:
    return f"/api/studies/{study.study_instance_uid}/report{action}"


def put_text(client: Client, study: Study, text: str) -> Any:
    return client.put(url(study), json.dumps({"text": text}), "application/json")


def post(client: Client, study: Study, action: str, body: dict[str, str]) -> Any:
    return client.post(url(study, action), json.dumps(body), "application/json")


def test_it_saves_a_draft_as_a_new_version_and_marks_the_study_in_progress(
    client_a: Client, study: Study
) -> None:
    first = put_text(client_a, study, "No acute findings.")
    second = put_text(client_a, study, "No acute findings. Small cyst.")

    assert first.status_code == 200 and second.status_code == 200
    body = second.json()
    assert body["status"] == "draft"
    assert body["text"] == "No acute findings. Small cyst."
    assert body["version"] == 2
    assert [v["version"] for v in body["versions"]] == [1, 2]
    assert body["delivery"] is None
    assert ReportVersion.objects.filter(report__study=study).count() == 2
    study.refresh_from_db()
    assert study.reading_status == ReadingStatus.IN_PROGRESS
    assert AuditEvent.objects.filter(event_type=EventType.REPORT_EDITED).count() == 2


def test_it_does_not_make_a_version_when_the_text_did_not_change(
    client_a: Client, study: Study
) -> None:
    put_text(client_a, study, "Same.")
    body = put_text(client_a, study, "Same.").json()

    assert body["version"] == 1


def test_it_appends_dictated_text_after_a_space(client_a: Client, study: Study) -> None:
    put_text(client_a, study, "Liver normal.")
    response = post(client_a, study, "/dictation", {"text": "  Spleen normal. "})

    assert response.status_code == 200
    assert response.json()["text"] == "Liver normal. Spleen normal."
    assert AuditEvent.objects.filter(event_type=EventType.REPORT_DICTATED).exists()


def test_it_keeps_a_new_paragraph_dictated_at_the_end_of_an_utterance(
    client_a: Client, study: Study
) -> None:
    put_text(client_a, study, "Liver normal.")
    post(client_a, study, "/dictation", {"text": "Spleen normal.\n\n"})
    response = post(client_a, study, "/dictation", {"text": "Impression: normal."})

    assert response.json()["text"] == (
        "Liver normal. Spleen normal.\n\nImpression: normal."
    )


def test_it_reads_the_report_and_audits_the_read(
    client_a: Client, study: Study
) -> None:
    response = client_a.get(url(study))

    assert response.status_code == 200
    assert response.json()["study_instance_uid"] == study.study_instance_uid
    assert "no-store" in response["Cache-Control"]
    read = AuditEvent.objects.get(event_type=EventType.REPORT_READ)
    assert read.study_instance_uid == study.study_instance_uid
    assert read.actor_username == "rad.a"


def test_it_signs_with_a_fresh_one_time_password(
    client_a: Client, study: Study, django_capture_on_commit_callbacks: Any
) -> None:
    put_text(client_a, study, "Impression: normal.")
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client_a, study, "/sign", {"otp": current_totp()})

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "signed"
    assert body["signed_by"] == "rad.a"
    assert body["signed_at"]
    assert body["delivery"]["state"] == "pending"
    assert body["delivery"]["attempts"] == 0
    study.refresh_from_db()
    assert study.reading_status == ReadingStatus.SIGNED
    message = OutboundMessage.objects.get(report__study=study)
    assert "Impression: normal." in message.payload
    assert AuditEvent.objects.filter(
        event_type=EventType.REPORT_SIGNED, outcome=Outcome.SUCCESS
    ).exists()
    # One callback queues the delivery, one tells the open editors.
    assert len(callbacks) == 2


def test_it_refuses_a_wrong_one_time_password(client_a: Client, study: Study) -> None:
    put_text(client_a, study, "Impression: normal.")
    wrong = f"{(int(current_totp()) + 1) % 1_000_000:06d}"
    response = post(client_a, study, "/sign", {"otp": wrong})

    assert response.status_code == 403
    assert "one-time password" in response.json()["detail"]
    assert Report.objects.get(study=study).status == ReportStatus.DRAFT
    assert not OutboundMessage.objects.exists()
    assert AuditEvent.objects.filter(
        event_type=EventType.REPORT_SIGNED, outcome=Outcome.FAILURE
    ).exists()


def test_it_refuses_a_one_time_password_used_before(
    client_a: Client, study: Study, other_study: Study
) -> None:
    otp = current_totp()
    put_text(client_a, study, "First report.")
    put_text(client_a, other_study, "Second report.")

    assert post(client_a, study, "/sign", {"otp": otp}).status_code == 200
    replayed = post(client_a, other_study, "/sign", {"otp": otp})

    assert replayed.status_code == 403
    assert Report.objects.get(study=other_study).status == ReportStatus.DRAFT


def test_it_refuses_the_password_that_opened_the_session(
    client_a: Client, study: Study, radiologist: User
) -> None:
    otp = current_totp()
    TOTPDevice.objects.get(user=radiologist).verify_token(otp)  # the sign-in
    put_text(client_a, study, "Impression: normal.")

    assert post(client_a, study, "/sign", {"otp": otp}).status_code == 403


def test_it_refuses_to_sign_an_empty_report(client_a: Client, study: Study) -> None:
    response = post(client_a, study, "/sign", {"otp": current_totp()})

    assert response.status_code == 400


def test_it_never_changes_a_signed_report(client_a: Client, study: Study) -> None:
    put_text(client_a, study, "Final words.")
    post(client_a, study, "/sign", {"otp": current_totp()})

    edited = put_text(client_a, study, "Changed my mind.")
    dictated = post(client_a, study, "/dictation", {"text": "More."})
    signed_again = post(client_a, study, "/sign", {"otp": current_totp()})

    assert edited.status_code == 409
    assert dictated.status_code == 409
    assert signed_again.status_code == 409
    assert "signed" in edited.json()["detail"]
    report = Report.objects.get(study=study)
    assert report.text == "Final words."
    assert OutboundMessage.objects.count() == 1


def test_it_hides_the_report_from_a_referrer(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    client = tenant_client(tenant_a, referrer)

    assert client.get(url(study)).status_code == 404
    assert put_text(client, study, "Sneaky.").status_code == 404
    assert post(client, study, "/dictation", {"text": "x"}).status_code == 404


def test_it_hides_the_report_from_another_tenants_radiologist(
    study: Study, tenant_a: Tenant, tenant_b: Tenant, radiologist_b: User
) -> None:
    client = tenant_client(tenant_b, radiologist_b)

    assert client.get(url(study)).status_code == 404
    assert put_text(client, study, "Sneaky.").status_code == 404
    with tenant_context(tenant_a):
        assert not Report.objects.filter(text="Sneaky.").exists()


def test_it_refuses_another_tenants_token_on_this_tenants_host(
    study: Study, tenant_b: Tenant, radiologist_b: User
) -> None:
    from accounts.models import ApiToken

    with tenant_context(tenant_b):
        _token, raw = ApiToken.issue(radiologist_b)
    client = Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert client.get(url(study)).status_code == 401


def test_it_accepts_a_bearer_token_from_a_dictation_client(
    token_a: str, study: Study
) -> None:
    client = Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION=f"Bearer {token_a}")

    response = post(client, study, "/dictation", {"text": "Dictated by machine."})

    assert response.status_code == 200
    assert response.json()["text"] == "Dictated by machine."


def test_it_asks_for_credentials_without_a_session_or_token(study: Study) -> None:
    response = Client(HTTP_HOST="a.localhost").get(url(study))

    assert response.status_code == 401


def test_it_documents_the_report_calls_in_the_openapi_schema(client_a: Client) -> None:
    response = client_a.get("/api/schema/", HTTP_ACCEPT="application/json")

    paths = json.loads(response.content)["paths"]
    assert "/api/studies/{study_uid}/report" in paths
    assert {"get", "put"} <= set(paths["/api/studies/{study_uid}/report"])
    assert "/api/studies/{study_uid}/report/dictation" in paths
    assert "/api/studies/{study_uid}/report/sign" in paths


def test_it_refuses_a_save_from_a_stale_version_so_dictation_is_not_lost(
    client_a: Client, study: Study
) -> None:
    first = put_text(client_a, study, "Typed before.").json()
    post(client_a, study, "/dictation", {"text": "DICTATED."})

    stale = client_a.put(
        url(study),
        json.dumps({"text": "Typed before. Typed later.", "version": first["version"]}),
        "application/json",
    )

    assert stale.status_code == 409
    assert stale.json()["text"] == "Typed before. DICTATED."
    assert stale.json()["version"] == first["version"] + 1
    merged = client_a.put(
        url(study),
        json.dumps(
            {
                "text": "Typed before. DICTATED. Typed later.",
                "version": first["version"] + 1,
            }
        ),
        "application/json",
    )
    assert merged.status_code == 200
    assert merged.json()["text"] == "Typed before. DICTATED. Typed later."
