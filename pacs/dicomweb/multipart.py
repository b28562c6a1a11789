"""multipart/related bodies (RFC 2387) as PS3.18 uses them (8.6.1.2, 8.7.3).

Writing streams: each part is produced from an iterator of chunks so that a
series is never held in memory. Reading holds one part at a time: a STOW-RS
request carries whole instances, and one instance is the unit that is
validated and stored.
"""

import secrets
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from asgiref.sync import sync_to_async
from django.http.request import MediaType

CRLF = b"\r\n"
READ_CHUNK = 64 * 1024
# RFC 2046 5.1.1: at most 70 characters, and none that needs quoting here.
BOUNDARY_LENGTH = 32


class MultipartError(ValueError):
    """The body is not a well-formed multipart/related message."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class Part:
    """One body part: its headers (names in lower case) and its content."""

    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def new_boundary() -> str:
    return secrets.token_hex(BOUNDARY_LENGTH // 2)


def content_type_header(part_type: str, boundary: str) -> str:
    """The Content-Type of a multipart/related answer (PS3.18 8.7.3.5.1)."""
    return f'multipart/related; type="{part_type}"; boundary={boundary}'


def stream_parts(
    parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str
) -> Iterator[bytes]:
    """Frame each part's chunks as a multipart/related body.

    Parameters
    ----------
    parts : iterable of (headers, chunks)
        The part headers (for example ``Content-Type``) and an iterable of
        its content, consumed lazily.
    boundary : str
        The boundary announced in the response's Content-Type.

    Yields
    ------
    bytes
        The delimiter, headers and content of each part, then the close
        delimiter (RFC 2046 5.1.1).
    """
    delimiter = b"--" + boundary.encode("ascii")
    for headers, chunks in parts:
        head = b"".join(
            f"{name}: {value}".encode("latin-1") + CRLF
            for name, value in headers.items()
        )
        yield delimiter + CRLF + head + CRLF
        yield from chunks
        yield CRLF
    yield delimiter + b"--" + CRLF


async def as_async(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Serve a blocking chunk iterator under ASGI without buffering all of it.

    Django consumes a synchronous iterator into one list under ASGI; pulling
    each chunk in a worker thread keeps memory at one chunk.
    """
    sentinel = b""
    pull = sync_to_async(next, thread_sensitive=False)
    while True:
        chunk = await pull(chunks, sentinel)
        if chunk is sentinel:
            return
        if chunk:
            yield chunk


def boundary_of(content_type: str) -> str:
    """The boundary of a multipart/related Content-Type header.

    Raises
    ------
    MultipartError
        When the header has no usable boundary parameter.
    """
    boundary = MediaType(content_type).params.get("boundary", "").strip('"')
    if not boundary or len(boundary) > 70:
        raise MultipartError("multipart/related without a valid boundary")
    return boundary


def read_parts(stream: Readable, boundary: str) -> Iterator[Part]:
    """Parse a multipart/related body from a file-like stream, part by part.

    Parameters
    ----------
    stream : file-like
        The request body; read in chunks.
    boundary : str
        From the request's Content-Type.

    Yields
    ------
    Part
        Each body part; a preamble and an epilogue are ignored (RFC 2046).

    Raises
    ------
    MultipartError
        When the first delimiter or the close delimiter is missing, or a
        part's header block is malformed.
    """
    reader = _Reader(stream)
    first = b"--" + boundary.encode("latin-1")
    delimiter = CRLF + first

    # The first delimiter may open the body directly, without a leading CRLF.
    if not reader.skip_until(first, at_start=True):
        raise MultipartError("the body has no part delimiter")
    while True:
        after = reader.take(2)
        if after == b"--":
            return
        if after != CRLF:
            raise MultipartError("a part delimiter is not followed by CRLF")
        headers = _parse_headers(reader.take_until(CRLF + CRLF))
        content = reader.take_until(delimiter)
        yield Part(headers, content)


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not block:
        return headers
    for line in block.split(CRLF):
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError("a part header line has no name")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode(
            "latin-1"
        )
    return headers


class _Reader:
    """A read buffer over a stream, for searching delimiters across chunks."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(READ_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def take(self, size: int) -> bytes:
        while len(self.buffer) < size and self._fill():
            pass
        if len(self.buffer) < size:
            raise MultipartError("the body ends inside a part")
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def take_until(self, marker: bytes) -> bytes:
        """The bytes before ``marker``; the marker itself is consumed too."""
        searched = 0
        while True:
            index = self.buffer.find(marker, searched)
            if index >= 0:
                taken = bytes(self.buffer[:index])
                del self.buffer[: index + len(marker)]
                return taken
            searched = max(0, len(self.buffer) - len(marker) + 1)
            if not self._fill():
                raise MultipartError("the body ends before the close delimiter")

    def skip_until(self, marker: bytes, *, at_start: bool) -> bool:
        while len(self.buffer) < len(marker) and self._fill():
            pass
        if at_start and self.buffer.startswith(marker):
            del self.buffer[: len(marker)]
            return True
        try:
            self.take_until(CRLF + marker)
        except MultipartError:
            return False
        return True
