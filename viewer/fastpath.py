"""Cached frames answered in front of Django: the scrolling fast path.

Scrolling asks for dozens of frames a second, most of them rendered already
(by the series' warm-up or an earlier request). Through Django each one paid
about 5 ms of middleware, session, user and device loading and object checks
before a cache read; issue 4 asks for 2 ms. So:

- When Django's frame view has authorised a session for a series, it leaves a
  *grant* in the cache: this session may read this series of this study, for
  GRANT_SECONDS.
- When Django lists a series' images for the viewer, it also leaves what
  rendering needs of each instance (its stored file, frame count, matrix
  and pixel status) under the series.
- In front of Django, ``FastFrames`` answers a GET of a frame URL by itself
  when one Redis round trip finds the session (signing out deletes it) and
  the session's grant for the URL's study and series, and then either the
  rendered frame under the URL's series and instance or, failing that, the
  instance's file under the series: it renders that in a thread and caches
  it as Django would. Anything else (no cookie, a host this process has not
  resolved lately, an odd query, any miss, an image with a problem) goes to
  Django unchanged, which checks everything and fills the cache.

Why that is as safe as the view:
- Every key carries the tenant's schema, as Django's cache key function
  writes it, and the schema comes from the host name, as in Django.
- A render or a file is kept under its series only after Django has found
  the instance in that series, so a hit proves membership; the grant proves
  the session may read the series.
- Signing out and session expiry delete the session entry, which ends the
  fast path at once. Signing out everywhere, a password change, a share
  withdrawn or a user deactivated reach it within GRANT_SECONDS, when the
  grant lapses and the next frame goes through Django again. The idle
  time-out counts the requests that reach Django, one per GRANT_SECONDS
  while a reader scrolls.
- The audit trail records frames viewed per series at an interval
  (viewer/actions.py); the grant is written by a request that went through
  that, and a reader who scrolls longer than a grant passes Django again.
- The response headers are the ones Django sent for the last frame it
  answered on this process for the same host and scheme (no-store, nosniff,
  CSP, frame and referrer policies, HSTS), so the two paths cannot drift
  apart; Expires is made afresh, Content-Language left out.
- Its parsing is stricter than Django's, never looser: a host that is not a
  plain name and port, a path with anything after ".png", a blank or odd
  query value all go to Django.
"""

import asyncio
import hashlib
import importlib
import pickle
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import redis.asyncio as aioredis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.utils.http import http_date

from accounts.models import Role
from pacs.models import Instance, PixelStatus, Series
from tenants.middleware import remembered_schema
from viewer.cache import RENDER_CACHE_SECONDS, render_key
from viewer.frame_query import (
    FrameQuery,
    InvalidRenderOption,
    InvalidWindow,
    format_number,
)
from viewer.rendering import Rendered, render_frame

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# How long a session's frames may skip Django's checks. Signing out everywhere
# and changing a password end the other sessions lazily, at their next
# Django request (the session's auth hash no longer matches), as does a
# withdrawn share or a deactivated user: this bounds how long such a session
# can still fetch frames of a series it was reading. Each lapse costs one
# frame through Django, about 10 ms, every GRANT_SECONDS.
GRANT_SECONDS = 30

# Matched whole (fullmatch): "$" would also accept a trailing newline.
FRAME_PATH = re.compile(
    r"/viewer/studies/(?P<study>[0-9.]{1,64})/series/(?P<series>[0-9.]{1,64})"
    r"/instances/(?P<sop>[0-9.]{1,64})/frames/(?P<frame>[1-9][0-9]{0,5})\.png"
)
# A host name and an optional port, nothing else: Django's own parsing
# decides about anything odder.
HOST = re.compile(r"(?P<name>[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::[0-9]{1,5})?")
# Header sets remembered per host, scheme and proxy scheme; a bound, because
# a client can make Django answer under any port of a known host.
MAX_HEADER_VARIANTS = 256
SESSION_KEY = re.compile(r"^[a-z0-9]{8,64}$")
# Headers of Django's answer that belong to one response, not to every frame.
# Content-Language (the reader's language) is left out: an image has none.
OWN_HEADERS = {
    b"content-length",
    b"content-language",
    b"content-type",
    b"date",
    b"expires",
    b"set-cookie",
    b"x-render-error",
    b"x-window-center",
    b"x-window-width",
}


