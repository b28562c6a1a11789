"""The dictation socket: who may dictate, and what reaches the report."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import ApiToken, User
from config.asgi import application
from conftest import tenant_client
from pacs.models import Study
from reporting.dictation_consumer import (
    CLOSE_NO_ENGINE,
    CLOSE_NOT_FOUND,
    CLOSE_SIGNED,
    CLOSE_TOO_FAR_BEHIND,
)
from reporting.models import Report, ReportStatus
from reporting.tests import speech_audio
from reporting.tests.test_consumer import session_cookie, socket_for
from tenants.models import Tenant

pytestmark = pytest.mark.django_db
CHUNK = 3200  # 100 ms of audio, as the browser's worklet sends it


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in test_consumer: channels' database calls share the test transaction.
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def dictation_socket(study: Study, **credentials: str) -> WebsocketCommunicator:
    """A client of the dictation socket, with the headers of an editor's socket."""
    headers = socket_for(study, **credentials).scope["headers"]
    path = f"/ws/studies/{study.study_instance_uid}/dictation/"
    return WebsocketCommunicator(application, path, headers=headers)


async def stream(socket: WebsocketCommunicator, audio: bytes) -> None:
    for start in range(0, len(audio), CHUNK):
        await socket.send_to(bytes_data=audio[start : start + CHUNK])


async def stop_and_collect(socket: WebsocketCommunicator, until: str) -> list[Any]:
    """Send stop; answer every message up to the first of type ``until``."""
    await socket.send_to(text_data=json.dumps({"type": "stop"}))
    messages = [json.loads(await socket.receive_from(timeout=60))]
    while messages[-1]["type"] != until:
        messages.append(json.loads(await socket.receive_from(timeout=60)))
    return messages


async def say(socket: WebsocketCommunicator, pcm: bytes) -> dict[str, Any]:
    """Stream one utterance as the browser does, stop, and wait for its final."""
    silence = b"\0" * 6400
    await stream(socket, silence + pcm + silence)
    messages = await stop_and_collect(socket, until="final")
    return messages[-1]


def spoken(text: str, tmp_path: Path, voice: str = "slt") -> bytes:
    return speech_audio.speak(text, voice, tmp_path / f"{voice}.wav")


def test_it_writes_what_the_radiologist_says_into_the_report(
    token_a: str, study: Study, tmp_path: Path
) -> None:
    audio = spoken("there is a small left pleural effusion period", tmp_path)

    async def scenario() -> None:
        socket = dictation_socket(study, token=token_a)
        assert (await socket.connect())[0]
        try:
            final = await say(socket, audio)
        finally:
            await socket.disconnect()
        assert final["text"] == "There is a small left pleural effusion."

    async_to_sync(scenario)()
    report = Report.objects.get(study=study)
    assert report.text == "There is a small left pleural effusion."
    assert report.version == 1


def test_it_shows_partial_text_while_the_radiologist_talks(
    token_a: str, study: Study, tmp_path: Path
) -> None:
    audio = spoken("the lungs are clear", tmp_path)

    async def scenario() -> None:
        socket = dictation_socket(study, token=token_a)
        assert (await socket.connect())[0]
        try:
            await stream(socket, audio)
            messages = await stop_and_collect(socket, until="final")
        finally:
            await socket.disconnect()
        partials = [m["text"] for m in messages if m["type"] == "partial"]
        # Partial text is the decoder's best guess so far; the final corrects it.
        assert len(partials) >= 2
        assert partials[-1].startswith("the lungs")
        assert messages[-1] == {"type": "final", "text": "The lungs are clear"}

    async_to_sync(scenario)()


