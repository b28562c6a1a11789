"""Server-side volume rendering: a rotating MIP and a shaded ray cast.

Orthographic rays go through a downsampled copy of the volume (coarse while
the user drags, finer when they stop). The MIP keeps the largest value on
each ray; the shaded rendering composites front to back through a transfer
function (colour and opacity per Hounsfield unit) with headlight shading
from the value gradient.

The camera turns around the volume's centre: azimuth about the patient's
head-foot axis, elevation towards the head. At (0, 0) the view is from the
front, patient's left on screen right, head up, like a coronal image.
"""

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from PIL import Image

from viewer.volume import (
    PYRAMID_SIDES,
    Vector,
    Volume,
    downsampled_origin,
    pyramid_factors,
)

# Transfer function lookup: one entry per HU from LUT_MIN.
LUT_MIN = -1024
LUT_SIZE = 4096
# Samples per chunk of rays: bounds the memory of one render (~16 B each).
CHUNK_SAMPLES = 2_000_000
AMBIENT = 0.3
# Gradients below this (HU per sample) are flat: lit fully, not by direction.
FLAT_GRADIENT = 5.0


class RenderMode(StrEnum):
    MIP = "mip"
    SHADED = "shaded"


class Quality(StrEnum):
    COARSE = "coarse"
    FULL = "full"


@dataclass(frozen=True)
class QualitySettings:
    pyramid_side: int
    max_rays: int
    output_size: int
    trilinear: bool


QUALITY = {
    Quality.COARSE: QualitySettings(PYRAMID_SIDES[0], 128, 256, trilinear=False),
    Quality.FULL: QualitySettings(PYRAMID_SIDES[1], 256, 512, trilinear=False),
}


