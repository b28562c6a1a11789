"""Live notices: a referrer's open portal page hears of a new report at once."""

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from config.asgi import application
from conftest import tenant_client
from pacs.models import Study
from referrals.consumers import CLOSE_NOT_FOUND
from reporting.tests.helpers import post, put
from reporting.tests.test_consumer import (  # noqa: F401  (fixture)
    _keep_the_test_transaction,
    run,
    session_cookie,
)
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

PATH = "/ws/referrals/notices/"


def socket_for(client: Client) -> WebsocketCommunicator:
    headers = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://a.localhost"),
        (b"cookie", session_cookie(client).encode()),
    ]
    return WebsocketCommunicator(application, PATH, headers=headers)


def test_it_pushes_a_new_preliminary_report_with_the_unread_count(
    tenant_a: Tenant,
    referrer: User,
    shared: Study,
    client_a: Client,
    django_capture_on_commit_callbacks: Any,
) -> None:
    gp = tenant_client(tenant_a, referrer)

    def issue() -> None:
        put(client_a, shared, "", {"text": "Small nodule."})
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client_a, shared, "/preliminary").status_code == 200

    async def scenario() -> None:
        socket = socket_for(gp)
        try:
            assert (await socket.connect())[0]
            assert await socket.receive_json_from(timeout=5) == {
                "type": "unread",
                "unread": 0,
            }

            await database_sync_to_async(issue)()

            notice = await socket.receive_json_from(timeout=5)
            assert notice == {
                "type": "notice",
                "kind": "report_preliminary",
                "study_instance_uid": shared.study_instance_uid,
                "unread": 1,
            }
        finally:
            await socket.disconnect()

    run(scenario)


def test_it_closes_the_socket_for_anyone_but_a_referrer(client_a: Client) -> None:
    async def scenario() -> None:
        connected, code = await socket_for(client_a).connect()
        assert not connected
        assert code == CLOSE_NOT_FOUND

    run(scenario)
