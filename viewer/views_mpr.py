"""MPR, slabs and 3D of one series: the page, its geometry and rendered PNGs.

The series is loaded through pacs.access (outsiders get 404) and its volume
through the per-process cache of viewer.volume. Images are rendered here,
on the server; a series that is not a regular volume answers with the
refusal message (JSON) or an error image (PNG), never a 500.
"""

import math
from typing import TypeVar

import numpy as np
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from pacs.access import get_series_for_user
from pacs.dicom import display_person_name
from pacs.models import Series
from viewer.actions import do_record_frames_viewed
from viewer.frame_query import (
    SIZE_STEPS,
    InvalidRenderOption,
    InvalidWindow,
    parse_size_step,
    parse_window,
)
from viewer.mpr import (
    PlaneError,
    PlaneGrid,
    PlaneOrientation,
    SlabMode,
    plane_grid,
    render_plane,
    standard_grid,
)
from viewer.render3d import PRESETS, Quality, RenderMode, render_volume
from viewer.rendering import Rendered, Window, apply_window, encode_png, error_png
from viewer.selectors import CT_PRESETS, ordered_instances, window_presets
from viewer.views import png_response
from viewer.volume import (
    Volume,
    VolumeError,
    VolumeGeometry,
    plan_volume,
    series_volume,
)

# A slab thicker than this (mm) is refused: no body is larger.
MAX_SLAB_MM = 1000.0
# Coordinates beyond this (mm) are nonsense, not a position in a patient.
MAX_COORDINATE_MM = 1e5
PLANE_ORIENTATIONS = frozenset(o.value for o in PlaneOrientation)


class BadParameter(ValueError):
    """A query parameter is malformed; the message is for the client."""


