"""Connection state: real C-ECHO associations on localhost, a real Celery ping."""

import socket
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client
from django_tenants.utils import schema_context
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from audit.models import EventType, Outcome
from helpdesk.models import ConnectionCheck
from helpdesk.tests.conftest import CONSOLE, Events
from pacs.models import RemoteApplicationEntity

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def verification_scp() -> Iterator[int]:
    """A DICOM peer on 127.0.0.1 that answers C-ECHO; its port."""
    port = free_port()
    ae = AE(ae_title="PEER_SCP")
    ae.add_supported_context(Verification)
    server = ae.start_server(("127.0.0.1", port), block=False)
    yield port
    server.shutdown()


@pytest.fixture
def peer(db: None) -> Iterator[RemoteApplicationEntity]:
    with schema_context("hospital_a"):
        yield RemoteApplicationEntity.objects.create(
            ae_title="PEER_SCP", host="127.0.0.1", port=free_port(), may_store=True
        )


def echo_url(peer: RemoteApplicationEntity) -> str:
    return f"{CONSOLE}tenants/hospital_a/remote-aes/{peer.pk}/echo/"


def test_it_tests_a_remote_ae_with_c_echo_and_keeps_the_result(
    helpdesk_client: Client,
    peer: RemoteApplicationEntity,
    verification_scp: int,
    events: Events,
) -> None:
    with schema_context("hospital_a"):
        RemoteApplicationEntity.objects.filter(pk=peer.pk).update(port=verification_scp)

    response = helpdesk_client.post(echo_url(peer))
    page = helpdesk_client.get(response["Location"])

    row = page.context["state"].remote_aes[0]
    assert (row.last_check.ok, row.last_check.result) == (True, "0x0000")
    tests = events("hospital_a", EventType.AUDIT_SEARCHED, object_type="remote_ae")
    assert [(e.outcome, e.detail["status"]) for e in tests] == [
        (Outcome.SUCCESS, "0x0000")
    ]


def test_a_peer_that_does_not_answer_is_recorded_as_a_failure(
    helpdesk_client: Client, peer: RemoteApplicationEntity, events: Events
) -> None:
    helpdesk_client.post(echo_url(peer))

    with schema_context("hospital_a"):
        check = ConnectionCheck.objects.get()
    assert (check.ok, check.result, check.checked_by_username) == (
        False,
        "no answer",
        "help.desk",
    )
    assert events("public", EventType.AUDIT_SEARCHED, outcome=Outcome.FAILURE)


def test_an_unknown_remote_ae_is_404(helpdesk_client: Client, events: Events) -> None:
    response = helpdesk_client.post(
        f"{CONSOLE}tenants/hospital_a/remote-aes/9999/echo/"
    )

    assert response.status_code == 404
    denied = events("hospital_a", EventType.ACCESS_DENIED)
    assert [e.detail["reason"] for e in denied] == ["unknown remote AE"]


def test_it_shows_whether_the_listener_and_the_workers_answer(
    helpdesk_client: Client,
    verification_scp: int,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    cache.clear()
    settings.NIMBUS_DICOM_HOST = "127.0.0.1"
    settings.NIMBUS_DICOM_PORT = verification_scp
    up = helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/").context["state"]

    cache.clear()
    settings.NIMBUS_DICOM_PORT = free_port()
    down = helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/").context["state"]

    assert (up.listener.ok, up.listener.result) == (True, "0x0000")
    assert (down.listener.ok, down.listener.result) == (False, "no answer")
    # No Celery worker runs beside these tests.
    assert up.workers == 0
