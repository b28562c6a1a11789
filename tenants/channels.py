"""Tenant resolution and authentication for websockets.

django-tenants' middleware only sees HTTP requests, so websockets resolve
their tenant from the Host header here, then authenticate in that tenant's
schema: a session cookie whose second factor is verified, or a bearer token.
"""

from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlparse

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    load_backend,
)
from django.contrib.auth.models import AnonymousUser
from django.utils.crypto import constant_time_compare
from django.utils.module_loading import import_string
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_tenants.utils import get_public_schema_name, schema_context

from accounts.authentication import bearer_token_from_header, user_for_bearer_token
from tenants.models import Domain


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope["headers"]
    }


def _hostname(headers: dict[str, str]) -> str:
    host = headers.get("host", "")
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


def _origin_allowed(origin: str, headers: dict[str, str]) -> bool:
    """Only a page of the same tenant host may open a websocket to it.

    Matching ALLOWED_HOSTS is not enough: it covers every tenant's host, and
    a page on one hospital's host must not read another hospital's reports.
    """
    parsed = urlparse(origin)
    origin_host = (parsed.hostname or "").lower()
    if not origin_host or origin_host != _hostname(headers).lower():
        return False
    request_port = headers.get("host", "").rpartition(":")[2]
    origin_port = str(parsed.port) if parsed.port else ""
    return not request_port.isdigit() or origin_port in ("", request_port)


def tenant_schema_for_host(hostname: str) -> str | None:
    with schema_context(get_public_schema_name()):
        domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if (
        domain is None
        or not domain.tenant.is_active
        or domain.tenant.schema_name == "public"
    ):
        return None
    return domain.tenant.schema_name


def _session_user(session_key: str) -> Any:
    engine = import_string(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    user_id = session.get(SESSION_KEY)
    backend_path = session.get(BACKEND_SESSION_KEY)
    if user_id is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return None
    # A password change ends every session, as it does over HTTP.
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(
        session_hash, user.get_session_auth_hash()
    ):
        return None
    device = Device.from_persistent_id(session.get(DEVICE_ID_SESSION_KEY) or "")
    if device is None or device.user_id != user.pk:
        return None  # password only: not verified
    return user


@database_sync_to_async
def authenticate_scope(headers: dict[str, str]) -> tuple[str | None, Any]:
    schema = tenant_schema_for_host(_hostname(headers))
    if schema is None:
        return None, None
    with schema_context(schema):
        raw_token = bearer_token_from_header(headers.get("authorization", ""))
        if raw_token is not None:
            return schema, user_for_bearer_token(raw_token)
        cookies = SimpleCookie(headers.get("cookie", ""))
        morsel = cookies.get(settings.SESSION_COOKIE_NAME)
        if morsel is None:
            return schema, None
        return schema, _session_user(morsel.value)


class TenantAuthMiddleware:
    """Sets scope['tenant_schema'] and scope['user'], or closes the handshake."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = _headers(scope)
        origin = headers.get("origin")
        # Browsers always send Origin: a foreign one is cross-site websocket
        # hijacking. Clients without Origin must present a bearer token.
        if origin is not None and not _origin_allowed(origin, headers):
            return await self._deny(send)
        if origin is None and "authorization" not in headers:
            return await self._deny(send)
        schema, user = await authenticate_scope(headers)
        if schema is None or user is None:
            return await self._deny(send)
        scope = dict(scope, tenant_schema=schema, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)

    async def _deny(self, send: Any) -> None:
        # Closing before accept() makes Daphne answer the handshake with 403.
        await send({"type": "websocket.close", "code": 4403})
