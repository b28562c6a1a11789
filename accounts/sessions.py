"""The clocks of a browser session: idle time-out and absolute lifetime.

Both are kept in the session itself (epoch seconds) and checked on every
HTTP request (accounts.middleware) and at every websocket handshake
(tenants.channels). Activity is any authenticated HTTP request except the
idle module's own status check (accounts.views.session_status).
"""

import time
from typing import Any

from django.conf import settings

SIGNED_IN_AT = "nimbus_signed_in_at"
LAST_ACTIVITY = "nimbus_last_activity"
REAUTHENTICATED_AT = "nimbus_reauthenticated_at"

IDLE = "idle"
ABSOLUTE = "absolute"

# A session is written at most this often for activity alone: every viewer
# frame is a request, and each write goes to Redis and PostgreSQL.
MAX_ACTIVITY_RESOLUTION_SECONDS = 30


def start_clock(session: Any, now: float | None = None) -> None:
    now = time.time() if now is None else now
    session[SIGNED_IN_AT] = now
    session[LAST_ACTIVITY] = now


def idle_seconds_left(session: Any, idle_minutes: int, now: float) -> float:
    return float(session.get(LAST_ACTIVITY, 0)) + idle_minutes * 60 - now


def absolute_seconds_left(session: Any, now: float) -> float:
    lifetime = settings.NIMBUS_SESSION_MAX_AGE_SECONDS
    return float(session.get(SIGNED_IN_AT, 0)) + lifetime - now


def expiry_reason(session: Any, idle_minutes: int, now: float) -> str | None:
    """Why this session has ended ("idle", "absolute"), or None while it lives.

    A session without clocks (opened before they existed) counts as too old.
    """
    if absolute_seconds_left(session, now) <= 0:
        return ABSOLUTE
    if idle_seconds_left(session, idle_minutes, now) <= 0:
        return IDLE
    return None


def note_activity(session: Any, idle_minutes: int, now: float) -> None:
    resolution = min(MAX_ACTIVITY_RESOLUTION_SECONDS, idle_minutes * 6)
    if now - float(session.get(LAST_ACTIVITY, 0)) >= resolution:
        session[LAST_ACTIVITY] = now


def note_reauthentication(session: Any, now: float | None = None) -> None:
    session[REAUTHENTICATED_AT] = time.time() if now is None else now


def reauthenticated_recently(session: Any, now: float | None = None) -> bool:
    now = time.time() if now is None else now
    window = settings.NIMBUS_REAUTH_MINUTES * 60
    return now - float(session.get(REAUTHENTICATED_AT, 0)) < window


def user_group_name(schema: str, user_id: int) -> str:
    """The Channels group of one user's browser sockets in one tenant."""
    return f"user.{schema}.{user_id}"
