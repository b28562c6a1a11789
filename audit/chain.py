"""The hash chain over a tenant's audit trail: sealing and verification.

Records are inserted on hot paths with no chain work at all. A sealer, run
every few seconds by Celery beat and by ``verify_audit``, links the records
committed since its last run, in id order, into ``AuditSeal`` rows:

    chain_hash[n] = SHA-256(chain_hash[n-1] || canonical(record))

The chain follows the order of sealing, not of ids: ids are drawn before
commit, so a record with a lower id can commit after a higher one has been
sealed. It is found by its ``xact_id``: every record that was not yet
visible when the last link was made was written by a transaction at or above
that link's ``horizon_xid`` (the oldest transaction then still open).

Each new head is also anchored outside the database (``audit.heads``), so a
chain cut short at its end shows too.
"""

import hashlib
import json
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from functools import partial

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from audit.heads import Head, do_anchor_head, last_anchored_head
from audit.models import AuditEvent, AuditExportState, AuditSeal

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

SEAL_BATCH = 5000
VERIFY_CHUNK = 2000
# pg_advisory_xact_lock(class, object): one sealer per schema at a time, so
# that seq stays gapless without serialising the writers of records.
SEAL_LOCK_CLASS = 0x4155_4454  # "AUDT"


def genesis_hash(schema_name: str) -> str:
    """The chain's anchor, bound to the schema so a chain cannot be transplanted."""
    return hashlib.sha256(f"nimbus-audit-chain:{schema_name}".encode()).hexdigest()


def canonical_record(event: AuditEvent) -> bytes:
    """Every stored field of the record, as sorted compact UTF-8 JSON."""
    occurred_at = event.occurred_at.astimezone(UTC)
    fields = {
        "id": event.pk,
        "occurred_at": occurred_at.isoformat(timespec="microseconds"),
        "event_type": event.event_type,
        "outcome": event.outcome,
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "source_ip": event.source_ip,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "patient_id": event.patient_id,
        "study_instance_uid": event.study_instance_uid,
        "detail": event.detail,
    }
    return json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def link_hash(previous_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(
        bytes.fromhex(previous_hash) + canonical_record(event)
    ).hexdigest()


def _try_seal_lock() -> bool:
    key = zlib.crc32(connection.schema_name.encode()) - 2**31  # into int4
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s::int4, %s::int4)",
            [SEAL_LOCK_CLASS, key],
        )
        return bool(cursor.fetchone()[0])


def _oldest_open_transaction() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())")
        return int(cursor.fetchone()[0])


def do_seal_events(batch: int = SEAL_BATCH) -> int:
    """Chain the current schema's unsealed records; returns how many were sealed.

    Returns 0 at once when another sealer holds this schema.
    """
    with transaction.atomic():
        if not _try_seal_lock():
            return 0
        # Taken before the records are read: anything committed after this
        # query started belongs to a transaction at or above it.
        horizon = _oldest_open_transaction()
        last = AuditSeal.objects.order_by("-seq").first()
        floor = last.horizon_xid if last else 0
        previous = last.chain_hash if last else genesis_hash(connection.schema_name)

        sealed = AuditSeal.objects.filter(event_id=OuterRef("pk"))
        events = list(
            AuditEvent.objects.filter(xact_id__gte=floor)
            .filter(~Exists(sealed))
            .order_by("id")[: batch + 1]
        )
        if not events:
            return 0
        # A partial run must not move the floor past the records it left.
        next_floor = horizon if len(events) <= batch else floor
        anchored, head_readable = _read_anchored_head()
        seq = _last_seq_ever_used(last, anchored)

        seals = []
        for event in events[:batch]:
            seq += 1
            previous = link_hash(previous, event)
            seals.append(
                AuditSeal(
                    seq=seq,
                    event_id=event.pk,
                    chain_hash=previous,
                    horizon_xid=next_floor,
                )
            )
        AuditSeal.objects.bulk_create(seals)

        if head_readable and _continues(anchored):
            # After the commit only: a head anchored for links that then roll
            # back would read as links removed.
            transaction.on_commit(
                partial(do_anchor_head, connection.schema_name, Head(seq, previous))
            )
        return len(seals)


def _read_anchored_head() -> tuple[Head | None, bool]:
    """The schema's last anchored head, and whether its file could be read."""
    try:
        return last_anchored_head(connection.schema_name), True
    except OSError:
        logger.exception(
            "could not read the anchored audit chain head of %s",
            connection.schema_name,
        )
        return None, False


