"""``/ws/studies/<study_uid>/dictation/``: speech in, report text out.

The client streams 16 kHz mono s16le PCM as binary frames and sends
``{"type": "stop"}`` at the end of an utterance. The socket answers
``{"type": "partial", "text": ...}`` while it listens, ``{"type": "final",
"text": ...}`` per finished utterance (appended to the report through the
same action as the dictation API, so every open editor shows it), and
``{"type": "command", "command": "next_field"}`` for spoken editor commands.
"""

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import connection
from django.http import Http404
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context

from accounts.models import Role
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from pacs.access import get_study_for_user
from pacs.models import Study
from reporting.actions import (
    ReportError,
    ReportIsSigned,
    do_append_report_dictation,
    do_get_or_create_report,
    do_send_editor_command,
)
from reporting.selectors import expand_macro
from reporting.speech.commands import Action, apply_spoken_commands
from reporting.speech.engine import (
    SAMPLE_RATE,
    Recognizer,
    SpeechUnavailable,
    check_engine_configuration,
    recognizer_for,
)
from tenants.channels import SessionBoundConsumerMixin

logger = logging.getLogger(__name__)

# Close codes in the 4000 range are the application's (RFC 6455 7.4.2).
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_SIGNED = 4409
CLOSE_TOO_FAR_BEHIND = 4429
CLOSE_ERROR = 4500
CLOSE_NO_ENGINE = 4503
BYTES_PER_SECOND = SAMPLE_RATE * 2
_STOP = b""

check_engine_configuration()
# Recognition is CPU work in C: it runs here, never on the event loop, and
# each connection's chunks run one after another (its recogniser is not
# thread-safe), so the pool bounds the CPU that dictation can take.
_executor = ThreadPoolExecutor(
    max_workers=settings.NIMBUS_SPEECH_THREADS, thread_name_prefix="speech"
)


def do_dictate_macro(schema: str, user: Any, study: Study, name: str) -> str | None:
    """Append the macro called ``name`` to the report; its text, or None if unknown.

    Raises
    ------
    ReportError
        When the report is signed or another radiologist holds its lock.
    """
    with schema_context(schema):
        text = expand_macro(connection.tenant, name)
        if text is None:
            return None
        do_append_report_dictation(user, study, text)
        return text


