"""MLLP over TLS, both ways, against real listeners on 127.0.0.1.

Reports go to a test RIS that serves TLS with a certificate of a throw-away
CA; orders come in to the order listener over TLS. Each side verifies what
it should: Nimbus the RIS's chain and host name, the RIS (when it asks) and
the order listener (when configured) the client's certificate.
"""

import html
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery.exceptions import Retry
from django.test import Client

from accounts.models import User
from conftest import current_totp
from pacs.dimse.transport import tls_context
from pacs.models import Study
from reporting import mllp
from reporting.actions import do_save_report_draft, do_sign_report
from reporting.hl7_listener import answer_order_message
from reporting.models import DeliveryState, OutboundMessage
from reporting.tasks import deliver_message
from reporting.tests.conftest import free_port, point_ris_at
from reporting.tests.helpers import back_off_elapses
from reporting.tests.test_orders import ORM, InlineMllpServer, running_listener_command
from tenants.models import Tenant
from tests.support.pki import Issued, ThrowAwayCA
from tests.support.ris import RisListener, server_tls

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Pki:
    ca: Path
    ris: Issued
    nimbus: Issued
    ris_for_another_host: Issued
    ris_from_another_ca: Issued
    client_from_another_ca: Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, rogue = ThrowAwayCA(folder), ThrowAwayCA(folder, "rogue-ca")
    return Pki(
        ca=ca.cert,
        ris=ca.issue("ris", "127.0.0.1", "localhost"),
        nimbus=ca.issue("nimbus"),
        ris_for_another_host=ca.issue("other-ris", "ris.example.org"),
        ris_from_another_ca=rogue.issue("impostor-ris", "127.0.0.1"),
        client_from_another_ca=rogue.issue("impostor-client"),
    )


def use_tls(tenant: Tenant, port: int, ca: Path, client: Issued | None = None) -> None:
    point_ris_at(tenant, port)
    Tenant.objects.filter(pk=tenant.pk).update(
        ris_tls=True,
        ris_tls_ca_file=str(ca),
        ris_tls_cert_file=str(client.cert) if client else "",
        ris_tls_key_file=str(client.key) if client else "",
    )


def signed_message(user: User, study: Study) -> OutboundMessage:
    do_save_report_draft(user, study, "No acute finding.")
    return do_sign_report(user, study, current_totp()).messages.latest("id")


def try_delivery(message: OutboundMessage) -> OutboundMessage:
    """One run of the Celery task, due; a retry it asks for is not an error here."""
    back_off_elapses(message)
    try:
        deliver_message.run(message.pk)
    except Retry:
        pass
    message.refresh_from_db()
    return message


def ris(issued: Issued, client_ca: Path | None = None, port: int = 0) -> RisListener:
    context = server_tls(str(issued.cert), str(issued.key), str(client_ca or ""))
    return RisListener(port=port, tls=context)


# --- Nimbus to the RIS ---------------------------------------------------------


def test_a_signed_report_reaches_the_ris_over_tls_with_its_ack_checked(
    tenant_a: Tenant, radiologist: User, study: Study, pki: Pki
) -> None:
    message = signed_message(radiologist, study)

    with ris(pki.ris) as listener:
        use_tls(tenant_a, listener.port, pki.ca)
        delivered = try_delivery(message)

    assert delivered.state == DeliveryState.DELIVERED
    assert delivered.ack_code == "AA"
    [received] = listener.received
    assert str(received.segment("MSH")(10)) == message.message_control_id
    assert listener.peer_certificates == [{}]


def test_a_ris_certificate_of_another_ca_is_refused_shown_retried_then_delivered_once(
    tenant_a: Tenant, radiologist: User, study: Study, pki: Pki, client_a: Client
) -> None:
    port = free_port()
    message = signed_message(radiologist, study)
    use_tls(tenant_a, port, pki.ca)

    with ris(pki.ris_from_another_ca, port=port) as impostor:
        with pytest.raises(Retry):
            deliver_message.run(message.pk)
    message.refresh_from_db()
    page = html.unescape(client_a.get("/reports/outbound/").content.decode())

    assert impostor.received == []
    assert message.state == DeliveryState.RETRYING
    assert "certificate was not accepted" in message.last_error
    assert "certificate verify failed" in message.last_error or "issuer" in (
        message.last_error
    )
    assert message.last_error in page

    # The RIS gets a certificate of the right CA; retries, some twice.
    with ris(pki.ris, port=port) as fixed:
        for _ in range(3):
            try_delivery(message)

    assert message.state == DeliveryState.DELIVERED
    assert [str(m.segment("MSH")(10)) for m in fixed.received] == [
        message.message_control_id
    ]


def test_a_ris_certificate_for_another_host_name_is_refused(
    tenant_a: Tenant, radiologist: User, study: Study, pki: Pki
) -> None:
    message = signed_message(radiologist, study)

    with ris(pki.ris_for_another_host) as listener:
        use_tls(tenant_a, listener.port, pki.ca)
        refused = try_delivery(message)

    assert listener.received == []
    assert refused.state == DeliveryState.RETRYING
    assert "127.0.0.1" in refused.last_error
    assert "not accepted" in refused.last_error


def test_a_ris_that_requires_a_client_certificate_gets_the_tenants(
    tenant_a: Tenant, radiologist: User, study: Study, pki: Pki
) -> None:
    message = signed_message(radiologist, study)

    with ris(pki.ris, client_ca=pki.ca) as listener:
        use_tls(tenant_a, listener.port, pki.ca)
        without = try_delivery(message).state, message.last_error
        use_tls(tenant_a, listener.port, pki.ca, client=pki.nimbus)
        delivered = try_delivery(message)

    assert without[0] == DeliveryState.RETRYING
    assert "client certificate" in without[1]
    assert delivered.state == DeliveryState.DELIVERED
    assert len(listener.received) == 1
    subject = dict(item[0] for item in listener.peer_certificates[-1]["subject"])  # type: ignore[union-attr]
    assert subject["commonName"] == "nimbus"


