import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from audit.models import AuditEvent, EventType, Outcome
from config.asgi import application
from conftest import current_totp, tenant_client
from pacs.models import Study
from reporting.models import (
    Addendum,
    OutboundMessage,
    Report,
    ReportStatus,
    StudyReferral,
    VersionKind,
)
from reporting.tests.helpers import post, put, url
from reporting.tests.test_consumer import run, session_cookie
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_ref(tenant_a: Tenant, referrer: User, study: Study) -> Client:
    StudyReferral.objects.create(study=study, referrer=referrer)
    return tenant_client(tenant_a, referrer)


def sign(client: Client, study: Study) -> None:
    put(client, study, "", {"text": "No acute abnormality."})
    assert post(client, study, "/sign", {"otp": current_totp()}).status_code == 200


def test_it_hides_a_draft_from_the_referrer_of_the_study(
    client_a: Client, client_ref: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": "Working notes."})

    assert client_ref.get(url(study)).status_code == 404
    editor = client_ref.get(f"/reports/studies/{study.study_instance_uid}/")
    assert editor.status_code == 404


def test_it_shows_a_preliminary_report_to_the_referrer_marked_preliminary(
    client_a: Client, client_ref: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": "Small effusion."})
    issued = post(client_a, study, "/preliminary")

    body = client_ref.get(url(study)).json()
    page = client_ref.get(f"/reports/studies/{study.study_instance_uid}/")
    assert issued.status_code == 200
    assert body["status"] == "preliminary" and body["result_status"] == "P"
    assert body["text"] == "Small effusion."
    assert "Preliminary report" in page.content.decode()
    assert AuditEvent.objects.filter(event_type=EventType.REPORT_PRELIMINARY).exists()
    assert OutboundMessage.objects.filter(report__study=study).count() == 1


def test_it_refuses_to_issue_an_empty_report_as_preliminary(
    client_a: Client, study: Study
) -> None:
    assert post(client_a, study, "/preliminary").status_code == 400


def test_it_keeps_a_preliminary_report_editable_until_signed(
    client_a: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": "Small effusion."})
    post(client_a, study, "/preliminary")
    edited = put(client_a, study, "", {"text": "Small left effusion."})

    assert edited.status_code == 200
    assert edited.json()["status"] == "preliminary"


def test_it_lets_the_referrer_read_but_never_write(
    client_ref: Client, client_a: Client, study: Study
) -> None:
    sign(client_a, study)

    assert client_ref.get(url(study)).json()["status"] == "signed"
    assert put(client_ref, study, "", {"text": "Changed."}).status_code in (403, 404)
    assert put(client_ref, study, "/addendum", {"text": "x"}).status_code in (403, 404)
    assert Report.objects.get(study=study).text == "No acute abnormality."


def test_it_hides_the_report_from_a_referrer_the_study_is_not_referred_to(
    tenant_a: Tenant, referrer: User, client_a: Client, study: Study
) -> None:
    sign(client_a, study)

    assert tenant_client(tenant_a, referrer).get(url(study)).status_code == 404


def test_it_keeps_every_saved_version_and_shows_each_one(
    client_a: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": "First."})
    put(client_a, study, "", {"text": "First.\nSecond."})

    first = client_a.get(url(study, "/versions/1")).json()
    page = client_a.get(f"/reports/studies/{study.study_instance_uid}/versions/")
    assert first == {"version": 1, "kind": "report", "text": "First."}
    assert page.status_code == 200
    assert "+ Second." in page.content.decode()


def test_it_adds_a_signed_addendum_without_touching_the_signed_text(
    client_a: Client, study: Study, radiologist: User
) -> None:
    sign(client_a, study)
    draft = put(client_a, study, "/addendum", {"text": "Fracture of rib 5."})
    signed = post(client_a, study, "/addendum/sign", {"otp": next_totp(radiologist)})

    assert draft.status_code == 200
    assert draft.json()["addenda"][0]["status"] == "draft"
    assert signed.status_code == 200, signed.json()
    body = signed.json()
    assert body["text"] == "No acute abnormality."
    assert body["addenda"][0]["status"] == "signed"
    assert body["result_status"] == "C"
    assert body["versions"][-1]["kind"] == VersionKind.ADDENDUM
    message = OutboundMessage.objects.filter(report__study=study).last()
    assert message is not None and message.addendum is not None
    assert "Fracture of rib 5." in message.payload
    assert AuditEvent.objects.filter(event_type=EventType.ADDENDUM_SIGNED).exists()


def test_it_refuses_an_addendum_to_a_report_not_yet_signed(
    client_a: Client, study: Study
) -> None:
    put(client_a, study, "", {"text": "Draft."})

    assert put(client_a, study, "/addendum", {"text": "x"}).status_code == 409
    assert not Addendum.objects.exists()


def test_it_refuses_to_sign_an_addendum_with_a_wrong_password(
    client_a: Client, study: Study, radiologist: User
) -> None:
    sign(client_a, study)
    put(client_a, study, "/addendum", {"text": "More."})

    refused = post(client_a, study, "/addendum/sign", {"otp": "000000"})

    assert refused.status_code == 403
    assert Addendum.objects.get().status == "draft"
    failure = AuditEvent.objects.get(event_type=EventType.ADDENDUM_SIGNED)
    assert failure.outcome == Outcome.FAILURE


def test_it_reports_status_signed_with_result_status_f_before_addenda(
    client_a: Client, study: Study
) -> None:
    sign(client_a, study)

    body = client_a.get(url(study)).json()
    assert body["status"] == ReportStatus.SIGNED
    assert body["result_status"] == "F"
    assert body["lock"]["holder"] == ""


def next_totp(user: User) -> str:
    """A token of the next time step: the current one was used to sign."""
    device = TOTPDevice.objects.get(user=user)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + device.step
    # Accepted because the device tolerates one step of drift.
    return f"{totp.token():0{device.digits}d}"


def test_a_referrer_never_sees_a_draft_addendum_or_the_draft_history(
    client_a: Client, client_ref: Client, study: Study
) -> None:
    sign(client_a, study)
    put(client_a, study, "/addendum", {"text": "Draft: maybe the wrong patient."})

    body = client_ref.get(url(study)).json()
    page = client_ref.get(f"/reports/studies/{study.study_instance_uid}/")

    assert body["addenda"] == [] and body["versions"] == []
    assert "maybe the wrong patient" not in page.content.decode()
    assert client_a.get(url(study)).json()["addenda"][0]["status"] == "draft"


def test_a_referrers_report_socket_never_carries_a_draft_addendum(
    client_a: Client,
    client_ref: Client,
    study: Study,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # As in test_consumer: channels' calls share the test's transaction.
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)
    sign(client_a, study)

    def draft_addendum_then_a_critical_finding() -> None:
        # The broadcast waits for the commit; run it as the commit would.
        with django_capture_on_commit_callbacks(execute=True):
            put(client_a, study, "/addendum", {"text": "Draft: the wrong patient?"})
        with django_capture_on_commit_callbacks(execute=True):
            post(client_a, study, "/critical")

    headers = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://a.localhost"),
        (b"cookie", session_cookie(client_ref).encode()),
    ]

    async def scenario() -> None:
        socket = WebsocketCommunicator(
            application, f"/ws/studies/{study.study_instance_uid}/report/", headers
        )
        connected, _ = await socket.connect()
        assert connected
        await socket.receive_json_from(timeout=5)  # the state on opening
        await database_sync_to_async(draft_addendum_then_a_critical_finding)()
        # The draft changed nothing the referrer sees: the first update is
        # the critical finding's, and it carries no addendum either.
        update = await socket.receive_json_from(timeout=5)
        assert update["critical"]["flagged"]
        assert update["addenda"] == [] and update["versions"] == []
        assert "wrong patient" not in str(update)
        await socket.disconnect()

    run(scenario)
