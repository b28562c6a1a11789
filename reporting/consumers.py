"""Live fan-out of a report to every editor that has it open."""

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404
from django_tenants.utils import schema_context

from reporting.actions import do_read_report, report_group_name
from reporting.selectors import (
    get_readable_study,
    report_state,
    shows_nothing_new,
    state_for,
)
from tenants.channels import SessionBoundConsumerMixin

logger = logging.getLogger(__name__)

# Close codes in the 4000 range are the application's (RFC 6455 7.4.2).
CLOSE_NOT_FOUND = 4404
CLOSE_ERROR = 4500


class ReportConsumer(SessionBoundConsumerMixin, AsyncJsonWebsocketConsumer):
    """``/ws/studies/<study_uid>/report/``: pushes ``{"type": "report", ...}``.

    The socket only listens: edits go through the REST API, whose actions
    broadcast the new state to the report's group after commit.
    """

    group_name: str | None = None
    # The last state sent, so that a referrer, who sees the report as issued,
    # is not sent the same state again for each save of an unsigned edit.
    last_sent: dict[str, Any] | None = None

    async def connect(self) -> None:
        schema: str = self.scope["tenant_schema"]
        study_uid: str = self.scope["url_route"]["kwargs"]["study_uid"]
        try:
            report_id, state = await self._open_report(schema, study_uid)
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except Exception:
            logger.exception("Report socket failed to open for study %s", study_uid)
            await self.close(code=CLOSE_ERROR)
            return

        self.group_name = report_group_name(schema, report_id)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self._send_state(state)

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Nothing to receive: a client that writes here gets no answer.
        return None

    async def report_update(self, event: dict[str, Any]) -> None:
        # One broadcast for every reader: each socket sends what its user may see.
        state = state_for(self.scope["user"], event["report"])
        if shows_nothing_new(self.last_sent, state):
            return
        await self._send_state(state)

    async def _send_state(self, state: dict[str, Any]) -> None:
        self.last_sent = state
        await self.send_json({"type": "report", **state})

    async def report_command(self, event: dict[str, Any]) -> None:
        # A spoken editor command (actions.do_send_editor_command).
        await self.send_json({"type": "command", "command": event["command"]})

    @database_sync_to_async
    def _open_report(self, schema: str, study_uid: str) -> tuple[int, dict[str, Any]]:
        with schema_context(schema):
            user = self.scope["user"]
            study = get_readable_study(user, study_uid)
            report = do_read_report(user, study, via="websocket")
            return report.pk, state_for(user, report_state(report))
