"""The head of each schema's chain, anchored outside the database it protects.

The chain shows a changed record or a removed link, but not a removed tail:
whoever deletes the last links together with their records leaves a valid,
shorter chain. So every sealing run that moves a schema's head appends the
new head to a file of that schema's heads on the application server's disk
(``NIMBUS_AUDIT_HEAD_DIR``) and logs it under ``nimbus.security``, for a log
shipper to carry off the machine. ``verify_audit`` then compares the chain
in the database with the last head anchored.
"""

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)
security_logger = logging.getLogger("nimbus.security")

# A head line is about 170 bytes; this always holds the last complete one.
TAIL_BYTES = 4096


@dataclass(frozen=True)
class Head:
    seq: int
    chain_hash: str


def head_file(schema_name: str) -> Path:
    # Schema names are identifiers (django-tenants checks them): safe as names.
    return Path(settings.NIMBUS_AUDIT_HEAD_DIR) / f"{schema_name}.heads"


def last_anchored_head(schema_name: str) -> Head | None:
    """The last complete line of the schema's head file; None without one.

    Raises OSError when the file exists but cannot be read.
    """
    try:
        with head_file(schema_name).open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - TAIL_BYTES))
            lines = file.read().split(b"\n")
    except (FileNotFoundError, NotADirectoryError):
        return None

    # The last piece has no newline yet (empty, or torn by a crash); the first
    # may start in the middle of a line.
    complete = lines[1:-1] if size > TAIL_BYTES else lines[:-1]
    for line in reversed(complete):
        try:
            fields = json.loads(line)
            return Head(int(fields["seq"]), str(fields["chain_hash"]))
        except (ValueError, KeyError, TypeError):
            continue
    return None


def do_anchor_head(schema_name: str, head: Head) -> None:
    """Log the head, then append it to the schema's head file and fsync it.

    A disk that refuses is logged as an error and sealing goes on: the chain
    and the log line still protect the records, and stopping the sealer
    would leave new records outside the chain.
    """
    security_logger.info(
        "audit chain head tenant=%s seq=%s hash=%s",
        schema_name,
        head.seq,
        head.chain_hash,
    )
    line = json.dumps(
        {
            "tenant": schema_name,
            "seq": head.seq,
            "chain_hash": head.chain_hash,
            "anchored_at": timezone.now().isoformat(timespec="seconds"),
        },
        sort_keys=True,
    )
    path = head_file(schema_name)
    try:
        _append_line(path, line)
    except OSError:
        logger.exception(
            "could not anchor the audit chain head of %s at seq %s in %s",
            schema_name,
            head.seq,
            path,
        )


def archived_head_file(schema_name: str, deleted_at: datetime) -> Path:
    """Where a deleted tenant's head file goes: no longer read as a head file."""
    stamp = deleted_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return head_file(schema_name).with_name(f"{schema_name}.heads.deleted-{stamp}")


def do_archive_head_file(schema_name: str, archived: Path) -> None:
    """Move a deleted tenant's head file aside; a missing one is nothing to do.

    Left in place, it would be read as the head of any new tenant given the
    same schema name, whose fresh chain would then look cut short.
    """
    try:
        head_file(schema_name).rename(archived)
    except FileNotFoundError:
        return
    except OSError:
        logger.exception(
            "could not archive the audit chain head file of %s as %s; a new "
            "tenant with this schema will read it as its own until it is moved",
            schema_name,
            archived,
        )
        return
    security_logger.info(
        "audit chain head file of deleted tenant=%s archived as %s",
        schema_name,
        archived,
    )


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    # O_APPEND: each write lands at the end, whatever another process wrote;
    # nothing here ever rewrites or truncates the file.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
