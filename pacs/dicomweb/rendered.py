"""Parameters of the WADO-RS rendered resources (PS3.18 8.3.5.1).

The rendered resources belong to the Retrieve transaction (PS3.18 10.4). Only
the request is read here; ``viewer.rendering.render_png`` draws the pixels.
"""

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext as _

FRAME_LIST_PATTERN = re.compile(r"^[0-9]+(,[0-9]+)*$")


class VoiLutFunction(StrEnum):
    """VOI LUT Function defined terms (PS3.3 C.11.2.1.3)."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


# The renderer applies all three functions of PS3.3 C.11.2.1.2/3.
SUPPORTED_FUNCTIONS = set(VoiLutFunction)


class RenderingParameterError(ValueError):
    """A rendering parameter is malformed; the message is shown (400)."""


@dataclass(frozen=True)
class Window:
    """A VOI window: centre, width and function (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: VoiLutFunction = VoiLutFunction.LINEAR


def parse_window(raw: str | None) -> Window | None:
    """Read the ``window`` query parameter (PS3.18 8.3.5.1.3).

    The syntax is ``window=center,width,function``; the function may be left
    out and defaults to LINEAR. For LINEAR the width must be at least 1
    (PS3.3 C.11.2.1.2.1).

    Parameters
    ----------
    raw : str or None
        The parameter's value, None when absent.

    Returns
    -------
    Window or None
        None when the parameter is absent: the renderer picks a window.

    Raises
    ------
    RenderingParameterError
        For a value that is not two numbers and an optional defined term, a
        width under 1, or a function the renderer does not apply.
    """
    if raw is None:
        return None

    parts = [part.strip() for part in raw.split(",")]
    if len(parts) not in (2, 3):
        raise RenderingParameterError(
            _("window must be center,width,function, for example 40,400,LINEAR.")
        )
    try:
        center, width = float(parts[0]), float(parts[1])
    except ValueError as error:
        raise RenderingParameterError(
            _("The window center and width must be numbers.")
        ) from error
    if not (math.isfinite(center) and math.isfinite(width)):
        raise RenderingParameterError(
            _("The window center and width must be finite numbers.")
        )

    function = _function(parts[2] if len(parts) == 3 else "")
    if width < 1:
        raise RenderingParameterError(_("The window width must be at least 1."))
    return Window(center, width, function)


def _function(raw: str) -> VoiLutFunction:
    if not raw:
        return VoiLutFunction.LINEAR
    try:
        function = VoiLutFunction(raw.upper())
    except ValueError as error:
        raise RenderingParameterError(
            _("“%(value)s” is not a VOI LUT function (LINEAR, LINEAR_EXACT, SIGMOID).")
            % {"value": raw}
        ) from error
    if function not in SUPPORTED_FUNCTIONS:
        raise RenderingParameterError(
            _("The %(function)s window function is not supported; use LINEAR.")
            % {"function": function.value}
        )
    return function


def parse_frame_number(frame_list: str) -> int:
    """The one frame a rendered frames request asks for (PS3.18 8.3.5.1).

    Parameters
    ----------
    frame_list : str
        The ``{frameList}`` path segment: frame numbers from 1, comma-separated.

    Returns
    -------
    int
        The frame number, counting from 1.

    Raises
    ------
    RenderingParameterError
        When the list is malformed, names frame 0, or names more than one
        frame: a PNG holds one frame, and Nimbus renders no video.
    """
    if not FRAME_LIST_PATTERN.match(frame_list):
        raise RenderingParameterError(
            _("Frames are numbered from 1, for example frames/1/rendered.")
        )
    numbers = [int(number) for number in frame_list.split(",")]
    if len(numbers) > 1:
        raise RenderingParameterError(_("Only one frame can be rendered per request."))
    if numbers[0] < 1:
        raise RenderingParameterError(_("Frames are numbered from 1."))
    return numbers[0]