class DictationConsumer(SessionBoundConsumerMixin, AsyncWebsocketConsumer):
    recognizer: Recognizer | None = None
    worker: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        schema: str = self.scope["tenant_schema"]
        study_uid: str = self.scope["url_route"]["kwargs"]["study_uid"]
        try:
            self.study, language = await self._writable_study(schema, study_uid)
            self.language = language
            self.recognizer = await self._in_thread(recognizer_for, language, schema)
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except PermissionError:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        except ReportIsSigned:
            await self.close(code=CLOSE_SIGNED)
            return
        except SpeechUnavailable as error:
            logger.warning("Dictation unavailable for study %s: %s", study_uid, error)
            await self.close(code=CLOSE_NO_ENGINE)
            return
        except Exception:
            logger.exception("Dictation socket failed to open for study %s", study_uid)
            await self.close(code=CLOSE_ERROR)
            return

        self.schema = schema
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.queued_bytes = 0
        self.worker = asyncio.create_task(self._recognise())
        await self.accept()

    async def disconnect(self, code: int) -> None:
        # Words after the last "stop" are dropped: only a stop commits text.
        if self.worker is not None:
            self.worker.cancel()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        if bytes_data:
            limit = settings.NIMBUS_SPEECH_MAX_BUFFER_SECONDS * BYTES_PER_SECOND
            if self.queued_bytes + len(bytes_data) > limit:
                logger.warning("Dictation fell too far behind; closing the socket")
                await self.close(code=CLOSE_TOO_FAR_BEHIND)
                return
            self.queued_bytes += len(bytes_data)
            self.queue.put_nowait(bytes_data)
        elif text_data:
            try:
                message = json.loads(text_data)
            except ValueError:
                return
            if isinstance(message, dict) and message.get("type") == "stop":
                self.queue.put_nowait(_STOP)

    async def _recognise(self) -> None:
        """Feed the queued audio to the recogniser in order; one edge for errors."""
        assert self.recognizer is not None
        partial = ""
        try:
            while True:
                chunk = await self.queue.get()
                self.queued_bytes -= len(chunk)
                if chunk == _STOP:
                    await self._finish_utterance()
                    partial = ""
                    continue
                heard = await self._in_thread(self.recognizer.accept, chunk)
                if heard != partial:
                    partial = heard
                    await self.send(json.dumps({"type": "partial", "text": heard}))
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Dictation failed for study %s", self.study.pk)
            await self.close(code=CLOSE_ERROR)

    async def _finish_utterance(self) -> None:
        assert self.recognizer is not None
        started = time.monotonic()
        words = await self._in_thread(self.recognizer.end_utterance)
        pieces = apply_spoken_commands(words, self.language)
        for piece in pieces:
            if piece.command == Action.MACRO:
                await self._insert_macro(piece.text)
                continue
            if piece.command:
                # To this client, and to every open editor of the report.
                await self.send(
                    json.dumps({"type": "command", "command": piece.command})
                )
                await self._in_thread(
                    do_send_editor_command, self.schema, self.report_id, piece.command
                )
                continue
            try:
                await self._append(piece.text)
            except ReportError as error:
                # Signed meanwhile, or another radiologist holds the lock.
                await self.send(json.dumps({"type": "error", "message": str(error)}))
                continue
            await self.send(json.dumps({"type": "final", "text": piece.text}))
        if not any(piece.text for piece in pieces):
            # Silence, or only commands: the client still learns the end.
            await self.send(json.dumps({"type": "final", "text": ""}))
        logger.debug(
            "Utterance finished in %d ms", int((time.monotonic() - started) * 1000)
        )

    async def _insert_macro(self, name: str) -> None:
        """A spoken "macro <name>": the tenant's normal text, as dictation."""
        try:
            text = await database_sync_to_async(do_dictate_macro)(
                self.schema, self.scope["user"], self.study, name
            )
        except ReportError as error:
            await self.send(json.dumps({"type": "error", "message": str(error)}))
            return
        if text is None:
            message = _("There is no macro called “%(name)s”.") % {"name": name}
            await self.send(json.dumps({"type": "error", "message": message}))
            return
        await self.send(json.dumps({"type": "final", "text": text}))

    async def _in_thread(self, function: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            _executor, function, *args
        )

    @database_sync_to_async
    def _writable_study(self, schema: str, study_uid: str) -> tuple[Study, str]:
        """The study and dictation language, for a radiologist who may write."""
        with schema_context(schema):
            user = self.scope["user"]
            study = get_study_for_user(user, study_uid)
            # As the dictation API: outsiders get 404 first, then only
            # radiologists may write.
            if getattr(user, "role", None) != Role.RADIOLOGIST:
                # A referrer or helpdesk user who may read the study, reaching
                # for its report: recorded, as a refusal to an outsider is.
                do_record_event(
                    EventType.ACCESS_DENIED,
                    actor=user,
                    outcome=Outcome.FAILURE,
                    object_type="report",
                    object_id=study_uid,
                    study_instance_uid=study_uid,
                    detail={"reason": "only radiologists dictate", "via": "websocket"},
                )
                raise PermissionError(_("Only radiologists may write or sign reports."))
            report = do_get_or_create_report(study)
            if report.is_signed:
                raise ReportIsSigned
            self.report_id = report.pk
            # A report may name its language once templates carry one.
            language = (
                getattr(report, "language", "") or settings.NIMBUS_SPEECH_LANGUAGE
            )
            return study, language

    @database_sync_to_async
    def _append(self, text: str) -> None:
        with schema_context(self.schema):
            do_append_report_dictation(self.scope["user"], self.study, text)
