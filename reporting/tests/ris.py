"""A RIS stand-in for tests: an MLLP listener on 127.0.0.1 built on python-hl7."""

import socketserver
import threading
from types import TracebackType

import hl7

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    ris: "RisListener"


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        buffer = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while END_BLOCK in buffer:
                frame, buffer = buffer.split(END_BLOCK, 1)
                reply = self.server.ris.acknowledge(frame.lstrip(START_BLOCK))
                self.request.sendall(START_BLOCK + reply + END_BLOCK)


class RisListener:
    """Parses each message it receives and answers ACK AA, or AE with a reason."""

    def __init__(self, port: int = 0, ack_code: str = "AA", error_text: str = ""):
        self.ack_code = ack_code
        self.error_text = error_text
        self.received: list[hl7.Message] = []
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.ris = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def acknowledge(self, frame: bytes) -> bytes:
        message = hl7.parse(frame.decode("utf-8"))
        self.received.append(message)
        ack = str(message.create_ack(self.ack_code)).rstrip("\r")
        if self.error_text:
            ack += "|" + self.error_text.replace("^", "\\S\\")  # MSA-3
        return (ack + "\r").encode("utf-8")

    def __enter__(self) -> "RisListener":
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
