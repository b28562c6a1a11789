"""What a frame request asks for: window, VOI choice, VOI function and size.

Parsed from the query string alone, without the database, so that the render
cache key of a request is known before anything is loaded: the Django view
and the cached-frame fast path (viewer/fastpath.py) must agree on it.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.translation import gettext as _

from viewer.rendering import VOI_LUT_FUNCTIONS, Window

# Sizes a frame may be scaled down to for a small viewport (a phone needs
# no 2,000-pixel radiograph). A few fixed steps, not any number, so that the
# render cache is shared between screens of about the same size.
SIZE_STEPS = (128, 256, 384, 512, 768, 1024, 1536, 2048)
MIN_SIZE, MAX_SIZE = 16, 16384
VOI_INDEX_LIMIT = 1000
# Far beyond any real window (16-bit values times a rescale slope), but small
# enough that the arithmetic stays exact in float64.
WINDOW_LIMIT = 1e7


class InvalidWindow(ValueError):
    """The query's wc/ww are not a usable window."""


class InvalidRenderOption(ValueError):
    """A ``voi``, ``fn`` or ``size`` query value that cannot be used."""


@dataclass(frozen=True)
class FrameQuery:
    """One rendering of a frame: the parts of its cache key that the URL sets."""

    window: Window | None = None
    voi_index: int = 0
    voi_function: str | None = None
    # The size step asked for; None for the image as stored. Whether the
    # image is smaller than the step anyway is known only from the instance.
    size_step: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> "FrameQuery":
        """Parse ``wc``/``ww``, ``voi``, ``fn`` and ``size``.

        Raises InvalidWindow or InvalidRenderOption for values that cannot
        be used.
        """
        return cls(
            window=parse_window(params),
            voi_index=parse_voi_index(params),
            voi_function=parse_voi_function(params),
            size_step=parse_size_step(params),
        )

    def max_size_for(self, rows: int | None, columns: int | None) -> int | None:
        """The size to scale to for an image of this matrix, or None (as stored)."""
        native = max(rows or 0, columns or 0)
        if self.size_step is None or not native or self.size_step >= native:
            return None
        return self.size_step

    def cache_part(self) -> str:
        # A chosen window overrides the file's VOI choices, so voi_index only
        # tells entries apart when no window is given.
        if self.window is None:
            window_part = f"voi{self.voi_index}"
        else:
            window_part = f"{self.window[0]!r}:{self.window[1]!r}"
        return f"{window_part}:{self.voi_function or 'file'}:{self.size_step or 0}"


def format_number(value: float) -> str:
    """A window value for a response header: 40 rather than 40.0."""
    return f"{value:g}" if value != int(value) else str(int(value))


def parse_window(params: Mapping[str, str]) -> Window | None:
    """The ``wc``/``ww`` query window, or None when neither is given.

    Raises InvalidWindow for one without the other, a non-number, NaN or
    infinity, a width below 1 (PS3.3 C.11.2.1.2) or an absurd magnitude.
    """
    center, width = params.get("wc"), params.get("ww")
    if center is None and width is None:
        return None
    try:
        window = (float(center or ""), float(width or ""))
    except ValueError as error:
        raise InvalidWindow from error
    if not all(math.isfinite(v) and abs(v) <= WINDOW_LIMIT for v in window):
        raise InvalidWindow
    if window[1] < 1:
        raise InvalidWindow
    return window


def parse_voi_index(params: Mapping[str, str]) -> int:
    raw = params.get("voi", "0")
    if not raw.isdigit() or int(raw) > VOI_INDEX_LIMIT:
        raise InvalidRenderOption(
            _("voi must be the number of one of the file's windows.")
        )
    return int(raw)


def parse_voi_function(params: Mapping[str, str]) -> str | None:
    raw = params.get("fn")
    if raw is None:
        return None
    if raw.upper() not in VOI_LUT_FUNCTIONS:
        raise InvalidRenderOption(_("fn must be LINEAR, LINEAR_EXACT or SIGMOID."))
    return raw.upper()


def parse_size_step(params: Mapping[str, str]) -> int | None:
    """The smallest size step at least as large as ``size``; None beyond the steps."""
    raw = params.get("size")
    if raw is None:
        return None
    if not raw.isdigit() or not MIN_SIZE <= int(raw) <= MAX_SIZE:
        raise InvalidRenderOption(
            _("size must be a whole number of pixels from %(min)s to %(max)s.")
            % {"min": MIN_SIZE, "max": MAX_SIZE}
        )
    wanted = int(raw)
    return next((step for step in SIZE_STEPS if step >= wanted), None)
