"""Large images as tiles at zoom levels, and lossy previews for W/L dragging.

A radiograph or mammogram (up to 4,000 x 5,000 pixels) is too big to send
whole over a slow line each time the reader zooms or pans; the page asks for
the 256-pixel tiles it can see, at the level that fits its zoom. Level 0 is
full resolution and each next level halves both sides (box average), down
to the first level that fits in one tile. Tiles are windowed on the server
like whole frames (PS3.3 C.11 through viewer.rendering) and PNG-encoded,
so they stay lossless.

While the reader drags window/level, the page asks for a small JPEG of the
frame instead (``?preview=1``) and marks it as lossy; the lossless frame
follows when the mouse stops.

Both read the frame through a per-process cache of decoded frames: a
4,000 x 5,000 image is decoded once, not once per tile or per preview.
Windowed full-resolution pictures are kept the same way, per window, so the
tiles of one view share one windowing.
"""

import io
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from django.core.cache import cache
from django.db import connection
from PIL import Image
from pydicom.dataset import Dataset

from pacs.models import Instance
from viewer.rendering import (
    PNG_OPTIONS,
    Window,
    check_renderable,
    decode_frame,
    load_dataset,
    pixels_to_display,
)

TILE_SIZE = 256
# Above this many pixels on a side the viewer switches to tiles.
LARGE_IMAGE_SIDE = 1024
PREVIEW_MAX_SIZE = 384
PREVIEW_QUALITY = 70
TILE_CACHE_SECONDS = 10 * 60
# Decoded frames and windowed pictures kept per process. A 4,000 x 5,000
# radiograph is 40 MB decoded and 20 MB windowed; two of each fit.
DECODED_CACHE_BYTES = 96 * 2**20
PICTURE_CACHE_BYTES = 64 * 2**20

Value = TypeVar("Value")


class ByteBoundedLru(Generic[Value]):
    """A thread-safe least-recently-used map bounded by the bytes it holds."""

    def __init__(self, limit: int, size_of: Callable[[Value], int]) -> None:
        self.limit = limit
        self.size_of = size_of
        self.entries: OrderedDict[Hashable, Value] = OrderedDict()
        self.total = 0
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> Value | None:
        with self.lock:
            value = self.entries.get(key)
            if value is not None:
                self.entries.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Value) -> None:
        size = self.size_of(value)
        if size > self.limit:
            return
        with self.lock:
            if key in self.entries:
                self.total -= self.size_of(self.entries.pop(key))
            self.entries[key] = value
            self.total += size
            while self.total > self.limit:
                _, dropped = self.entries.popitem(last=False)
                self.total -= self.size_of(dropped)


@dataclass(frozen=True)
class DecodedFrame:
    """A frame's decoded values and the header that says how to show them."""

    header: Dataset
    pixels: np.ndarray
    photometric: str


@dataclass(frozen=True)
class Level:
    """One zoom level: its size in pixels and in tiles."""

    level: int
    width: int
    height: int
    columns: int
    rows: int

    def as_json(self) -> dict[str, int]:
        return {
            "level": self.level,
            "width": self.width,
            "height": self.height,
            "columns": self.columns,
            "rows": self.rows,
        }


class NoSuchTile(LookupError):
    """The level or tile position is outside the image."""


_decoded: ByteBoundedLru[DecodedFrame] = ByteBoundedLru(
    DECODED_CACHE_BYTES, lambda frame: frame.pixels.nbytes
)
_pictures: ByteBoundedLru[tuple[Image.Image, Window | None]] = ByteBoundedLru(
    PICTURE_CACHE_BYTES,
    lambda entry: len(entry[0].getbands()) * entry[0].size[0] * entry[0].size[1],
)


def is_large(instance: Instance) -> bool:
    return max(instance.rows or 0, instance.columns or 0) > LARGE_IMAGE_SIDE


def pyramid(width: int, height: int, tile_size: int = TILE_SIZE) -> list[Level]:
    """The zoom levels of a ``width`` x ``height`` image, full resolution first."""
    levels = []
    level = 0
    while True:
        scale = 2**level
        level_width, level_height = math.ceil(width / scale), math.ceil(height / scale)
        levels.append(
            Level(
                level,
                level_width,
                level_height,
                math.ceil(level_width / tile_size),
                math.ceil(level_height / tile_size),
            )
        )
        if level_width <= tile_size and level_height <= tile_size:
            return levels
        level += 1


