"""Synthetic instance rows and volumes with known geometry, for MPR tests."""

import numpy as np

from pacs.models import Instance
from viewer.volume import Volume, VolumeGeometry, plan_instances

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def instance_rows(
    count: int = 5,
    *,
    spacing: float = 2.0,
    orientation: list[float] | None = None,
    pixel_spacing: tuple[float, float] = (0.5, 0.5),
    size: tuple[int, int] = (16, 16),
) -> list[Instance]:
    """Unsaved rows of an axial stack at z = 0, spacing, 2 * spacing..."""
    orientation = orientation or AXIAL
    row, column = np.array(orientation[:3]), np.array(orientation[3:])
    normal = np.cross(row, column)
    rows = []
    for index in range(count):
        position = (normal * spacing * index).tolist()
        rows.append(
            Instance(
                pk=index + 1,
                sop_instance_uid=f"1.2.3.{index + 1}",
                rows=size[0],
                columns=size[1],
                image_position_patient=position,
                image_orientation_patient=list(orientation),
                metadata={
                    "00280030": {"vr": "DS", "Value": list(pixel_spacing)},
                    "00280101": {"vr": "US", "Value": [12]},
                    "00281052": {"vr": "DS", "Value": [-1024]},
                    "00281053": {"vr": "DS", "Value": [1]},
                },
            )
        )
    return rows


def synthetic_volume(
    voxels: np.ndarray,
    spacing: tuple[float, float, float] = (2.0, 0.5, 0.5),
    axes: np.ndarray | None = None,
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0),
    modality: str = "CT",
) -> Volume:
    """A loaded volume: voxels (k, i, j) with the given spacing and axes."""
    if axes is None:
        axes = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    geometry = VolumeGeometry(
        series_instance_uid="1.2.3",
        modality=modality,
        shape=voxels.shape,
        origin=np.array(origin, dtype=np.float64),
        axes=np.asarray(axes, dtype=np.float64),
        spacing=np.array(spacing, dtype=np.float64),
        instance_ids=tuple(range(1, voxels.shape[0] + 1)),
        dtype=voxels.dtype,
    )
    return Volume(geometry, voxels, float(voxels.min()), float(voxels.max()))


def plan(rows: list[Instance]) -> VolumeGeometry:
    return plan_instances("1.2.3", "CT", rows)
