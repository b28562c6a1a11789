"""Moving spooled files into the archive's file storage.

On a local file system the spooled file is hard-linked to its storage name:
no byte is copied, and the spool's fsync already made the data durable, so
only the storage directories need flushing. Where linking is not possible
(the archive on another file system) the bytes are copied. Elsewhere
(object storage) the file is uploaded through the storage API.

A storage name only ever holds a whole file: a link or copy is made under a
temporary name beside it and renamed over it, so a full disk or a crash
mid-copy leaves no cut-short file under the real name. A file already
stored under the name is kept only when it has the spooled file's size;
one of another size (left by an earlier failure) is replaced. The spool
entry is removed by the caller once the index commits, so a failure here
leaves the file in the spool, from which the sweeper indexes it again.
"""

import errno
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, default_storage

from pacs import spool

logger = logging.getLogger(__name__)

# os.link cannot join these (another file system, no hard links there).
CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)


def place(files: Iterable[tuple[Path, str]]) -> None:
    """Store each spooled ``path`` under its storage ``name``; keep what is whole.

    A file already stored under that name with the same size (the same
    instance received before, or a crash between storing and indexing) is
    left as it is.

    Raises
    ------
    OSError
        When the storage cannot be written (disk full, permissions); the
        storage name then holds what it held before.
    """
    synced: set[Path] = set()
    for path, name in files:
        size = path.stat().st_size
        if isinstance(default_storage, FileSystemStorage):
            target = Path(default_storage.path(name))
            synced.add(_place_on_file_system(path, target, size))
        elif not _stored_whole(name, size):
            _upload(path, name)
    if settings.NIMBUS_SPOOL_FSYNC:
        for directory in synced:
            spool.fsync_directory(directory)


def _place_on_file_system(path: Path, target: Path, size: int) -> Path:
    """Link (or copy) ``path`` to ``target`` through a temporary name; its folder."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if _size_of(target) == size:
        return target.parent
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        try:
            os.link(path, temporary)
        except OSError as error:
            if error.errno not in CANNOT_LINK:
                raise
            _copy_durably(path, temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return target.parent


def _copy_durably(source: Path, destination: Path) -> None:
    shutil.copyfile(source, destination)
    if settings.NIMBUS_SPOOL_FSYNC:
        with open(destination, "rb") as handle:
            os.fsync(handle.fileno())


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _stored_whole(name: str, size: int) -> bool:
    if not default_storage.exists(name):
        return False
    if default_storage.size(name) == size:
        return True
    logger.warning("a stored file of another size than the received one replaced")
    default_storage.delete(name)
    return False


def _upload(path: Path, name: str) -> None:
    # An object store writes an object whole or not at all.
    with open(path, "rb") as handle:
        saved = default_storage.save(name, File(handle))
    if saved != name:  # a concurrent writer got there first; keep one copy
        default_storage.delete(saved)
