"""Tenant resolution and authentication for websockets.

django-tenants' middleware only sees HTTP requests, so websockets resolve
their tenant from the Host header here, then authenticate in that tenant's
schema: a session cookie whose second factor is verified, or a bearer token.
"""

import time
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
from accounts.session_store import names_another_tenant
from accounts.sessions import expiry_reason, user_group_name
from accounts.wrong_host import (
    SESSION_OF_ANOTHER_HOST,
    UNKNOWN_HOST,
    record_wrong_host,
)
from tenants.models import Domain, Tenant, normalise_host


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope["headers"]
    }


def _hostname(headers: dict[str, str]) -> str:
    host = headers.get("host", "")
    return host.rsplit(":", 1)[0] if not host.endswith("]") else host


def _request_is_secure(scope: dict[str, Any], headers: dict[str, str]) -> bool:
    """Whether the browser reached us over TLS, as Django decides for HTTP.

    Behind a proxy (SECURE_PROXY_SSL_HEADER set) the proxy's header says so;
    otherwise the scheme of the connection itself.
    """
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        header = name.removeprefix("HTTP_").replace("_", "-").lower()
        if header in headers:
            forwarded = headers[header].split(",", 1)[0].strip()
            return forwarded == secure_value
    return scope.get("scheme") in ("wss", "https")


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_allowed(origin: str, headers: dict[str, str], secure: bool) -> bool:
    """Only a page of the same tenant host and scheme may open a websocket to it.

    Matching ALLOWED_HOSTS is not enough: it covers every tenant's host, and
    a page on one hospital's host must not read another hospital's reports.
    The scheme must match too: a page served over plain http (readable and
    changeable on the wire) must not drive a session that lives on https.
    """
    scheme = "https" if secure else "http"
    parsed = urlparse(origin)
    if parsed.scheme != scheme:
        return False
    origin_host = (parsed.hostname or "").lower()
    if not origin_host or origin_host != _hostname(headers).lower():
        return False
    # Ports compared as the browser sees them: a missing one is the scheme's
    # default, on either side (behind a proxy the Host header often has none).
    try:
        origin_port = parsed.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return False
    host_port = headers.get("host", "").rpartition("]")[2].rpartition(":")[2]
    request_port = int(host_port) if host_port.isdigit() else DEFAULT_PORTS[scheme]
    return origin_port == request_port


def tenant_for_host(hostname: str) -> Tenant | None:
    hostname = normalise_host(hostname)  # as for HTTP (tenants.middleware)
    with schema_context(get_public_schema_name()):
        domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if (
        domain is None
        or not domain.tenant.is_active
        or domain.tenant.schema_name == "public"
    ):
        return None
    return domain.tenant


def tenant_schema_for_host(hostname: str) -> str | None:
    tenant = tenant_for_host(hostname)
    return None if tenant is None else tenant.schema_name


def _session_user(session_key: str, idle_minutes: int) -> Any:
    engine = import_string(settings.SESSION_ENGINE)
    session = engine.SessionStore(session_key)
    user_id = session.get(SESSION_KEY)
    backend_path = session.get(BACKEND_SESSION_KEY)
    if user_id is None or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    # Idle or too old: the HTTP side ends it at the next request; a socket
    # never opens on it. The handshake itself is not activity.
    if expiry_reason(session, idle_minutes, time.time()) is not None:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return None
    # A password change or "sign out everywhere" ends every session, as over HTTP.
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(
        session_hash, user.get_session_auth_hash()
    ):
        return None
    device = Device.from_persistent_id(session.get(DEVICE_ID_SESSION_KEY) or "")
    if device is None or device.user_id != user.pk:
        return None  # password only: not verified
    return user


def _session_key(headers: dict[str, str]) -> str:
    morsel = SimpleCookie(headers.get("cookie", "")).get(settings.SESSION_COOKIE_NAME)
    return "" if morsel is None else morsel.value


def _client_address(scope: dict[str, Any]) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