def grant_key(session_key: str, study_uid: str, series_uid: str) -> str:
    # The session key itself never appears in a key name.
    session = hashlib.sha256(session_key.encode()).hexdigest()[:32]
    return f"viewer:frame-grant:{session}:{study_uid}:{series_uid}"


def do_grant_cached_frames(request: HttpRequest, series: Series) -> None:
    """Let this session's cached frames of ``series`` skip Django for a while.

    Call only after the session's user was authorised to read the series.
    """
    session_key = request.session.session_key
    if session_key is None:
        return
    # A helpdesk user reads under a time-limited grant (grants/) and every
    # frame must be audited with it and refused the moment it ends: no frame
    # may skip Django for them, not even for GRANT_SECONDS.
    if getattr(request.user, "role", None) == Role.HELPDESK:
        return
    key = grant_key(
        session_key, series.study.study_instance_uid, series.series_instance_uid
    )
    cache.set(key, 1, GRANT_SECONDS)


def instance_file_key(series_uid: str, sop_uid: str) -> str:
    return f"viewer:instance-file:{series_uid}:{sop_uid}"


def do_remember_instance_files(series: Series, instances: list[Instance]) -> None:
    """Keep what rendering needs of each instance, for FastFrames to render.

    Call with instances the view has loaded from ``series`` itself.
    """
    cache.set_many(
        {
            instance_file_key(series.series_instance_uid, i.sop_instance_uid): (
                i.storage_path,
                i.pixel_status,
                i.number_of_frames,
                i.rows,
                i.columns,
            )
            for i in instances
        },
        RENDER_CACHE_SECONDS,
    )


def instance_from_file_entry(sop_uid: str, entry: object) -> Instance | None:
    """An unsaved Instance with what rendering reads, or None for a problem."""
    if not isinstance(entry, tuple) or len(entry) != 5:
        return None
    storage_path, pixel_status, number_of_frames, rows, columns = entry
    if pixel_status != PixelStatus.OK:
        return None  # Django answers with the error image in the user's language
    return Instance(
        sop_instance_uid=sop_uid,
        storage_path=storage_path,
        pixel_status=pixel_status,
        number_of_frames=number_of_frames,
        rows=rows,
        columns=columns,
    )