@dataclass(frozen=True)
class TransferFunction:
    """Opacity (per mm) and colour as piecewise-linear functions of HU."""

    key: str
    label: str | Promise
    points: tuple[tuple[float, float, tuple[float, float, float]], ...]

    def tables(self, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample opacity and RGB lookup tables for samples ``step_mm`` apart."""
        values = np.arange(LUT_SIZE, dtype=np.float64) + LUT_MIN
        xs = [p[0] for p in self.points]
        opacity = np.interp(values, xs, [p[1] for p in self.points])
        # Opacity correction: the same tissue is as opaque at any sample step.
        alpha = 1.0 - np.power(1.0 - np.clip(opacity, 0.0, 0.999), step_mm)
        colour = np.stack(
            [np.interp(values, xs, [p[2][c] for p in self.points]) for c in range(3)],
            axis=-1,
        )
        return alpha.astype(np.float32), colour.astype(np.float32)


PRESETS = {
    preset.key: preset
    for preset in (
        TransferFunction(
            "bone",
            _("Bone"),
            (
                (-1024, 0.0, (0.0, 0.0, 0.0)),
                (150, 0.0, (0.6, 0.4, 0.3)),
                (300, 0.12, (0.9, 0.78, 0.62)),
                (800, 0.6, (1.0, 0.96, 0.88)),
                (3071, 0.9, (1.0, 1.0, 1.0)),
            ),
        ),
        TransferFunction(
            "angio",
            _("Contrast vessels"),
            (
                (-1024, 0.0, (0.0, 0.0, 0.0)),
                (130, 0.0, (0.5, 0.05, 0.05)),
                (220, 0.15, (0.85, 0.15, 0.1)),
                (450, 0.4, (1.0, 0.45, 0.35)),
                (800, 0.5, (1.0, 0.95, 0.9)),
                (3071, 0.6, (1.0, 1.0, 1.0)),
            ),
        ),
        TransferFunction(
            "soft_tissue",
            _("Soft tissue"),
            (
                (-1024, 0.0, (0.0, 0.0, 0.0)),
                (-400, 0.0, (0.55, 0.3, 0.2)),
                (-80, 0.015, (0.9, 0.65, 0.5)),
                (40, 0.04, (0.85, 0.35, 0.3)),
                (200, 0.1, (0.95, 0.85, 0.75)),
                (1000, 0.7, (1.0, 1.0, 0.97)),
                (3071, 0.8, (1.0, 1.0, 1.0)),
            ),
        ),
    )
}


@dataclass(frozen=True)
class Camera:
    right: Vector
    down: Vector
    direction: Vector


def camera(azimuth: float, elevation: float) -> Camera:
    """View vectors in patient coordinates for angles in degrees."""
    a, e = math.radians(azimuth), math.radians(elevation)
    # Azimuth turns the camera about +z (head) from the front towards the left.
    right = np.array([math.cos(a), math.sin(a), 0.0])
    front = np.array([-math.sin(a), math.cos(a), 0.0])
    head_down = np.array([0.0, 0.0, -1.0])
    # Elevation lifts the camera towards the head: it looks down on the patient.
    direction = math.cos(e) * front + math.sin(e) * head_down
    down = math.cos(e) * head_down - math.sin(e) * front
    return Camera(right, down, direction)


def render_volume(
    volume: Volume,
    azimuth: float,
    elevation: float,
    mode: RenderMode = RenderMode.MIP,
    preset: str = "bone",
    quality: Quality = Quality.COARSE,
) -> np.ndarray:
    """Render the volume as seen from (azimuth, elevation).

    Returns
    -------
    numpy.ndarray
        MIP: float32 values (rows, columns) to be windowed; shaded: uint8 RGB
        (rows, columns, 3); square, ``QUALITY[quality].output_size`` wide.
    """
    settings = QUALITY[quality]
    voxels, spacing = volume.downsampled(settings.pyramid_side)
    geometry = volume.geometry
    factors = pyramid_factors(geometry, settings.pyramid_side)
    origin = downsampled_origin(geometry, factors)
    view = camera(azimuth, elevation)

    centre = geometry.center
    radius = float(np.linalg.norm(geometry.corners - centre, axis=1).max())
    pixel = max(float(spacing.min()), 2 * radius / settings.max_rays)
    rays = int(math.ceil(2 * radius / pixel))
    depths = (geometry.corners - centre) @ view.direction
    samples = int(math.ceil(np.ptp(depths) / pixel)) + 1

    # Index-space steps per pixel along screen x, screen y and the ray.
    to_index = geometry.axes / spacing[:, None]
    steps = np.stack(
        [to_index @ v * pixel for v in (view.right, view.down, view.direction)]
    )
    start = (
        to_index @ (centre - origin)
        - steps[0] * (rays - 1) / 2
        - steps[1] * (rays - 1) / 2
        + steps[2] * depths.min() / pixel
    )
    padded = np.pad(voxels, 1, constant_values=volume.minimum)
    tracer = RayTracer(padded, start + 1, steps, rays, samples, settings.trilinear)

    if mode == RenderMode.MIP:
        return upscale(tracer.mip(), settings.output_size)
    alpha, colour = PRESETS[preset].tables(pixel)
    return upscale(tracer.shaded(alpha, colour), settings.output_size)


def upscale(image: np.ndarray, size: int) -> np.ndarray:
    """Bilinear scaling to ``size`` x ``size`` (float values or 8-bit RGB)."""
    if image.shape[0] == size:
        return image
    if image.ndim == 2:
        picture = Image.fromarray(image.astype(np.float32))
        return np.asarray(picture.resize((size, size), Image.Resampling.BILINEAR))
    picture = Image.fromarray(image)
    return np.asarray(picture.resize((size, size), Image.Resampling.BILINEAR))


@dataclass
class RayTracer:
    """Samples rays through a volume padded with one voxel of background."""

    voxels: np.ndarray
    start: Vector
    steps: Vector
    rays: int
    samples: int
    trilinear: bool

    def chunk_rows(self) -> int:
        return max(1, CHUNK_SAMPLES // (self.rays * self.samples))

    def sample(self, first_row: int, last_row: int) -> np.ndarray:
        """Values at samples of rows [first_row, last_row), shape (rows, x, t)."""
        y = np.arange(first_row, last_row, dtype=np.float32)[:, None, None]
        x = np.arange(self.rays, dtype=np.float32)[None, :, None]
        t = np.arange(self.samples, dtype=np.float32)[None, None, :]
        limit = np.array(self.voxels.shape) - 1
        index = []
        for axis in range(3):
            sx, sy, st = (np.float32(s) for s in self.steps[:, axis])
            coordinate = np.float32(self.start[axis]) + (x * sx + t * st) + y * sy
            index.append(np.clip(coordinate, 0, limit[axis]))
        if self.trilinear:
            return trilinear(self.voxels, index)
        flat = np.rint(index[0]).astype(np.intp) * (
            self.voxels.shape[1] * self.voxels.shape[2]
        )
        flat += np.rint(index[1]).astype(np.intp) * self.voxels.shape[2]
        flat += np.rint(index[2]).astype(np.intp)
        return self.voxels.reshape(-1)[flat]

    def mip(self) -> np.ndarray:
        image = np.empty((self.rays, self.rays), dtype=np.float32)
        step = self.chunk_rows()
        for row in range(0, self.rays, step):
            end = min(row + step, self.rays)
            image[row:end] = self.sample(row, end).max(axis=2)
        return image

    def shaded(self, alpha_table: np.ndarray, colour_table: np.ndarray) -> np.ndarray:
        image = np.zeros((self.rays, self.rays, 3), dtype=np.float32)
        step = self.chunk_rows()
        for row in range(0, self.rays, step):
            end = min(row + step, self.rays)
            # One row of halo on each side for the gradient across chunks.
            first, last = max(row - 1, 0), min(end + 1, self.rays)
            values = self.sample(first, last)
            image[row:end] = composite(
                values, alpha_table, colour_table, row - first, end - first
            )
        return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def composite(
    values: np.ndarray,
    alpha_table: np.ndarray,
    colour_table: np.ndarray,
    keep_from: int,
    keep_to: int,
) -> np.ndarray:
    """Front-to-back compositing along the last axis with headlight shading."""
    gradient = np.gradient(values)
    values = values[keep_from:keep_to]
    along_ray, across_y, across_x = (
        g[keep_from:keep_to] for g in (gradient[2], gradient[0], gradient[1])
    )
    magnitude = np.sqrt(along_ray**2 + across_y**2 + across_x**2)
    facing = np.abs(along_ray) / np.maximum(magnitude, FLAT_GRADIENT)
    facing = np.where(magnitude < FLAT_GRADIENT, 1.0, facing)
    shade = AMBIENT + (1 - AMBIENT) * facing

    lut = np.clip(values - LUT_MIN, 0, LUT_SIZE - 1).astype(np.intp)
    alpha = alpha_table[lut]
    transmitted = np.cumprod(1 - alpha, axis=-1)
    # What reaches each sample is what passed every sample in front of it.
    before = np.concatenate(
        [np.ones_like(transmitted[..., :1]), transmitted[..., :-1]], axis=-1
    )
    weight = alpha * before * shade
    return np.stack(
        [(weight * colour_table[lut, c]).sum(axis=-1) for c in range(3)], axis=-1
    )


def trilinear(voxels: np.ndarray, index: list[np.ndarray]) -> np.ndarray:
    """Trilinear samples at clipped fractional indices (one array per axis)."""
    shape = voxels.shape
    flat = voxels.reshape(-1)
    strides = (shape[1] * shape[2], shape[2], 1)
    lows, fracs = [], []
    for axis in range(3):
        low = np.minimum(index[axis].astype(np.intp), shape[axis] - 2)
        lows.append(low)
        fracs.append(index[axis] - low)
    base = lows[0] * strides[0] + lows[1] * strides[1] + lows[2]
    result = np.zeros(base.shape, dtype=np.float32)
    for dk in (0, 1):
        wk = fracs[0] if dk else 1 - fracs[0]
        for di in (0, 1):
            wki = wk * (fracs[1] if di else 1 - fracs[1])
            for dj in (0, 1):
                weight = wki * (fracs[2] if dj else 1 - fracs[2])
                result += weight * flat[base + (dk * strides[0] + di * strides[1] + dj)]
    return result