def test_the_deployments_ca_and_client_certificate_serve_a_tenant_that_names_none(
    tenant_a: Tenant, radiologist: User, study: Study, pki: Pki, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.NIMBUS_HL7_TLS_CA = str(pki.ca)
    settings.NIMBUS_HL7_TLS_CERT = str(pki.nimbus.cert)
    settings.NIMBUS_HL7_TLS_KEY = str(pki.nimbus.key)
    message = signed_message(radiologist, study)

    with ris(pki.ris, client_ca=pki.ca) as listener:
        point_ris_at(tenant_a, listener.port)
        Tenant.objects.filter(pk=tenant_a.pk).update(ris_tls=True)
        delivered = try_delivery(message)

    assert delivered.state == DeliveryState.DELIVERED
    assert len(listener.received) == 1


def test_an_unreadable_ca_bundle_is_a_delivery_failure_that_keeps_the_message(
    tenant_a: Tenant, radiologist: User, study: Study, pki: Pki, tmp_path: Path
) -> None:
    message = signed_message(radiologist, study)

    with ris(pki.ris) as listener:
        use_tls(tenant_a, listener.port, tmp_path / "missing-ca.pem")
        failed = try_delivery(message)

    assert listener.received == []
    assert failed.state == DeliveryState.RETRYING
    assert "TLS set-up failed" in failed.last_error


def test_a_tenant_needs_both_client_certificate_and_key(tenant_a: Tenant) -> None:
    from django.core.exceptions import ValidationError

    tenant_a.ris_tls_cert_file = "/etc/nimbus/ris-client.crt"

    with pytest.raises(ValidationError) as refused:
        tenant_a.full_clean(exclude=["schema_name"])

    assert set(refused.value.message_dict) == {"ris_tls_key_file"}


# --- The RIS to the order listener -----------------------------------------------


def send_order(server: InlineMllpServer, tls: mllp.ClientTls) -> mllp.Acknowledgement:
    """Send ORM over TLS from another thread while the listener answers on this one."""
    outcome: list[mllp.Acknowledgement | mllp.MllpError] = []

    def client() -> None:
        try:
            outcome.append(
                mllp.send_message("127.0.0.1", server.port, ORM, 10, tls=tls)
            )
        except mllp.MllpError as error:
            outcome.append(error)

    sender = threading.Thread(target=client)
    sender.start()
    server.handle_request()
    sender.join(10)
    server.server_close()
    if isinstance(outcome[0], mllp.MllpError):
        raise outcome[0]
    return outcome[0]


def order_listener(pki: Pki) -> InlineMllpServer:
    context = tls_context(
        str(pki.ris.cert), str(pki.ris.key), str(pki.ca), require_client=True
    )
    return InlineMllpServer(("127.0.0.1", 0), answer_order_message, ssl_context=context)


def test_the_order_listener_over_tls_takes_an_orm_from_a_client_with_a_certificate(
    tenant_a: Tenant, pki: Pki
) -> None:
    client = mllp.ClientTls(
        ca_file=str(pki.ca),
        cert_file=str(pki.nimbus.cert),
        key_file=str(pki.nimbus.key),
    )

    ack = send_order(order_listener(pki), client)

    assert (ack.code, ack.control_id) == ("AA", "ORD1")
    assert Study.objects.filter(accession_number="ACC-900").exists()


@pytest.mark.parametrize("certificate", ["none", "another CA"])
def test_the_order_listener_refuses_a_client_without_a_certificate_when_required(
    tenant_a: Tenant, pki: Pki, certificate: str
) -> None:
    impostor = pki.client_from_another_ca
    client = mllp.ClientTls(
        ca_file=str(pki.ca),
        cert_file=str(impostor.cert) if certificate != "none" else "",
        key_file=str(impostor.key) if certificate != "none" else "",
    )

    with pytest.raises(mllp.MllpError):
        send_order(order_listener(pki), client)

    assert not Study.objects.filter(accession_number="ACC-900").exists()


@pytest.fixture
def tls_listener_command(pki: Pki) -> Iterator[int]:
    with running_listener_command(
        NIMBUS_HL7_LISTENER_TLS_CERT=str(pki.ris.cert),
        NIMBUS_HL7_LISTENER_TLS_KEY=str(pki.ris.key),
        NIMBUS_HL7_LISTENER_TLS_CA=str(pki.ca),
        NIMBUS_HL7_LISTENER_TLS_REQUIRE_CLIENT_CERT="true",
    ) as (port, first_line):
        assert "over TLS" in first_line
        yield port


def test_the_run_hl7_listener_command_serves_tls_to_certified_clients_only(
    tenant_a: Tenant, pki: Pki, tls_listener_command: int
) -> None:
    # A facility that is no tenant: the command answers without writing.
    message = ORM.replace("|hospital_a|", "|NOWHERE|")
    certified = mllp.ClientTls(str(pki.ca), str(pki.nimbus.cert), str(pki.nimbus.key))

    ack = mllp.send_message(
        "127.0.0.1", tls_listener_command, message, 10, tls=certified
    )
    with pytest.raises(mllp.MllpError):
        mllp.send_message(
            "127.0.0.1",
            tls_listener_command,
            message,
            10,
            tls=mllp.ClientTls(str(pki.ca)),
        )
    with pytest.raises(mllp.MllpError):
        mllp.send_message("127.0.0.1", tls_listener_command, message, 10)

    assert ack.code == "AR"
