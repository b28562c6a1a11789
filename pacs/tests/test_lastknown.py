"""The listener's look-ups through a database outage (pacs/dimse/lastknown.py).

The outage itself, with a real PostgreSQL stopped under a running listener,
is tests/faults/test_postgres_restarted.py; here, the rules of the answers.
"""

import pytest
from django.db import OperationalError

from pacs.dimse import lastknown
from pacs.dimse.lastknown import DatabaseState, DatabaseUnreachable, LastKnown


@pytest.fixture(autouse=True)
def database_up(monkeypatch):
    monkeypatch.setattr(lastknown, "_database", DatabaseState())


def unreachable():
    raise OperationalError("connection refused")


def test_an_answer_stands_in_while_the_database_is_unreachable():
    tenants = LastKnown("tenant", max_age=60)
    assert tenants.get("CT1", lambda: "hospital_a") == "hospital_a"

    assert tenants.get("CT1", unreachable) == "hospital_a"


def test_a_key_never_answered_is_refused_while_the_database_is_unreachable():
    tenants = LastKnown("tenant", max_age=60)

    with pytest.raises(DatabaseUnreachable):
        tenants.get("STRANGER", unreachable)


def test_an_old_answer_does_not_stand_in(monkeypatch):
    tenants = LastKnown("tenant", max_age=60)
    tenants.get("CT1", lambda: "hospital_a")
    now = lastknown.time.monotonic()
    monkeypatch.setattr(lastknown.time, "monotonic", lambda: now + 61)

    with pytest.raises(DatabaseUnreachable):
        tenants.get("CT1", unreachable)


def test_after_a_failure_the_database_is_not_tried_again_at_once(monkeypatch):
    tenants = LastKnown("tenant", max_age=600)
    tenants.get("CT1", lambda: "hospital_a")
    tenants.get("CT1", unreachable)
    tried = []

    def counted():
        tried.append(1)
        return "hospital_b"

    assert tenants.get("CT1", counted) == "hospital_a"  # within the pause
    now = lastknown.time.monotonic()
    monkeypatch.setattr(
        lastknown.time, "monotonic", lambda: now + lastknown.RETRY_SECONDS + 1
    )
    assert tenants.get("CT1", counted) == "hospital_b"  # tried again, answered
    assert tried == [1]


def test_the_oldest_keys_go_beyond_the_bound():
    tenants = LastKnown("tenant", max_age=60, max_keys=2)
    for title in ("A", "B", "C"):
        tenants.get(title, lambda title=title: title.lower())

    assert tenants.get("C", unreachable) == "c"
    with pytest.raises(DatabaseUnreachable):
        tenants.get("A", unreachable)
