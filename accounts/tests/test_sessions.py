"""Idle time-out, absolute lifetime and sign-out everywhere, over HTTP and websockets."""

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.sessions import LAST_ACTIVITY, SIGNED_IN_AT
from audit.models import AuditEvent, EventType
from config.asgi import application
from conftest import tenant_client
from pacs.models import Patient, Study
from tenants.channels import CLOSE_SESSION_ENDED

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in reporting/tests/test_consumer.py: channels' database calls share
    # the test's transaction instead of closing its connection.
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


@pytest.fixture
def study(tenant_a) -> Study:  # type: ignore[no-untyped-def]
    patient = Patient.objects.create(patient_id="P-9", patient_name="Doe^Jane")
    return Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.8.498.9", patient=patient
    )


def age_session(client: Client, tenant, key: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    with tenant_context(tenant):
        session = client.session
        session[key] = float(session[key]) - seconds
        session.save()


def socket(study: Study, client: Client) -> WebsocketCommunicator:
    cookie = settings.SESSION_COOKIE_NAME
    headers = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://a.localhost"),
        (b"cookie", f"{cookie}={client.cookies[cookie].value}".encode()),
    ]
    path = f"/ws/studies/{study.study_instance_uid}/report/"
    return WebsocketCommunicator(application, path, headers=headers)


def test_an_idle_session_is_signed_out_at_its_next_request(tenant_a, client_a):
    age_session(client_a, tenant_a, LAST_ACTIVITY, 16 * 60)

    response = client_a.get("/")

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    event = AuditEvent.objects.get(event_type=EventType.SESSION_EXPIRED)
    assert event.detail == {"reason": "idle"} and event.actor_username == "rad.a"
    assert client_a.get("/").status_code == 302


def test_the_idle_time_out_is_the_tenants_setting(tenant_a, client_a):
    tenant_a.idle_timeout_minutes = 30
    tenant_a.save()
    age_session(client_a, tenant_a, LAST_ACTIVITY, 16 * 60)
    try:
        assert client_a.get("/").status_code == 200
    finally:
        # Web processes remember tenants; a rollback sends no signal to forget.
        tenant_a.idle_timeout_minutes = 15
        tenant_a.save()


def test_a_busy_session_still_ends_after_its_absolute_lifetime(tenant_a, client_a):
    age_session(client_a, tenant_a, SIGNED_IN_AT, settings.SESSION_COOKIE_AGE + 1)

    assert client_a.get("/").status_code == 302
    event = AuditEvent.objects.get(event_type=EventType.SESSION_EXPIRED)
    assert event.detail == {"reason": "absolute"}


def test_the_idle_modules_status_check_is_not_activity_but_its_input_report_is(
    tenant_a, client_a
):
    age_session(client_a, tenant_a, LAST_ACTIVITY, 10 * 60)

    client_a.get("/accounts/session/")
    left = client_a.get("/accounts/session/").json()["idle_seconds_left"]
    assert 4 * 60 <= left <= 5 * 60

    client_a.post("/accounts/session/")
    left = client_a.get("/accounts/session/").json()["idle_seconds_left"]
    assert left > 14 * 60


def test_any_other_request_of_the_user_is_activity(tenant_a, client_a):
    age_session(client_a, tenant_a, LAST_ACTIVITY, 10 * 60)

    client_a.get("/")

    assert client_a.get("/accounts/session/").json()["idle_seconds_left"] > 14 * 60


def test_an_idle_session_cannot_open_a_websocket(tenant_a, client_a, study):
    age_session(client_a, tenant_a, LAST_ACTIVITY, 16 * 60)

    async def scenario() -> None:
        connected, _ = await socket(study, client_a).connect()
        assert not connected

    async_to_sync(scenario)()


def test_signing_out_everywhere_ends_every_session_and_closes_their_sockets(
    tenant_a, radiologist, client_a, study, django_capture_on_commit_callbacks: Any
):
    other_computer = tenant_client(tenant_a, radiologist)

    def sign_out_everywhere() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_a.post("/accounts/sign-out-everywhere/")
        assert response.status_code == 302

    async def scenario() -> None:
        live = socket(study, other_computer)
        assert (await live.connect())[0]
        await live.receive_json_from(timeout=5)

        await database_sync_to_async(sign_out_everywhere)()

        closed = await live.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": CLOSE_SESSION_ENDED}
        again, _ = await socket(study, other_computer).connect()
        assert not again

    async_to_sync(scenario)()

    assert other_computer.get("/").status_code == 302
    assert client_a.get("/").status_code == 302
    assert AuditEvent.objects.filter(event_type=EventType.SESSIONS_ENDED).count() == 1