def tile_box(
    levels: list[Level], level: int, x: int, y: int, tile_size: int = TILE_SIZE
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a tile in its level's pixels.

    Tiles on the right and bottom edges are cut to the image.

    Raises
    ------
    NoSuchTile
        The level or the tile is outside the image.
    """
    if not 0 <= level < len(levels):
        raise NoSuchTile(level)
    size = levels[level]
    if not (0 <= x < size.columns and 0 <= y < size.rows):
        raise NoSuchTile((x, y))
    left, top = x * tile_size, y * tile_size
    return (
        left,
        top,
        min(left + tile_size, size.width),
        min(top + tile_size, size.height),
    )


def decoded_frame(instance: Instance, frame_index: int) -> DecodedFrame:
    """The decoded frame, from this process's cache or the stored file.

    Raises
    ------
    viewer.rendering.RenderError
        Ingest found the pixel data unusable or the frame does not exist.
    """
    key = (connection.schema_name, instance.sop_instance_uid, frame_index)
    frame = _decoded.get(key)
    if frame is not None:
        return frame

    check_renderable(instance, frame_index)
    ds = load_dataset(instance)
    pixels, photometric = decode_frame(ds, frame_index)
    # The header stays for the display chain; the encoded pixels need not.
    if "PixelData" in ds:
        del ds.PixelData
    frame = DecodedFrame(ds, pixels, photometric)
    _decoded.put(key, frame)
    return frame


def windowed_picture(
    instance: Instance, frame_index: int, window: Window | None
) -> tuple[Image.Image, Window | None]:
    """The frame windowed to 8 bits at full resolution, and the window used."""
    key = (connection.schema_name, instance.sop_instance_uid, frame_index, window)
    entry = _pictures.get(key)
    if entry is not None:
        return entry

    frame = decoded_frame(instance, frame_index)
    values, used_window = pixels_to_display(
        frame.header, frame.pixels, frame.photometric, frame_index, window
    )
    entry = (Image.fromarray(np.ascontiguousarray(values)), used_window)
    _pictures.put(key, entry)
    return entry


def render_tile(
    instance: Instance,
    frame_index: int,
    window: Window | None,
    level: int,
    x: int,
    y: int,
) -> tuple[bytes, Window | None]:
    """One tile as PNG, through the render cache, and the window applied.

    Raises
    ------
    NoSuchTile
        The level or tile is outside the image.
    viewer.rendering.RenderError
        The frame cannot be shown.
    """
    levels = pyramid(instance.columns or 0, instance.rows or 0)
    box = tile_box(levels, level, x, y)
    window_part = "default" if window is None else f"{window[0]!r}:{window[1]!r}"
    key = (
        f"viewer:tile:{instance.sop_instance_uid}:{frame_index}:{window_part}:"
        f"{TILE_SIZE}:{level}:{x}:{y}"
    )
    cached = cache.get(key)
    if isinstance(cached, tuple):
        return cached

    picture, used_window = windowed_picture(instance, frame_index, window)
    if level:
        picture = picture.reduce(2**level)
    buffer = io.BytesIO()
    picture.crop(box).save(buffer, format="PNG", **PNG_OPTIONS)
    rendered = (buffer.getvalue(), used_window)
    cache.set(key, rendered, TILE_CACHE_SECONDS)
    return rendered


def render_preview(
    instance: Instance, frame_index: int, window: Window | None
) -> tuple[bytes, Window | None]:
    """A small lossy JPEG of the frame, for the moments W/L is being dragged.

    Never cached: each preview has a window of its own.
    """
    frame = decoded_frame(instance, frame_index)
    values, used_window = pixels_to_display(
        frame.header, frame.pixels, frame.photometric, frame_index, window
    )
    picture = Image.fromarray(np.ascontiguousarray(values))
    factor = math.ceil(max(picture.size) / PREVIEW_MAX_SIZE)
    if factor > 1:
        picture = picture.reduce(factor)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=PREVIEW_QUALITY)
    return buffer.getvalue(), used_window
