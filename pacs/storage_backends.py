"""The archive on S3-compatible object storage, read through a local cache.

Writes go to the bucket (``pacs.storage_files.place``). Reads do not stream
from it: the viewer opens one instance again for each frame, window and
thumbnail, C-GET and WADO-RS read whole files, and pydicom seeks back and
forth. Each read of an object therefore fetches it once into a local cache
folder and opens the local copy, a real file, as ``default_storage.open``
always returned on a local archive. Stored files never change (a SOP
Instance UID is stored once and kept as first received), so a cached copy
is never stale while the object exists.

The cache is bounded: after roughly a tenth of its size has been fetched,
the process that fetched it removes the least recently read files (by
modification time, which a hit refreshes) until the cache is at 90 % of the
bound. Several processes may share one folder: a copy is fetched under a
name of its own and renamed into place, and a file removed while another
process reads it stays readable to that reader (POSIX unlink).
"""

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from django.core.files.base import File
from django.utils._os import safe_join
from storages.backends.s3 import S3Storage
from storages.utils import clean_name

logger = logging.getLogger(__name__)

# Fetches left by a process killed mid-download are removed after this long.
_ORPHAN_SECONDS = 3600


class ReadCache:
    """A folder of local copies of stored files, at most ``max_bytes`` (roughly)."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # The first fill of a process trims at once: others may have filled it.
        self._fetched_since_trim = max_bytes

    def path(self, name: str) -> Path:
        return Path(safe_join(str(self.root), name))

    def get(self, name: str, fetch: Callable[[Path], None]) -> Path:
        """The local copy of ``name``, made with ``fetch(path)`` when missing."""
        local = self.path(name)
        try:
            os.utime(local)  # most recently used: trimmed last
            return local
        except FileNotFoundError:
            pass

        local.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = local.with_name(
            f".{local.name}.{os.getpid()}.{threading.get_ident()}.part"
        )
        try:
            fetch(partial)
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)
        self._count(local.stat().st_size)
        return local

    def drop(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def _count(self, size: int) -> None:
        with self._lock:
            self._fetched_since_trim += size
            due = self._fetched_since_trim >= self.max_bytes // 10
            if due:
                self._fetched_since_trim = 0
        if due:
            self.trim()

    def trim(self) -> int:
        """Remove the least recently read copies past the bound; the bytes freed."""
        entries = []
        now = time.time()
        for folder, _dirs, files in os.walk(self.root):
            for file_name in files:
                path = Path(folder, file_name)
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # trimmed by another process meanwhile
                if file_name.endswith(".part"):
                    if now - stat.st_mtime > _ORPHAN_SECONDS:
                        path.unlink(missing_ok=True)
                    continue
                entries.append((stat.st_mtime, stat.st_size, path))

        total = sum(size for _mtime, size, _path in entries)
        if total <= self.max_bytes:
            return 0
        target, freed = self.max_bytes * 9 // 10, 0
        for _mtime, size, path in sorted(entries):
            path.unlink(missing_ok=True)
            freed += size
            if total - freed <= target:
                break
        logger.info("Storage cache trimmed: %s bytes freed", freed)
        return freed


class ArchiveS3Storage(S3Storage):
    """django-storages' S3 backend, reading through a :class:`ReadCache`.

    Files are never overwritten: the first copy of an instance is the one
    kept (``pacs.storage_files.place``).
    """

    def __init__(self, *, cache_dir: str, cache_max_mb: int, **settings: Any) -> None:
        super().__init__(file_overwrite=False, **settings)
        self.cache = ReadCache(Path(cache_dir), cache_max_mb * 1024 * 1024)

    def _open(self, name: str, mode: str = "rb") -> File:
        if "w" in mode or "a" in mode or "+" in mode:
            return super()._open(name, mode)
        local = self.cache.get(name, lambda path: self._fetch(name, path))
        return File(open(local, "rb"), name)  # noqa: SIM115 - the caller closes it

    def delete(self, name: str) -> None:
        super().delete(name)
        self.cache.drop(name)

    def key(self, name: str) -> str:
        """The object key of the stored file ``name`` (with the prefix)."""
        return str(self._normalize_name(clean_name(name)))

    def _fetch(self, name: str, path: Path) -> None:
        try:
            self.connection.meta.client.download_file(
                self.bucket_name, self.key(name), str(path)
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                raise FileNotFoundError(f"No stored file {name}") from None
            raise