def _last_seq_ever_used(last: AuditSeal | None, anchored: Head | None) -> int:
    """The highest seq the chain, its anchored head or the ATNA export reached.

    New links continue after it, never below: after a cut tail, a reused seq
    would be skipped by the exporter, whose marker is already past it (the
    alert of the cut with it), and would turn the cut into a head that
    differs. Left as a gap, it reads as what it is: links removed.
    """
    exported = AuditExportState.objects.values_list("exported_seq", flat=True)
    return max(
        last.seq if last else 0,
        anchored.seq if anchored else 0,
        exported.first() or 0,
    )


def _continues(anchored: Head | None) -> bool:
    """Whether the chain, just extended, still continues the last anchored head.

    When it does not, a new head would bury the evidence: the file keeps the
    last good head (and verify_audit reports the break) until an operator
    archives it.
    """
    anchor_break = head_break(anchored)
    if anchor_break is not None:
        security_logger.error(
            "audit chain of %s does not continue its anchored head: %s; "
            "new heads are not anchored until its head file is archived",
            connection.schema_name,
            anchor_break.reason,
        )
        return False
    return True


def do_seal_all_events() -> int:
    total = 0
    while (count := do_seal_events()) == SEAL_BATCH:
        total += count
    return total + count


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    event_id: int | None
    reason: str

    def __str__(self) -> str:
        if self.event_id is None:
            return f"link {self.seq}: {self.reason}"
        return f"link {self.seq} (record {self.event_id}): {self.reason}"


@dataclass
class ChainReport:
    checked: int = 0
    unsealed: int = 0
    anchored_seq: int | None = None
    broken: list[BrokenLink] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.broken


def _seal_chunks() -> Iterator[list[AuditSeal]]:
    after = 0
    while True:
        chunk = list(
            AuditSeal.objects.filter(seq__gt=after).order_by("seq")[:VERIFY_CHUNK]
        )
        if not chunk:
            return
        yield chunk
        after = chunk[-1].seq


def verify_chain() -> ChainReport:
    """Check every link of the current schema's chain against the records.

    Each link is checked against the stored hash of the one before, so one
    altered record breaks its own link only and every break is listed.
    """
    report = ChainReport()
    previous = genesis_hash(connection.schema_name)
    expected_seq = 1
    for chunk in _seal_chunks():
        events = AuditEvent.objects.in_bulk([seal.event_id for seal in chunk])
        for seal in chunk:
            event = events.get(seal.event_id)
            report.checked += 1
            if seal.seq != expected_seq:
                report.broken.append(
                    BrokenLink(
                        seal.seq, seal.event_id, f"links from {expected_seq} removed"
                    )
                )
            elif event is None:
                report.broken.append(
                    BrokenLink(seal.seq, seal.event_id, "record deleted")
                )
            elif link_hash(previous, event) != seal.chain_hash:
                report.broken.append(
                    BrokenLink(seal.seq, seal.event_id, "record altered")
                )
            previous = seal.chain_hash
            expected_seq = seal.seq + 1

    anchored = last_anchored_head(connection.schema_name)
    anchor_break = head_break(anchored)
    if anchor_break is not None:
        report.broken.append(anchor_break)
    report.anchored_seq = anchored.seq if anchored else None

    sealed = AuditSeal.objects.filter(event_id=OuterRef("pk"))
    report.unsealed = AuditEvent.objects.filter(~Exists(sealed)).count()
    return report


def head_break(anchored: Head | None) -> BrokenLink | None:
    """How the current schema's chain fails the head anchored last, if it does.

    The last head is enough: every link before it is bound to it by the
    chain. No head file (a fresh install) is no break.
    """
    if anchored is None:
        return None

    seal = AuditSeal.objects.filter(seq=anchored.seq).first()
    if seal is None:
        below = AuditSeal.objects.filter(seq__lt=anchored.seq).order_by("-seq")
        tip = below.values_list("seq", flat=True).first() or 0
        return BrokenLink(
            anchored.seq,
            None,
            f"records after seq {tip} removed (head anchored at seq {anchored.seq})",
        )
    if seal.chain_hash != anchored.chain_hash:
        return BrokenLink(
            anchored.seq, seal.event_id, f"head at seq {anchored.seq} differs"
        )
    return None
