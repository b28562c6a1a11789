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
        try:
            value = lookup()
        except DATABASE_UNREACHABLE as error:
            with self._lock:
                known = self._answers.get(key)
            if known is None or time.monotonic() - known[0] > self.max_age:
                raise DatabaseUnreachable(self.what) from error
            logger.warning(
                "database unreachable: %s %s answered as last known", self.what, key
            )
            return known[1]
        with self._lock:
            self._answers[key] = (time.monotonic(), value)
            self._answers.move_to_end(key)
            while len(self._answers) > self.max_keys:
                self._answers.popitem(last=False)
        return value


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