@require_GET
@login_required
def mpr_viewer(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponse:
    series = get_series_for_user(request.user, study_uid, series_uid)
    study = series.study
    args = [study_uid, series_uid]
    config = {
        "volumeUrl": reverse("viewer:volume", args=args),
        "planeUrl": reverse("viewer:mpr_plane", args=[*args, "__plane__"]),
        "renderUrl": reverse("viewer:volume_render", args=args),
        "sizeSteps": SIZE_STEPS,
        "labels": mpr_labels(),
    }
    context = {
        "study": study,
        "series": series,
        "patient": study.patient,
        "patient_name": display_person_name(study.patient.patient_name),
        # The tenant's windows for the modality, as in the stack viewer.
        "window_presets": window_presets([series.modality])[series.modality]
        or (CT_PRESETS if series.modality == "CT" else ()),
        "render_presets": PRESETS.values(),
        "slab_modes": slab_mode_labels(),
        "config": config,
    }
    return render(request, "viewer/mpr.html", context)


@require_GET
@login_required
def volume_geometry(
    request: HttpRequest, study_uid: str, series_uid: str
) -> JsonResponse:
    """What the page needs to link its views, or why MPR is refused."""
    series = get_series_for_user(request.user, study_uid, series_uid)
    try:
        geometry = plan_volume(series)
    except VolumeError as error:
        return JsonResponse(
            {"available": False, "reason": error.reason, "message": error.message}
        )
    return JsonResponse(geometry_description(series, geometry))


@require_GET
@login_required
def mpr_plane(
    request: HttpRequest, study_uid: str, series_uid: str, orientation: str
) -> HttpResponse:
    """A plane or slab as PNG.

    Query: ``x``, ``y``, ``z`` a point on the plane (mm, default the volume
    centre); for ``oblique`` also ``u`` and ``v``, the screen-right and
    screen-down directions as ``dx,dy,dz``; ``thickness`` (mm) and ``mode``
    (mip, minip, average) for a slab; ``wc``/``ww`` a window; ``size`` the
    longest side the viewport shows (rounded up to a size step, as for
    frames). The plane is never larger than its source's resolution.
    """
    series = get_series_for_user(request.user, study_uid, series_uid)
    if orientation not in PLANE_ORIENTATIONS:
        raise Http404(_("No such plane."))
    try:
        window = requested_window(request)
        thickness = parse_number(request, "thickness", 0.0, 0.0, MAX_SLAB_MM)
        mode = parse_choice(request, "mode", SlabMode, SlabMode.MIP)
        size = requested_size(request)
    except BadParameter as error:
        return bad_request(str(error))

    try:
        volume = series_volume(series)
        grid = requested_grid(request, volume.geometry, PlaneOrientation(orientation))
        if size is not None:
            grid = grid.fitted(size)
    except VolumeError as error:
        return refusal_png(error)
    except (BadParameter, PlaneError) as error:
        return bad_request(str(error))

    values = render_plane(volume, grid, thickness, mode)
    do_record_frames_viewed(request, series)
    response = windowed_png(values, volume, window or default_window(series, volume))
    response["X-Plane-Grid"] = plane_header(grid)
    return response


@require_GET
@login_required
def volume_render(
    request: HttpRequest, study_uid: str, series_uid: str
) -> HttpResponse:
    """A 3D view as PNG.

    Query: ``azimuth`` and ``elevation`` in degrees, ``mode`` (mip or
    shaded), ``preset`` (bone, angio, soft_tissue) for shaded, ``quality``
    (coarse while rotating, full when still), ``wc``/``ww`` for the MIP.
    """
    series = get_series_for_user(request.user, study_uid, series_uid)
    try:
        window = requested_window(request)
        azimuth = parse_number(request, "azimuth", 0.0, -3600.0, 3600.0)
        elevation = parse_number(request, "elevation", 0.0, -90.0, 90.0)
        mode = parse_choice(request, "mode", RenderMode, RenderMode.MIP)
        quality = parse_choice(request, "quality", Quality, Quality.FULL)
        preset = request.GET.get("preset", "bone")
        if preset not in PRESETS:
            raise BadParameter(_("Unknown preset."))
    except BadParameter as error:
        return bad_request(str(error))

    try:
        volume = series_volume(series)
    except VolumeError as error:
        return refusal_png(error)

    image = render_volume(volume, azimuth, elevation, mode, preset, quality)
    do_record_frames_viewed(request, series)
    if mode == RenderMode.MIP:
        return windowed_png(image, volume, window or default_window(series, volume))
    return png_response(Rendered(encode_png(image), None))


# --- Parameters ---------------------------------------------------------------


def requested_grid(
    request: HttpRequest, geometry: VolumeGeometry, orientation: PlaneOrientation
) -> PlaneGrid:
    point = parse_vector(request, ("x", "y", "z"), geometry.center)
    if orientation != PlaneOrientation.OBLIQUE:
        return standard_grid(geometry, orientation, point)
    u, v = parse_direction(request, "u"), parse_direction(request, "v")
    return plane_grid(geometry, u, v, point)


def requested_size(request: HttpRequest) -> int | None:
    try:
        return parse_size_step(request.GET)
    except InvalidRenderOption as error:
        raise BadParameter(str(error)) from None


def requested_window(request: HttpRequest) -> Window | None:
    try:
        return parse_window(request.GET)
    except InvalidWindow:
        raise BadParameter(
            _("wc and ww must be given together as numbers, with ww at least 1.")
        ) from None


def parse_number(
    request: HttpRequest, name: str, default: float, low: float, high: float
) -> float:
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise BadParameter(
            _("%(name)s must be a number from %(low)g to %(high)g.")
            % {"name": name, "low": low, "high": high}
        )
    return value


def parse_vector(
    request: HttpRequest, names: tuple[str, str, str], default: np.ndarray
) -> np.ndarray:
    limit = MAX_COORDINATE_MM
    return np.array(
        [
            parse_number(request, name, float(default[i]), -limit, limit)
            for i, name in enumerate(names)
        ]
    )


def parse_direction(request: HttpRequest, name: str) -> np.ndarray:
    parts = request.GET.get(name, "").split(",")
    try:
        vector = np.array([float(p) for p in parts], dtype=np.float64)
    except ValueError:
        vector = np.array([])
    if vector.shape != (3,) or not np.all(np.isfinite(vector)):
        raise BadParameter(
            _("%(name)s must be a direction given as three numbers.") % {"name": name}
        )
    return vector


Choice = TypeVar("Choice", SlabMode, RenderMode, Quality)


def parse_choice(
    request: HttpRequest, name: str, choices: type[Choice], default: Choice
) -> Choice:
    raw = request.GET.get(name)
    if not raw:
        return default
    try:
        return choices(raw)
    except ValueError:
        raise BadParameter(
            _("%(name)s must be one of: %(choices)s.")
            % {"name": name, "choices": ", ".join(c.value for c in choices)}
        ) from None


# --- Answers ------------------------------------------------------------------


def windowed(values: np.ndarray, window: Window, invert: bool = False) -> np.ndarray:
    """Modality values to 8-bit grey through a linear window (PS3.3 C.11.2)."""
    shown = apply_window(values, window)
    if invert:
        shown = 1.0 - shown
    return np.rint(shown * 255.0).astype(np.uint8)


def windowed_png(values: np.ndarray, volume: Volume, window: Window) -> HttpResponse:
    image = windowed(values, window, volume.geometry.monochrome1)
    return png_response(Rendered(encode_png(image), window))


def default_window(series: Series, volume: Volume) -> Window:
    """The series' own window, else one spanning the volume's values."""
    found = series_window(series)
    if found is not None:
        return (found["center"], max(found["width"], 1.0))
    width = max(volume.maximum - volume.minimum + 1.0, 1.0)
    return (volume.minimum + width / 2, width)


def series_window(series: Series) -> dict[str, float] | None:
    """The first window of the series in reading order, as the stack viewer's.

    One row, not every instance: planes ask for it on each request.
    """
    first = (
        ordered_instances(series)
        .filter(window_center__isnull=False, window_width__isnull=False)
        .exclude(window_width=0)
        .values("window_center", "window_width")
        .first()
    )
    if first is None:
        return None
    return {"center": first["window_center"], "width": first["window_width"]}


def refusal_png(error: VolumeError) -> HttpResponse:
    response = HttpResponse(error_png(error.message), content_type="image/png")
    response["X-Render-Error"] = "1"
    return response


def bad_request(message: str) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def plane_header(grid: PlaneGrid) -> str:
    """origin;u;v;row,column spacing;rows;columns, for placing the crosshair."""
    parts = [
        ",".join(f"{x:.4f}" for x in grid.origin),
        ",".join(f"{x:.6f}" for x in grid.u),
        ",".join(f"{x:.6f}" for x in grid.v),
        f"{grid.row_spacing:.6f},{grid.column_spacing:.6f}",
        str(grid.rows),
        str(grid.columns),
    ]
    return ";".join(parts)


def geometry_description(series: Series, geometry: VolumeGeometry) -> dict[str, object]:
    centre = geometry.center
    corners = geometry.corners
    planes = {
        orientation.value: standard_grid(geometry, orientation, centre).as_dict()
        for orientation in PlaneOrientation
        if orientation != PlaneOrientation.OBLIQUE
    }
    slices, rows, columns = geometry.shape
    return {
        "available": True,
        "series_instance_uid": series.series_instance_uid,
        "modality": series.modality,
        "dimensions": {"columns": columns, "rows": rows, "slices": slices},
        "spacing": {
            "column": float(geometry.spacing[2]),
            "row": float(geometry.spacing[1]),
            "slice": float(geometry.spacing[0]),
        },
        "origin": [float(x) for x in geometry.origin],
        "row_direction": [float(x) for x in geometry.axes[2]],
        "column_direction": [float(x) for x in geometry.axes[1]],
        "slice_direction": [float(x) for x in geometry.axes[0]],
        "center": [round(float(x), 4) for x in centre],
        "bounds": {
            "min": [round(float(x), 4) for x in corners.min(axis=0)],
            "max": [round(float(x), 4) for x in corners.max(axis=0)],
        },
        "memory_mb": round(geometry.cache_bytes / 2**20, 1),
        "default_window": series_window(series),
        "planes": planes,
    }


def slab_mode_labels() -> list[tuple[str, str]]:
    return [
        (SlabMode.MIP.value, _("MIP")),
        (SlabMode.MINIP.value, _("MinIP")),
        (SlabMode.AVERAGE.value, _("Average")),
    ]


def mpr_labels() -> dict[str, str]:
    """Text the page's script shows, translated here (the script has no gettext)."""
    return {
        "loading": _("Loading volume…"),
        "failed": _("The image could not be loaded."),
        "position": _("%(mm)s mm"),
        "slab": _("Slab %(mm)s mm %(mode)s"),
        "window": _("W: %(ww)s L: %(wc)s"),
        "angles": _("Azimuth %(azimuth)s° elevation %(elevation)s°"),
        "coarse": _("Preview"),
        "tilt": _("Tilt %(degrees)s°"),
    }