def test_a_spoken_next_field_reaches_every_open_editor(
    client_a: Client, study: Study, tmp_path: Path
) -> None:
    audio = spoken("normal study next field", tmp_path)
    cookie = session_cookie(client_a)

    async def scenario() -> None:
        editor = socket_for(study, cookie=cookie)
        microphone = dictation_socket(study, cookie=cookie)
        assert (await editor.connect())[0]
        assert (await microphone.connect())[0]
        try:
            assert (await editor.receive_json_from(timeout=5))["type"] == "report"
            await stream(microphone, audio)
            messages = await stop_and_collect(microphone, until="command")
            on_editor = await editor.receive_json_from(timeout=5)
        finally:
            await microphone.disconnect()
            await editor.disconnect()
        finals = [m["text"] for m in messages if m["type"] == "final"]
        assert finals == ["Normal study"]
        assert messages[-1] == {"type": "command", "command": "next_field"}
        assert on_editor == {"type": "command", "command": "next_field"}

    async_to_sync(scenario)()


def test_it_refuses_a_referrer(tenant_a: Tenant, referrer: User, study: Study) -> None:
    cookie = session_cookie(tenant_client(tenant_a, referrer))

    async def scenario() -> None:
        connected, code = await dictation_socket(study, cookie=cookie).connect()
        assert not connected
        assert code == CLOSE_NOT_FOUND

    async_to_sync(scenario)()


def test_it_refuses_a_radiologist_of_another_tenant(
    study: Study, tenant_b: Tenant, radiologist_b: User
) -> None:
    with tenant_context(tenant_b):
        _token, raw = ApiToken.issue(radiologist_b)

    async def scenario() -> None:
        socket = dictation_socket(study, host="b.localhost", token=raw)
        connected, code = await socket.connect()
        assert not connected
        assert code == CLOSE_NOT_FOUND

    async_to_sync(scenario)()


def test_it_refuses_a_page_of_another_tenant_as_origin(
    client_a: Client, study: Study
) -> None:
    headers = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://b.localhost"),
        (b"cookie", session_cookie(client_a).encode()),
    ]
    path = f"/ws/studies/{study.study_instance_uid}/dictation/"

    async def scenario() -> None:
        connected, _code = await WebsocketCommunicator(
            application, path, headers=headers
        ).connect()
        assert not connected

    async_to_sync(scenario)()


def test_it_answers_within_a_second_after_the_stop(
    token_a: str, study: Study, tmp_path: Path
) -> None:
    audio = spoken("there is no pneumothorax", tmp_path)

    async def scenario() -> None:
        socket = dictation_socket(study, token=token_a)
        assert (await socket.connect())[0]
        try:
            await stream(socket, audio)
            started = time.monotonic()
            await stop_and_collect(socket, until="final")
            assert time.monotonic() - started < 1.0
        finally:
            await socket.disconnect()

    async_to_sync(scenario)()


def test_it_refuses_to_dictate_into_a_signed_report(token_a: str, study: Study) -> None:
    Report.objects.create(study=study, status=ReportStatus.SIGNED, text="Done.")

    async def scenario() -> None:
        connected, code = await dictation_socket(study, token=token_a).connect()
        assert not connected
        assert code == CLOSE_SIGNED

    async_to_sync(scenario)()


def test_it_closes_when_the_audio_outruns_recognition(
    token_a: str, study: Study, settings: Any
) -> None:
    settings.NIMBUS_SPEECH_MAX_BUFFER_SECONDS = 1

    async def scenario() -> None:
        socket = dictation_socket(study, token=token_a)
        assert (await socket.connect())[0]
        # Two seconds in one frame: more than may wait for the recogniser.
        await socket.send_to(bytes_data=b"\0" * 64000)
        closed = await socket.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": CLOSE_TOO_FAR_BEHIND}

    async_to_sync(scenario)()


def test_it_refuses_a_language_the_engine_cannot_recognise(
    token_a: str, study: Study, settings: Any
) -> None:
    settings.NIMBUS_SPEECH_LANGUAGE = "nl"

    async def scenario() -> None:
        connected, code = await dictation_socket(study, token=token_a).connect()
        assert not connected
        assert code == CLOSE_NO_ENGINE

    async_to_sync(scenario)()
