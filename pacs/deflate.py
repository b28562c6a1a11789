"""Reading DICOM files without decompression bombs (PS3.5 A.5, PS3.10 7.1).

A data set in Deflated Explicit VR Little Endian (1.2.840.10008.1.2.1.99) is
one raw deflate stream (RFC 1951) after the File Meta Information. pydicom
inflates that stream whole, in memory, before it reads a single element, and
deflate reaches about 1000:1: a 1 MB upload became a gigabyte in the
listener, in STOW-RS, in the ingest worker and in the renderer.
:func:`check_inflated_size` inflates the stream first in 64 KiB steps, keeps
nothing but a count, and stops at ``NIMBUS_MAX_INFLATED_MB``; only a data set
under the cap is handed to pydicom.

A declared element length is the other way to make a reader allocate: to read
a value from a file on disk, Python allocates the declared length before it
reads (a UN element claiming 4 GB in a 100 KB file). :func:`read_bounded`
never asks the file for more bytes than remain in it. Bytes in memory
(``io.BytesIO``) already answer with what they hold.

Both checks sit in front of every ``dcmread`` of a received or stored file:
the listener's header check, the STOW-RS part check, ingest and the renderer.
"""

import contextlib
import io
import os
import zlib
from typing import IO, Any

import pydicom
from django.conf import settings
from pydicom.dataset import FileDataset
from pydicom.filereader import (
    _read_command_set_elements,
    _read_file_meta_info,
    read_partial,
    read_preamble,
)

from pacs import dicom

DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"

# Bytes read and inflated per step: what one check holds at most, besides
# zlib's 32 KiB window.
CHUNK = 1 << 16


class InflateLimitExceeded(OSError):
    """The deflated data set inflates past the cap; it was not read.

    An ``OSError``, like a file that cannot be read, so that every handler
    of unreadable files (:data:`pacs.dicom.READ_ERRORS`) refuses it too.
    The listener and STOW-RS catch it first: the data set may be valid, only
    too large for this archive, and they answer 0xA700 (Refused: Out of
    Resources, PS3.4 B.2.3) rather than 0xC000.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The deflated data set inflates to more than {limit >> 20} MB "
            "(NIMBUS_MAX_INFLATED_MB)."
        )
        self.limit = limit


def max_inflated_bytes() -> int:
    """``NIMBUS_MAX_INFLATED_MB`` in bytes."""
    return int(settings.NIMBUS_MAX_INFLATED_MB) << 20


def check_inflated_size(fp: IO[bytes], limit: int | None = None) -> int | None:
    """Inflate a deflated PS3.10 file's data set in bounded steps and count it.

    The File Meta Information and any command group are read as pydicom's
    ``read_partial`` reads them, so the stream starts where pydicom's would
    (PS3.10 7.1, PS3.5 A.5). Nothing inflated is kept.

    Parameters
    ----------
    fp : file-like
        The file, positioned at its start (the preamble); left there again.
    limit : int, optional
        Most inflated bytes allowed; ``NIMBUS_MAX_INFLATED_MB`` by default.

    Returns
    -------
    int or None
        The inflated size of the data set, or None when the file is not in
        Deflated Explicit VR Little Endian or its header cannot be read (the
        caller's ``dcmread`` then fails as it would have).

    Raises
    ------
    InflateLimitExceeded
        The data set inflates past ``limit``; inflating stopped there.
    zlib.error
        The deflate stream is broken before the limit.
    """
    limit = max_inflated_bytes() if limit is None else limit
    start = fp.tell()
    try:
        if not _at_deflated_data_set(fp):
            return None
        return _inflated_size(fp, limit)
    finally:
        fp.seek(start)


def _at_deflated_data_set(fp: IO[bytes]) -> bool:
    try:
        read_preamble(fp, False)  # type: ignore[arg-type]
        file_meta = _read_file_meta_info(fp)  # type: ignore[arg-type]
        _read_command_set_elements(fp)  # type: ignore[arg-type]
        syntax = str(file_meta.get("TransferSyntaxUID", ""))
    except dicom.READ_ERRORS:
        return False
    return syntax.strip("\0 ") == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN


def _inflated_size(fp: IO[bytes], limit: int) -> int:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    while not inflater.eof:
        data = inflater.unconsumed_tail or fp.read(CHUNK)
        if not data:
            total += len(inflater.flush())  # at most one pending match
            break
        total += len(inflater.decompress(data, CHUNK))
        if total > limit:
            raise InflateLimitExceeded(limit)
    if total > limit:
        raise InflateLimitExceeded(limit)
    return total


class BoundedFile(io.RawIOBase):
    """A read-only view of a file whose reads never ask for more than remains.

    pydicom reads a value with ``fp.read(length)`` of the declared length;
    a buffered file allocates that length before reading.
    """

    def __init__(self, fp: IO[bytes]) -> None:
        super().__init__()
        self._fp = fp
        start = fp.tell()
        self._size = fp.seek(0, io.SEEK_END)
        fp.seek(start)
        self.name = getattr(fp, "name", None)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(self._size - self._fp.tell(), 0)
        if size is None or size < 0 or size > remaining:
            size = remaining
        return self._fp.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()


def read_bounded(
    source: bytes | str | os.PathLike[str] | IO[bytes],
    limit: int | None = None,
    **kwargs: Any,
) -> FileDataset:
    """``pydicom.dcmread`` within the inflate cap and the file's own size.

    Parameters
    ----------
    source : bytes, path or binary file
        A PS3.10 file; a file object must be at its start.
    limit : int, optional
        Most inflated bytes of a deflated data set (PS3.5 A.5);
        ``NIMBUS_MAX_INFLATED_MB`` by default.
    **kwargs
        Passed to ``pydicom.dcmread`` (``force``, ``stop_before_pixels``,
        ``specific_tags``). Reading stays lenient as configured in
        :func:`pacs.dicom.configure_pydicom`.

    Returns
    -------
    pydicom.dataset.FileDataset

    Raises
    ------
    InflateLimitExceeded
        Before pydicom inflates anything.
    Exception
        Whatever ``dcmread`` raises on damaged bytes
        (:data:`pacs.dicom.READ_ERRORS`).
    """
    with contextlib.ExitStack() as stack:
        if isinstance(source, bytes | bytearray | memoryview):
            fp: IO[bytes] = io.BytesIO(source)
        elif isinstance(source, str | os.PathLike):
            fp = BoundedFile(stack.enter_context(open(source, "rb")))  # noqa: SIM115
        else:
            fp = BoundedFile(source)
        check_inflated_size(fp, limit)
        return pydicom.dcmread(fp, **kwargs)


def read_through(data: bytes, last_tag: int, limit: int | None = None) -> FileDataset:
    """The top-level elements of a PS3.10 file up to ``last_tag``, within the cap.

    A quick look at the start of a received file (which instance it is):
    pydicom stops at the first element past ``last_tag`` instead of walking
    every element up to the pixel data, a sixth of the listener's work on a
    CT slice. Raises as :func:`read_bounded`.
    """
    fp = io.BytesIO(data)
    check_inflated_size(fp, limit)
    return read_partial(
        fp,  # type: ignore[arg-type]
        stop_when=lambda tag, _vr, _length: tag > last_tag,
    )
