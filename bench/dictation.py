"""The dictation section of `make bench`: from the end of a sentence to its text.

    .venv/bin/python bench/dictation.py [--sentences 20]

A real stack (Daphne, worker, PostgreSQL, Redis) on 127.0.0.1 receives one
CT slice, then a dictation client streams flite's slt voice reading report
sentences to /ws/studies/<uid>/dictation/ in real time (100 ms frames, paced
as a microphone delivers them) and sends {"type": "stop"} as the sentence
ends, as push-to-talk does. Measured per sentence, from that stop:

- "final": the {"type": "final"} frame on the dictation socket;
- "on screen": the report update with that text on a second socket, the
  report editor's, which is what every open editor shows.

`dictation_section()` returns the rows for bench/run.py; the target (under
1 second) is stated in docs/decisions.md, not asserted here.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reporting.tests.speech_audio import (  # noqa: E402
    speak,
    spoken_sentences,
    word_errors,
    words_of,
)
from tests.support.stack import Stack, free_port, running_stack, wait_for  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "dicom"
CT_SLICE = SHARED / "tcia-pancreas-ct" / "series-201" / "1-030.dcm"
CHUNK = 3200  # 100 ms of 16 kHz s16le
OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_PING = 0x1, 0x2, 0x8, 0x9


class WebSocketClient:
    """Just enough RFC 6455 for a benchmark: whole frames, client-side masking.

    A reader thread stamps each text frame with the time it arrived, so a
    latency is not inflated by when the benchmark gets round to reading it.
    """

    def __init__(self, stack: Stack, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", stack.web_port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {stack.host}:{stack.web_port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {stack.token}\r\n\r\n"
        )
        self.sock.sendall(handshake.encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += self.sock.recv(1)
        if b" 101 " not in answer.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"handshake refused: {answer[:80]!r}")
        self.messages: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, payload: bytes, opcode: int = OPCODE_BINARY) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with self.lock:
            self.sock.sendall(header + mask + masked)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(json.dumps(message).encode(), OPCODE_TEXT)

    def next(self, kind: str, timeout: float = 30) -> tuple[float, dict[str, Any]]:
        """The arrival time and body of the next message of type ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            arrived, message = self.messages.get(timeout=deadline - time.monotonic())
            if message.get("type") == kind:
                return arrived, message

    def close(self) -> None:
        try:
            self.send(struct.pack("!H", 1000), OPCODE_CLOSE)
        finally:
            self.sock.close()

    def _read(self) -> None:
        try:
            while True:
                first, second = self._exactly(2)
                length = second & 0x7F
                if length == 126:
                    (length,) = struct.unpack("!H", self._exactly(2))
                elif length == 127:
                    (length,) = struct.unpack("!Q", self._exactly(8))
                payload = self._exactly(length)
                opcode = first & 0x0F
                if opcode == OPCODE_TEXT:
                    self.messages.put((time.monotonic(), json.loads(payload)))
                elif opcode == OPCODE_PING:
                    self.send(payload, 0xA)
                elif opcode == OPCODE_CLOSE:
                    return
        except OSError:
            return

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            more = self.sock.recv(count - len(data))
            if not more:
                raise OSError("connection closed")
            data += more
        return data


def store_study(stack: Stack) -> str:
    import pydicom

    subprocess.run(
        ["storescu", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)]
        + [str(CT_SLICE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    uid = str(pydicom.dcmread(CT_SLICE, stop_before_pixels=True).StudyInstanceUID)
    wait_for(
        lambda: (
            stack.sql(
                "SELECT count(*) FROM pacs_study WHERE study_instance_uid = %s", uid
            )
            == [(1,)]
        ),
        what="the study indexed",
    )
    return uid


def dictate(
    stack: Stack, study_uid: str, sentences: list[str], folder: Path
) -> tuple[list[float], list[float], float]:
    """Seconds from each stop to its final and to the editor; the run's WER."""
    audio = [
        speak(text, "slt", folder / f"{i}.wav") for i, text in enumerate(sentences)
    ]
    editor = WebSocketClient(stack, f"/ws/studies/{study_uid}/report/")
    microphone = WebSocketClient(stack, f"/ws/studies/{study_uid}/dictation/")
    to_final, to_screen = [], []
    errors = words = 0
    try:
        editor.next("report")
        for text, pcm in zip(sentences, audio, strict=True):
            started = time.monotonic()
            for index, start in enumerate(range(0, len(pcm), CHUNK)):
                # Paced like a microphone: chunk n leaves at n x 100 ms.
                time.sleep(max(0.0, started + index * 0.1 - time.monotonic()))
                microphone.send(pcm[start : start + CHUNK])
            time.sleep(max(0.0, started + len(pcm) / 32000 - time.monotonic()))
            stopped = time.monotonic()
            microphone.send_json({"type": "stop"})
            final_at, final = microphone.next("final")
            while True:
                screen_at, state = editor.next("report")
                if state["text"].endswith(final["text"]):
                    break
            to_final.append(final_at - stopped)
            to_screen.append(screen_at - stopped)
            errors += word_errors(text.split(), words_of(final["text"]))
            words += len(text.split())
    finally:
        microphone.close()
        editor.close()
    return to_final, to_screen, errors / max(words, 1)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def dictation_section(sentences: int = 20) -> dict[str, str]:
    """{metric: figure} for the dictation latency, run on a fresh stack."""
    chosen = spoken_sentences()[:sentences]
    with tempfile.TemporaryDirectory(prefix="nimbus-dictation-bench-") as scratch:
        tmp = Path(scratch)
        with running_stack(tmp / "stack", free_port()) as stack:
            study_uid = store_study(stack)
            print(f"measuring dictation latency over {len(chosen)} sentences")
            to_final, to_screen, wer = dictate(stack, study_uid, chosen, tmp)
    return {
        "end of sentence -> final text p50 (ms)": ms(percentile(to_final, 0.5)),
        "end of sentence -> final text p95 (ms)": ms(percentile(to_final, 0.95)),
        "end of sentence -> other editor p50 (ms)": ms(percentile(to_screen, 0.5)),
        "end of sentence -> other editor p95 (ms)": ms(percentile(to_screen, 0.95)),
        "end of sentence -> other editor mean (ms)": ms(statistics.fmean(to_screen)),
        "word error rate, flite slt": f"{wer:.1%}",
        "target": "under 1000 ms",
    }


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def print_dictation_table(rows: dict[str, str]) -> None:
    width = max(len(metric) for metric in rows) + 2
    print()
    print(
        "Dictation (PocketSphinx, radiology model; real-time audio over the websocket)"
    )
    for metric, figure in rows.items():
        print(f"{metric:<{width}}{figure:>14}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=20)
    args = parser.parse_args()
    print_dictation_table(dictation_section(args.sentences))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
