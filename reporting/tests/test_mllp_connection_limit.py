"""The HL7 listener's connection limit, over real sockets on localhost."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import hl7 as python_hl7
import pytest

from reporting.mllp import END_BLOCK, START_BLOCK, MllpServer
from reporting.tests.test_orders import ORM, ack_code, running_listener_command
from tenants.models import Tenant
from tests.support.stack import wait_for

MESSAGE = (
    b"MSH|^~\\&|RIS|RADIOLOGY|NIMBUS|hospital_a|20240506080000||ORM^O01|1|P|2.5.1\r"
)


def answer(frame: bytes) -> bytes:
    return b"MSH|^~\\&|NIMBUS|||||||ACK|1|P|2.5.1\rMSA|AA|1\r"


@contextmanager
def listener(max_connections: int) -> Iterator[MllpServer]:
    server = MllpServer(
        ("127.0.0.1", 0), answer, max_connections=max_connections, idle_timeout=30
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def exchange(connection: socket.socket, message: bytes = MESSAGE) -> bytes:
    """Send one framed message; the framed answer, or b"" when the peer closed."""
    connection.sendall(START_BLOCK + message + END_BLOCK)
    received = b""
    while END_BLOCK not in received:
        try:
            chunk = connection.recv(65536)
        except ConnectionResetError:
            return b""
        if not chunk:
            return b""
        received += chunk
    return received


def closed_by_the_listener(connection: socket.socket) -> bool:
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_connection_over_the_limit_is_closed_and_the_open_ones_carry_on() -> None:
    with listener(max_connections=2) as server:
        first, second = connect(server.port), connect(server.port)
        assert b"MSA|AA" in exchange(first)
        assert b"MSA|AA" in exchange(second)

        third = connect(server.port)

        assert closed_by_the_listener(third)
        assert b"MSA|AA" in exchange(first)
        assert b"MSA|AA" in exchange(second)
        first.close()
        wait_for(lambda: server.open_connections == 1, 10, what="a slot freed")
        fourth = connect(server.port)
        assert b"MSA|AA" in exchange(fourth)
        for connection in (second, third, fourth):
            connection.close()


def test_a_flood_of_connections_leaves_the_listener_answering() -> None:
    with listener(max_connections=4) as server:
        flood = [connect(server.port) for _ in range(40)]
        wait_for(lambda: server.open_connections == 4, 10, what="four served")
        refused = sum(closed_by_the_listener(c) for c in flood[4:])
        for connection in flood:
            connection.close()
        wait_for(lambda: server.open_connections == 0, 10, what="every slot freed")

        after = connect(server.port)
        assert b"MSA|AA" in exchange(after)
        after.close()

    assert refused == 36


@pytest.mark.django_db
def test_the_listener_command_takes_its_limit_from_the_environment(
    tenant_a: Tenant,
) -> None:
    with running_listener_command(NIMBUS_HL7_MAX_CONNECTIONS="1") as (port, line):
        assert "HL7 listener on 127.0.0.1" in line
        held = connect(port)
        order = ORM.replace("|hospital_a|", "|NOWHERE|").encode()
        assert ack_code(parse(exchange(held, order))) == "AR"

        extra = connect(port)

        assert closed_by_the_listener(extra)
        assert ack_code(parse(exchange(held, order))) == "AR"
        held.close()
        extra.close()


def parse(framed: bytes) -> python_hl7.Message:
    return python_hl7.parse(framed.decode("utf-8").strip("\x0b\x1c\r"))
