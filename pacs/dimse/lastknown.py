"""The listener's look-ups while PostgreSQL is briefly unreachable.

Each new association asks the database which tenant it calls and who the
calling AE is. During a database restart those questions fail; a modality
that opens an association then should still be able to send into the
spool, which needs no database. :class:`LastKnown` answers such a question
with what the database said for the same key lately, and only while the
database cannot answer: a suspended tenant or a removed remote AE takes
effect at the next look-up that reaches the database.

At most ``MAX_KEYS`` answers are kept (a stranger choosing titles cannot
grow the memory), the oldest dropped first. An association whose answer is
not known is refused as a transient failure (:data:`REJECT_BUSY`), and the
peer retries later.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

# PS3.8 9.3.4: rejected-transient, service-provider (presentation),
# temporary congestion.
REJECT_BUSY = (0x02, 0x03, 0x01)
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)
# How long an answer may stand in for an unreachable database: a restart,
# a fail-over; not a day-long outage.
LAST_KNOWN_SECONDS = 15 * 60
# After a look-up found the database unreachable, look-ups do not try it
# again for this many seconds, and then only one at a time: each try can wait
# for the connection pool's time-out (30 s), and an association needs two.
RETRY_SECONDS = 10.0
MAX_KEYS = 1024

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DatabaseUnreachable(Exception):
    """The database did not answer and nothing recent is known for the key."""


class LastKnown(Generic[K, V]):
    """Answers of one look-up, reused while the database is unreachable.

    Parameters
    ----------
    what : str
        What is looked up, for the log (no patient data: AE titles, schemas).
    max_age : float
        Seconds an answer may be reused after the database gave it.
    """

    def __init__(self, what: str, max_age: float, max_keys: int = MAX_KEYS) -> None:
        self.what = what
        self.max_age = max_age
        self.max_keys = max_keys
        self._answers: OrderedDict[K, tuple[float, V | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, lookup: Callable[[], V | None]) -> V | None:
        """``lookup()``, or its last answer for ``key`` if the database is down.

        Raises
        ------
        DatabaseUnreachable
            The database is down and no recent row is known for ``key``.
        """
        if not _database.may_try():
            return self._last_known(key)
        try:
            value = lookup()
        except DATABASE_UNREACHABLE as error:
            _database.failed()
            return self._last_known(key, error)
        _database.answered()
        with self._lock:
            self._answers[key] = (time.monotonic(), value)
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_keys:
                self._answers.popitem(last=False)
        return value

    def _last_known(self, key: K, error: Exception | None = None) -> V | None:
        with self._lock:
            known = self._answers.get(key)
        if known is None or time.monotonic() - known[0] > self.max_age:
            raise DatabaseUnreachable(self.what) from error
        logger.warning(
            "database unreachable: %s %s answered as last known", self.what, key
        )
        return known[1]


class DatabaseState:
    """Whether look-ups should try the database: a circuit breaker.

    Up: every look-up tries. After a failure: none for ``RETRY_SECONDS``,
    then one at a time until one gets an answer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self._trying = False

    def may_try(self) -> bool:
        with self._lock:
            if self._down_until is None:
                return True
            if self._trying or time.monotonic() < self._down_until:
                return False
            self._trying = True
            return True

    def failed(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_SECONDS
            self._trying = False

    def answered(self) -> None:
        with self._lock:
            self._down_until = None
            self._trying = False


# Shared by every look-up of the process: the database is one.
_database = DatabaseState()


def close_quietly() -> None:
    """Give the thread's database connection back, whatever state it is in."""
    try:
        connection.close()
    except DATABASE_UNREACHABLE:
        logger.warning("database connection not closed cleanly", exc_info=True)


def reject_busy(assoc: object, reason: str) -> None:
    """Refuse the association as a transient failure (the peer retries)."""
    security_logger.warning("association rejected for now: %s", reason)
    assoc.acse.send_reject(*REJECT_BUSY)  # type: ignore[attr-defined]
    assoc.is_rejected = True  # type: ignore[attr-defined]
    assoc.kill()  # type: ignore[attr-defined]
