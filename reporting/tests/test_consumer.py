import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from accounts.models import ApiToken, User
from config.asgi import application
from conftest import tenant_client
from pacs.models import Study
from reporting.consumers import CLOSE_NOT_FOUND
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let channels' database calls share the test's open transaction.

    database_sync_to_async closes connections that are not in autocommit
    mode, which the test's transaction never is. A transactional test would
    instead flush the tenant registry that every other test relies on. The
    scenario runs under async_to_sync, so those calls come back to this
    thread and its connection: PostgreSQL and Redis are real, only the
    connection clean-up between requests is skipped.
    """
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


def socket_for(
    study: Study, *, host: str = "a.localhost", cookie: str = "", token: str = ""
) -> WebsocketCommunicator:
    headers = [(b"host", host.encode())]
    if cookie:
        headers += [
            (b"origin", f"http://{host}".encode()),
            (b"cookie", cookie.encode()),
        ]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    path = f"/ws/studies/{study.study_instance_uid}/report/"
    return WebsocketCommunicator(application, path, headers=headers)


def session_cookie(client: Client) -> str:
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def test_it_pushes_a_dictation_to_every_open_editor_of_the_report(
    client_a: Client,
    token_a: str,
    study: Study,
    django_capture_on_commit_callbacks: Any,
) -> None:
    def dictate() -> None:
        # The broadcast waits for the commit; run it as the commit would.
        with django_capture_on_commit_callbacks(execute=True):
            response = client_a.post(
                f"/api/studies/{study.study_instance_uid}/report/dictation",
                json.dumps({"text": "Liver is normal."}),
                "application/json",
            )
        assert response.status_code == 200

    async def scenario() -> None:
        browser = socket_for(study, cookie=session_cookie(client_a))
        dictation_client = socket_for(study, token=token_a)
        try:
            assert (await browser.connect())[0]
            assert (await dictation_client.connect())[0]
            for socket in (browser, dictation_client):
                opened = await socket.receive_json_from(timeout=5)
                assert opened["type"] == "report" and opened["text"] == ""

            await database_sync_to_async(dictate)()

            for socket in (browser, dictation_client):
                update = await socket.receive_json_from(timeout=5)
                assert update["type"] == "report"
                assert update["text"] == "Liver is normal."
                assert update["status"] == "draft"
                assert update["version"] == 1
                assert update["delivery"] is None
        finally:
            await browser.disconnect()
            await dictation_client.disconnect()

    run(scenario)


def test_it_closes_the_socket_for_a_user_without_access(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    cookie = session_cookie(tenant_client(tenant_a, referrer))

    async def scenario() -> None:
        socket = socket_for(study, cookie=cookie)
        connected, code = await socket.connect()
        assert not connected
        assert code == CLOSE_NOT_FOUND

    run(scenario)


def test_it_closes_the_socket_for_another_tenants_radiologist(
    study: Study, tenant_b: Tenant, radiologist_b: User
) -> None:
    from django_tenants.utils import tenant_context

    with tenant_context(tenant_b):
        _token, raw = ApiToken.issue(radiologist_b)

    async def scenario() -> None:
        socket = socket_for(study, host="b.localhost", token=raw)
        connected, code = await socket.connect()
        assert not connected
        assert code == CLOSE_NOT_FOUND

    run(scenario)


def test_it_refuses_a_handshake_without_credentials(study: Study) -> None:
    async def scenario() -> None:
        socket = socket_for(study, cookie="sessionid=forged")
        connected, _code = await socket.connect()
        assert not connected

    run(scenario)


def test_it_keeps_an_idle_editor_connected_past_the_redis_read_timeout(
    client_a: Client, study: Study
) -> None:
    # channels_redis waits on Redis with 5-second blocking reads: a client
    # socket timeout at or under that would drop every idle editor.
    async def scenario() -> None:
        browser = socket_for(study, cookie=session_cookie(client_a))
        try:
            assert (await browser.connect())[0]
            await browser.receive_json_from(timeout=5)
            await asyncio.sleep(8)
            assert await browser.receive_nothing(timeout=0.5)
            await browser.send_to(text_data="{}")
            assert await browser.receive_nothing(timeout=0.5)
        finally:
            await browser.disconnect()

    run(scenario)


def test_it_refuses_a_page_of_another_tenant_as_origin(
    client_a: Client, study: Study
) -> None:
    cookie = session_cookie(client_a)
    path = f"/ws/studies/{study.study_instance_uid}/report/"
    headers = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://b.localhost"),
        (b"cookie", cookie.encode()),
    ]

    async def scenario() -> None:
        socket = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await socket.connect()
        assert not connected

    run(scenario)


def test_it_closes_a_socket_to_an_unknown_path_instead_of_failing(
    client_a: Client, study: Study
) -> None:
    headers = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://a.localhost"),
        (b"cookie", session_cookie(client_a).encode()),
    ]

    async def scenario() -> None:
        socket = WebsocketCommunicator(
            application, "/ws/studies/../../etc/passwd/report/", headers=headers
        )
        connected, _ = await socket.connect()
        assert not connected

    run(scenario)
