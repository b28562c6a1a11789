"""The durable spool between the DICOM listener and the ingest workers.

A received instance is written here, flushed and fsync'd *before* the
C-STORE response says success: if the machine loses power after the
response, the file is still on disk and the sweeper queues it again.
"""

import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

SUFFIX = ".dcm"
PARTIAL_SUFFIX = ".part"


def spool_dir(schema: str) -> Path:
    return Path(settings.NIMBUS_SPOOL_DIR) / schema / "incoming"


def quarantine_dir(schema: str) -> Path:
    return Path(settings.NIMBUS_SPOOL_DIR) / schema / "quarantine"


def fsync_directory(path: Path) -> None:
    """Make the entries of ``path`` (new, renamed or linked files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(schema: str, data: bytes, *, quarantine: bool = False) -> Path:
    """Write ``data`` to a new spool file for ``schema`` and return its path.

    With ``quarantine``, the file goes where the sweeper never looks: kept
    for inspection, never indexed.

    Written under a temporary name and renamed, so that a crash never leaves
    a half-written file where the sweeper would pick it up.

    Raises
    ------
    OSError
        When the disk is full or not writable; nothing is left behind.
    """
    directory = quarantine_dir(schema) if quarantine else spool_dir(schema)
    directory.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    partial = directory / (name + PARTIAL_SUFFIX)
    final = directory / (name + SUFFIX)
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            if settings.NIMBUS_SPOOL_FSYNC:
                os.fsync(handle.fileno())
        os.replace(partial, final)
        if settings.NIMBUS_SPOOL_FSYNC:
            fsync_directory(directory)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    return final


def move_to_quarantine(schema: str, path: Path) -> Path:
    """Keep a file that could not be indexed, out of the sweeper's way."""
    target_dir = quarantine_dir(schema)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    os.replace(path, target)
    return target


def stale_files(schema: str, older_than_seconds: float) -> Iterator[Path]:
    """Spooled files that no task has consumed for a while (lost queue message)."""
    directory = spool_dir(schema)
    if not directory.is_dir():
        return
    cutoff = time.time() - older_than_seconds
    for path in directory.glob("*" + SUFFIX):
        try:
            if path.stat().st_mtime < cutoff:
                yield path
        except FileNotFoundError:
            continue  # consumed while we looked
