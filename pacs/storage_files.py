"""Moving spooled files into the archive's file storage.

On a local file system the spooled file is hard-linked to its storage name:
no byte is copied, and the spool's fsync already made the data durable, so
only the storage directories need flushing. The spool entry is removed by
the caller once the index commits, so a crash between the two leaves the
file in the spool, from which the sweeper indexes it again. Elsewhere
(object storage, another file system) the file is copied through the
storage API.
"""

import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, default_storage

from pacs import spool

logger = logging.getLogger(__name__)


def place(files: Iterable[tuple[Path, str]]) -> None:
    """Store each spooled ``path`` under its storage ``name``; keep what exists.

    A file already stored under that name (the same instance received
    before, or a crash between storing and indexing) is left as it is.

    Raises
    ------
    OSError
        When the storage cannot be written (disk full, permissions).
    """
    synced: set[Path] = set()
    for path, name in files:
        if isinstance(default_storage, FileSystemStorage) and _link(path, name):
            synced.add(Path(default_storage.path(name)).parent)
        elif not default_storage.exists(name):
            _copy(path, name)
    if settings.NIMBUS_SPOOL_FSYNC:
        for directory in synced:
            spool.fsync_directory(directory)


def _link(path: Path, name: str) -> bool:
    """Hard-link ``path`` to ``name``; False when linking is not possible here."""
    target = Path(default_storage.path(name))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(path, target)
    except FileExistsError:
        return True
    except OSError as error:
        if error.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            return False
        raise
    return True


def _copy(path: Path, name: str) -> None:
    with open(path, "rb") as handle:
        saved = default_storage.save(name, File(handle))
    if saved != name:  # a concurrent writer got there first; keep one copy
        default_storage.delete(saved)
