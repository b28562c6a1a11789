"""MPR and 3D figures on a generated 512x512x300 CT volume, in-process.

    .venv/bin/python bench/viewer_mpr.py [--slices 300] [--repeat 20]

The series is the one `make bench` sends to both servers (bench/run.py:
one real TCIA slice, 300 positions 1.5 mm apart), written to a temporary
folder and decoded the way the viewer does it. Rendering is timed from the
loaded volume, with and without the PNG encoding. No database is needed.
`bench_mpr()` returns the figures for a caller that prints its own table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup_django(storage: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["NIMBUS_STORAGE"] = str(storage)
    import django

    django.setup()


def timed_ms(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds of ``repeat`` calls (after one warm-up)."""
    action()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def bench_mpr(slices: int = 300, repeat: int = 20) -> dict[str, str]:
    """Generate, load and render; returns {measure: figure}."""
    with tempfile.TemporaryDirectory(prefix="nimbus-mpr-") as tmp:
        folder = Path(tmp)
        setup_django(folder)
        from bench.run import generate_series

        _, paths = generate_series(folder / "series", slices)
        return measure(folder, paths, repeat)


def measure(folder: Path, paths: list[Path], repeat: int) -> dict[str, str]:
    import pydicom

    from pacs.ingest import dicom_json, slice_position
    from pacs.models import Instance
    from viewer.mpr import PlaneOrientation, SlabMode, render_plane, standard_grid
    from viewer.render3d import Quality, RenderMode, render_volume
    from viewer.rendering import encode_png
    from viewer.views_mpr import windowed
    from viewer.volume import plan_instances, read_volume

    instances = []
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        position = [float(v) for v in ds.ImagePositionPatient]
        orientation = [float(v) for v in ds.ImageOrientationPatient]
        instances.append(
            Instance(
                pk=index + 1,
                sop_instance_uid=ds.SOPInstanceUID,
                rows=ds.Rows,
                columns=ds.Columns,
                image_position_patient=position,
                image_orientation_patient=orientation,
                slice_position=slice_position(position, orientation),
                metadata=dicom_json(ds),
                storage_path=str(path.relative_to(folder)),
            )
        )

    geometry = plan_instances("bench", "CT", instances)
    by_pk = {i.pk: i for i in instances}
    ordered = [by_pk[pk] for pk in geometry.instance_ids]
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    volume = read_volume(geometry, ordered)
    load_ms = (time.perf_counter() - started) * 1000
    rss_after = psutil.Process().memory_info().rss
    load_p50, _ = timed_ms(lambda: read_volume(geometry, ordered), 2)

    centre = geometry.center
    sagittal = standard_grid(geometry, PlaneOrientation.SAGITTAL, centre)
    axial = standard_grid(geometry, PlaneOrientation.AXIAL, centre)
    slab = 30 * float(geometry.spacing[0])
    window = (40.0, 400.0)

    def png(values: np.ndarray) -> bytes:
        return encode_png(windowed(values, window))

    figures: dict[str, tuple[float, float]] = {
        "sagittal plane (values)": timed_ms(
            lambda: render_plane(volume, sagittal), repeat
        ),
        "sagittal plane (PNG)": timed_ms(
            lambda: png(render_plane(volume, sagittal)), repeat
        ),
        "30-slice MIP slab, axial (values)": timed_ms(
            lambda: render_plane(volume, axial, slab, SlabMode.MIP), repeat
        ),
        "30-slice MIP slab, axial (PNG)": timed_ms(
            lambda: png(render_plane(volume, axial, slab, SlabMode.MIP)), repeat
        ),
        "30-slice MIP slab, sagittal (PNG)": timed_ms(
            lambda: png(render_plane(volume, sagittal, slab, SlabMode.MIP)), repeat
        ),
    }
    angles = iter(range(0, 3600, 7))
    for quality, count in (
        (Quality.COARSE, repeat),
        (Quality.FULL, max(3, repeat // 5)),
    ):
        for mode in RenderMode:
            figures[f"3D {mode} {quality}"] = timed_ms(
                lambda q=quality, m=mode: render_volume(
                    volume, next(angles), 20, m, "bone", q
                ),
                count,
            )

    slices, height, width = geometry.shape
    rows = {
        "volume shape": f"{width}x{height}x{slices} {geometry.dtype}",
        "volume load (first, ms)": f"{load_ms:.0f}",
        "volume load (warm files, ms)": f"{load_p50:.0f}",
        "memory per volume (MB, with 3D copies)": f"{geometry.cache_bytes / 2**20:.0f}",
        "process RSS growth on load (MB)": f"{(rss_after - rss_before) / 2**20:.0f}",
    }
    for name, (p50, p95) in figures.items():
        rows[f"{name} p50/p95 ms"] = f"{p50:.1f} / {p95:.1f}"
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    rows = bench_mpr(args.slices, args.repeat)
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
