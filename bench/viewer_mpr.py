"""MPR and 3D figures on a generated 512x512 CT volume, in-process and over HTTP.

    .venv/bin/python bench/viewer_mpr.py [--slices 300] [--repeat 20]
    .venv/bin/python bench/viewer_mpr.py --http [--slices 500 --spacing 0.378]

The series is the one `make bench` sends to both servers (bench/run.py:
one real TCIA slice, 300 positions 1.5 mm apart), written to a temporary
folder. In-process, it is decoded the way the viewer does it and rendering
is timed from the loaded volume, with and without the PNG encoding; no
database is needed. `bench_mpr()` returns those figures.

Over HTTP (`--http`, and in `make bench` through bench/viewer.py), the
series goes to a running stack with storescu and a signed-in session asks
the page's endpoints for what the MPR page asks: the first plane (which
loads the volume), planes, slabs, an oblique plane and the 3D view, each at
a new position or angle so nothing is answered from a cache.
`bench_mpr_http()` returns those figures.
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
import requests

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
                transfer_syntax_uid=ds.file_meta.TransferSyntaxUID,
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


# --- Over HTTP ----------------------------------------------------------------

# The longest side a plane view asks for in a 1440x900 window (bench/e2e size).
VIEW_SIZE = 768
SLAB_MM = 20.0


def bench_mpr_http(
    session: requests.Session, base: str, study_uid: str, series_uid: str, repeat: int
) -> dict[str, str]:
    """Figures of the MPR endpoints through a running server; {measure: figure}.

    Call it before anything else opened the series' volume: the first plane
    is timed as the volume load.
    """
    prefix = f"{base}/viewer/studies/{study_uid}/series/{series_uid}"

    def get(path: str, **query: object) -> requests.Response:
        response = session.get(prefix + path, params=query, timeout=120)
        if response.status_code != 200 or "X-Render-Error" in response.headers:
            raise RuntimeError(f"Nimbus MPR {path}: HTTP {response.status_code}")
        return response

    geometry = get("/volume.json").json()
    low, high = geometry["bounds"]["min"], geometry["bounds"]["max"]

    def position(index: int, axis: int) -> float:
        """Positions spread through the volume along one patient axis."""
        fraction = 0.2 + 0.6 * ((index * 7919) % repeat) / max(repeat, 1)
        return low[axis] + fraction * (high[axis] - low[axis])

    started = time.perf_counter()
    first = get("/mpr/axial.png", size=VIEW_SIZE)
    rows = {
        "first plane, volume load included (ms)": (
            f"{(time.perf_counter() - started) * 1000:.0f}"
        ),
        "axial plane size asked at 768 (px)": "x".join(
            first.headers["X-Plane-Grid"].split(";")[4:][::-1]
        ),
    }

    def timings(path: str, queries: list[dict[str, object]]) -> str:
        times = []
        for query in queries:
            started = time.perf_counter()
            get(path, size=VIEW_SIZE, **query)
            times.append((time.perf_counter() - started) * 1000)
        return p50_p95(times)

    indices = range(repeat)
    slab = {"thickness": SLAB_MM, "mode": "mip"}
    rows["axial plane p50/p95 (ms)"] = timings(
        "/mpr/axial.png", [{"z": position(i, 2)} for i in indices]
    )
    rows["sagittal plane p50/p95 (ms)"] = timings(
        "/mpr/sagittal.png", [{"x": position(i, 0)} for i in indices]
    )
    rows["coronal plane p50/p95 (ms)"] = timings(
        "/mpr/coronal.png", [{"y": position(i, 1)} for i in indices]
    )
    rows["oblique plane (30 deg) p50/p95 (ms)"] = timings(
        "/mpr/oblique.png",
        [{"y": position(i, 1), "u": "0.866,0.5,0", "v": "0,0,-1"} for i in indices],
    )
    rows[f"{SLAB_MM:g} mm MIP slab, axial p50/p95 (ms)"] = timings(
        "/mpr/axial.png", [{"z": position(i, 2), **slab} for i in indices]
    )
    rows[f"{SLAB_MM:g} mm MIP slab, sagittal p50/p95 (ms)"] = timings(
        "/mpr/sagittal.png", [{"x": position(i, 0), **slab} for i in indices]
    )
    for mode in ("mip", "shaded"):
        rows[f"3D {mode} coarse (256 px) p50/p95 (ms)"] = p50_p95(
            [
                timed_get(get, "/3d.png", azimuth=7 * i, mode=mode, quality="coarse")
                for i in indices
            ]
        )
    return rows


def timed_get(get: Callable[..., object], path: str, **query: object) -> float:
    started = time.perf_counter()
    get(path, **query)
    return (time.perf_counter() - started) * 1000


def p50_p95(timings: list[float]) -> str:
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.1f} / {p95:.1f}"


def generate_volume(
    folder: Path, slices: int, spacing: float
) -> tuple[str, list[Path]]:
    """bench/run.py's CT series with another slice spacing (mm)."""
    import pydicom

    from bench.run import generate_series

    study_uid, paths = generate_series(folder, slices)
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        x, y, _ = ds.ImagePositionPatient
        ds.ImagePositionPatient = [x, y, -spacing * index]
        ds.SliceLocation = -spacing * index
        ds.save_as(path, enforce_file_format=True)
    return study_uid, paths


def bench_mpr_over_http(slices: int, spacing: float, repeat: int) -> dict[str, str]:
    """Start a stack, send it a generated series and measure it over HTTP."""
    import pydicom

    from bench.run import free_port, ingest, nimbus_server
    from bench.viewer import signed_in_session
    from tests.support.stack import running_stack

    with tempfile.TemporaryDirectory(prefix="nimbus-mpr-http-") as tmp:
        folder = Path(tmp)
        study_uid, paths = generate_volume(folder / "series", slices, spacing)
        header = pydicom.dcmread(paths[0], stop_before_pixels=True)
        series_uid = str(header.SeriesInstanceUID)
        with running_stack(folder / "stack", free_port()) as stack:
            ingest(nimbus_server(stack), study_uid, paths, 1)
            base = f"http://127.0.0.1:{stack.web_port}"
            session = signed_in_session(stack, base)
            return bench_mpr_http(session, base, study_uid, series_uid, repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--http", action="store_true", help="through a running stack")
    parser.add_argument("--spacing", type=float, default=1.5, help="slice spacing, mm")
    args = parser.parse_args()

    if args.http:
        rows = bench_mpr_over_http(args.slices, args.spacing, args.repeat)
    else:
        rows = bench_mpr(args.slices, args.repeat)
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
