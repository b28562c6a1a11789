"""Live notices for a referrer's open portal pages: new reports, critical findings."""

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import schema_context

from referrals.selectors import is_referrer, unread_count
from reporting.actions import notice_group_name
from tenants.channels import SessionBoundConsumerMixin

# Close codes in the 4000 range are the application's (RFC 6455 7.4.2).
CLOSE_NOT_FOUND = 4404


class NoticeConsumer(SessionBoundConsumerMixin, AsyncJsonWebsocketConsumer):
    """``/ws/referrals/notices/``: pushes ``{"type": "notice", ...}`` to a referrer.

    A message names the kind and the study only; the page reads everything
    else over HTTP, through the portal's access checks. Signing out
    everywhere closes the socket (SessionBoundConsumerMixin).
    """

    group_name: str | None = None

    async def connect(self) -> None:
        user = self.scope["user"]
        if not is_referrer(user):
            await self.close(code=CLOSE_NOT_FOUND)
            return

        self.group_name = notice_group_name(self.scope["tenant_schema"], user.pk)
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json({"type": "unread", "unread": await self._unread()})

    async def disconnect(self, code: int) -> None:
        if self.group_name is not None:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        return None  # The socket only listens.

    async def notice_new(self, event: dict[str, Any]) -> None:
        unread = await self._unread()
        await self.send_json({"type": "notice", **event["notice"], "unread": unread})

    @database_sync_to_async
    def _unread(self) -> int:
        with schema_context(self.scope["tenant_schema"]):
            return unread_count(self.scope["user"])