class FastFrames:
    """ASGI middleware: cached frames for granted sessions; all else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Django's headers for a frame, per scheme as the client reached us.
        self.headers: dict[tuple[str, bytes, bytes], list[tuple[bytes, bytes]]] = {}
        self._redis: tuple[asyncio.AbstractEventLoop, aioredis.Redis] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        match = FRAME_PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return

        if not await self.answer_from_cache(scope, match, send):
            await self.app(scope, receive, self.learning_headers(scope, send))

    async def answer_from_cache(
        self, scope: Scope, match: re.Match[str], send: Send
    ) -> bool:
        """Send the cached frame and return True, or return False for Django."""
        headers = self.headers.get(header_variant(scope))
        request = parse_request(scope)
        if headers is None or request is None:
            return False
        schema, session_key, query = request

        frame_index = int(match["frame"]) - 1
        render = render_key(match["series"], match["sop"], frame_index, query)
        keys = [
            session_cache_key(session_key),
            grant_key(session_key, match["study"], match["series"]),
            render,
        ]
        session, grant, cached = await self.redis().mget(
            [full_key(schema, key) for key in keys]
        )
        if not (session and grant):
            return False

        if cached:
            rendered = pickle.loads(cached)  # noqa: S301 - our own cache entry
        else:
            rendered = await self.render(schema, match, frame_index, query, render)
        if not isinstance(rendered, Rendered) or rendered.error:
            return False

        await send_png(send, headers, rendered)
        return True

    async def render(
        self,
        schema: str,
        match: re.Match[str],
        frame_index: int,
        query: FrameQuery,
        key: str,
    ) -> Rendered | None:
        """Render from the instance's file under the series; None when not known."""
        file_key = instance_file_key(match["series"], match["sop"])
        entry = await self.redis().get(full_key(schema, file_key))
        instance = (
            instance_from_file_entry(match["sop"], pickle.loads(entry))  # noqa: S301
            if entry
            else None
        )
        if instance is None or not 0 <= frame_index < max(instance.number_of_frames, 1):
            return None

        rendered = await asyncio.to_thread(
            render_frame,
            instance,
            frame_index,
            query.window,
            max_size=query.max_size_for(instance.rows, instance.columns),
            voi_index=query.voi_index,
            voi_function=query.voi_function,
        )
        if not rendered.error:
            # As Django's Redis cache serialises it, so that both paths read it.
            value = pickle.dumps(rendered, pickle.HIGHEST_PROTOCOL)
            await self.redis().set(
                full_key(schema, key), value, ex=RENDER_CACHE_SECONDS
            )
        return rendered

    def learning_headers(self, scope: Scope, send: Send) -> Send:
        """``send``, remembering the headers of Django's successful frame answers."""
        variant = header_variant(scope)

        async def send_and_learn(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = message.get("headers", [])
                if (b"content-type", b"image/png") in lowered(headers):
                    if len(self.headers) >= MAX_HEADER_VARIANTS:
                        self.headers.clear()
                    self.headers[variant] = [
                        (name, value)
                        for name, value in headers
                        if name.lower() not in OWN_HEADERS
                    ]
            await send(message)

        return send_and_learn

    def redis(self) -> aioredis.Redis:
        # One client per event loop: an asyncio connection belongs to its loop.
        loop = asyncio.get_running_loop()
        if self._redis is None or self._redis[0] is not loop:
            location = settings.CACHES["default"]["LOCATION"]
            self._redis = (loop, aioredis.Redis.from_url(location))
        return self._redis[1]


def parse_request(scope: Scope) -> tuple[str, str, FrameQuery] | None:
    """The tenant's schema, session key and rendering asked for, or None."""
    headers = dict(scope["headers"])
    host = HOST.fullmatch(headers.get(b"host", b"").decode("latin-1").lower())
    schema = remembered_schema(host["name"]) if host else None
    cookies = parse_cookie(headers.get(b"cookie", b"").decode("latin-1"))
    session_key = cookies.get(settings.SESSION_COOKIE_NAME, "")
    if schema is None or not SESSION_KEY.match(session_key):
        return None

    # Blank values kept, as in Django's QueryDict: "?preview" is a preview.
    query = scope["query_string"].decode("latin-1")
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "preview" in params:
        return None
    try:
        return schema, session_key, FrameQuery.from_params(params)
    except (InvalidWindow, InvalidRenderOption):
        return None  # Django answers 400 with the reason


def lowered(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in headers]


def header_variant(scope: Scope) -> tuple[str, bytes, bytes]:
    # HSTS depends on how the client reached us, and the CSP names the host
    # (its websocket origin): one tenant's host never lends another its headers.
    headers = dict(scope["headers"])
    forwarded = headers.get(b"x-forwarded-proto", b"")
    return scope.get("scheme", "http"), forwarded, headers.get(b"host", b"").lower()


def session_cache_key(session_key: str) -> str:
    engine = importlib.import_module(settings.SESSION_ENGINE)
    return f"{engine.SessionStore.cache_key_prefix}{session_key}"


def full_key(schema: str, key: str) -> str:
    """The key as Django's tenant-aware cache writes it (django_tenants.cache)."""
    options = settings.CACHES["default"]
    return f"{schema}:{options.get('KEY_PREFIX', '')}:{options.get('VERSION', 1)}:{key}"


def fast_path_possible() -> bool:
    """Whether the cache and sessions are set up the way FastFrames reads them."""
    options = settings.CACHES["default"]
    engine = importlib.import_module(settings.SESSION_ENGINE)
    return (
        options["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
        and isinstance(options.get("LOCATION"), str)
        and options.get("KEY_FUNCTION") == "django_tenants.cache.make_key"
        and settings.SESSION_CACHE_ALIAS == "default"
        and hasattr(engine.SessionStore, "cache_key_prefix")
    )


async def send_png(
    send: Send, headers: list[tuple[bytes, bytes]], rendered: Rendered
) -> None:
    own = [
        (b"content-type", b"image/png"),
        (b"content-length", str(len(rendered.png)).encode()),
        # As Django's never-cache headers: expired the moment it is sent.
        (b"expires", http_date().encode()),
    ]
    if rendered.window is not None:
        own.append((b"x-window-center", format_number(rendered.window[0]).encode()))
        own.append((b"x-window-width", format_number(rendered.window[1]).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers + own})
    await send({"type": "http.response.body", "body": rendered.png})