@database_sync_to_async
def authenticate_scope(
    headers: dict[str, str], address: str | None = None
) -> tuple[str | None, Any, bool]:
    """The tenant's schema, the user, and whether a browser session (not a token).

    A credential refused here is recorded in the host's tenant's trail
    (accounts.wrong_host); a cookie of this tenant that is simply not found
    (an expired session, a page reconnecting) is not.
    """
    tenant = tenant_for_host(_hostname(headers))
    key = _session_key(headers)
    if tenant is None:
        if key or "authorization" in headers:
            record_wrong_host(
                get_public_schema_name(),
                address=address,
                reason=UNKNOWN_HOST,
                credential=key or headers["authorization"],
                detail={"host": _hostname(headers)[:100], "via": "websocket"},
            )
        return None, None, False
    schema = tenant.schema_name
    with schema_context(schema):
        raw_token = bearer_token_from_header(headers.get("authorization", ""))
        if raw_token is not None:
            user = user_for_bearer_token(raw_token)
            if user is None:
                record_wrong_host(
                    schema,
                    address=address,
                    reason="invalid or revoked bearer token",
                    credential=raw_token,
                    detail={"via": "websocket"},
                )
            return schema, user, False
        if not key:
            return schema, None, False
        if names_another_tenant(key, schema):
            record_wrong_host(
                schema,
                address=address,
                reason=SESSION_OF_ANOTHER_HOST,
                credential=key,
                detail={"via": "websocket"},
            )
            return schema, None, True
        return schema, _session_user(key, tenant.idle_timeout_minutes), True


@database_sync_to_async
def record_refused_handshake(
    headers: dict[str, str], address: str | None, reason: str
) -> None:
    """Record a handshake refused before its credentials were looked at."""
    tenant = tenant_for_host(_hostname(headers))
    schema = get_public_schema_name() if tenant is None else tenant.schema_name
    origin = headers.get("origin", "")
    record_wrong_host(
        schema,
        address=address,
        reason=reason,
        credential=_session_key(headers) or headers.get("authorization", ""),
        detail={"origin": origin[:100], "via": "websocket"},
    )


class TenantAuthMiddleware:
    """Sets scope['tenant_schema'] and scope['user'], or closes the handshake."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        headers = _headers(scope)
        origin = headers.get("origin")
        # Browsers always send Origin: a foreign one is cross-site websocket
        # hijacking. Clients without Origin must present a bearer token.
        secure = _request_is_secure(scope, headers)
        address = _client_address(scope)
        if origin is not None and not _origin_allowed(origin, headers, secure):
            await record_refused_handshake(headers, address, "websocket origin refused")
            return await self._deny(send)
        if origin is None and "authorization" not in headers:
            await record_refused_handshake(
                headers, address, "websocket without origin or token"
            )
            return await self._deny(send)
        schema, user, by_session = await authenticate_scope(headers, address)
        if schema is None or user is None:
            return await self._deny(send)
        scope = dict(scope, tenant_schema=schema, user=user or AnonymousUser())
        if by_session:
            scope["user_group"] = user_group_name(schema, user.pk)
        return await self.inner(scope, receive, send)

    async def _deny(self, send: Any) -> None:
        # Closing before accept() makes Daphne answer the handshake with 403.
        await send({"type": "websocket.close", "code": 4403})


# Private close code: the user signed out everywhere (or changed password).
CLOSE_SESSION_ENDED = 4401


class SessionBoundConsumerMixin:
    """Closes a browser socket when its user's sessions end.

    A socket opened with a session cookie joins the user's group
    (accounts.sessions.user_group_name); "sign out everywhere" and a
    password change send ``session.ended`` to it. Bearer-token sockets
    belong to machines and are ended by revoking the token instead.
    """

    scope: dict[str, Any]
    groups: list[str]

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        group = self.scope.get("user_group")
        if group:
            self.groups = [*self.groups, group]
        await super().websocket_connect(message)  # type: ignore[misc]

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self.close(code=CLOSE_SESSION_ENDED)  # type: ignore[attr-defined]
