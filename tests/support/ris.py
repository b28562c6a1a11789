"""A test RIS: an MLLP listener built on the python-hl7 library.

It parses every message with the library, keeps it, and answers an ACK with
the code the test chooses (AA by default, or AE/AR with a reason in MSA-3).
It can be stopped and started again on the same port, like a RIS that goes
down and comes back, and listen over TLS (``tls``, a server context; with
``verify_mode`` set, it asks for Nimbus's client certificate). After a TLS
connection, ``peer_certificates`` holds the client certificate it verified
(an empty dict when none was presented).
"""

import asyncio
import ssl
import threading
from dataclasses import dataclass, field

import hl7
from hl7.mllp import start_hl7_server


@dataclass
class RisListener:
    host: str = "127.0.0.1"
    port: int = 0
    ack_code: str = "AA"
    error_text: str = ""
    tls: ssl.SSLContext | None = None
    received: list[hl7.Message] = field(default_factory=list)
    peer_certificates: list[dict[str, object]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.AbstractServer | None = None
    _thread: threading.Thread | None = None

    async def _handle(self, reader, writer) -> None:  # type: ignore[no-untyped-def]
        if self.tls is not None:
            self.peer_certificates.append(writer.get_extra_info("peercert") or {})
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                self.received.append(message)
                writer.writemessage(self.acknowledge(message))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    def acknowledge(self, message: hl7.Message) -> hl7.Message:
        ack = str(message.create_ack(ack_code=self.ack_code)).rstrip("\r")
        if self.error_text:  # MSA-3, the RIS's reason for refusing, escaped
            ack += "|" + message.escape(self.error_text)
        return hl7.parse(ack + "\r")

    def __enter__(self) -> "RisListener":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> "RisListener":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                start_hl7_server(
                    self._handle,
                    host=self.host,
                    port=self.port,
                    encoding="utf-8",
                    ssl=self.tls,
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return

        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)


def server_tls(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """A RIS's server context; with ``client_ca`` a client certificate is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
