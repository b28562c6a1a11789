"""The viewer section of `make bench`: rendered frames, Nimbus beside Orthanc.

    .venv/bin/python bench/viewer.py [--slices 300] [--repeat 50] [--no-mpr]

Both servers run on 127.0.0.1 with throw-away storage and receive the same
generated CT series (bench/run.py's: one real TCIA slice at 300 positions)
through dcmtk's storescu. Then the same client asks each for what a viewer
needs, over HTTP with keep-alive:

- Nimbus: the study page, the series' image list (JSON) and the viewer's
  frame endpoint (PNG), with a signed-in session as the browser has.
- Orthanc: /tools/lookup, the study's series, /series/{id}/ordered-slices
  and /instances/{id}/frames/0/rendered (PNG), without authentication.

"Uncached" frames are ones the server has not rendered before; "cached" is
the same frame asked again (Orthanc keeps no rendered frames, so its two
figures differ only by its file cache). Scrolling fetches 64 consecutive
frames six at a time, as a browser does over HTTP/1.1. `viewer_section()`
returns the rows for bench/run.py's table, with bench/viewer_mpr.py's MPR
figures (over HTTP through the same signed-in session, and in-process;
Nimbus only) added. Nothing here asserts a target.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    free_port,
    generate_series,
    ingest,
    nimbus_server,
    orthanc,
)
from tests.support.stack import PASSWORD, Stack, running_stack  # noqa: E402

SCROLL_FRAMES = 64
# Chromium opens at most six connections per host over HTTP/1.1.
BROWSER_CONNECTIONS = 6
NIMBUS = "Nimbus"
ORTHANC = "Orthanc"
Rows = dict[str, dict[str, str]]


@dataclass
class Target:
    """One server seen as a viewer sees it: how to open a study and get frames."""

    name: str
    base: str
    session: requests.Session
    open_study: Callable[[], list[str]]
    open_series: Callable[[], list[str]]
    window_query: Callable[[float, float], str]
    preview_query: str = ""

    def get(self, url: str, session: requests.Session | None = None) -> bytes:
        response = (session or self.session).get(self.base + url, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"{self.name} {url}: HTTP {response.status_code}")
        return response.content

    def clone_session(self) -> requests.Session:
        session = requests.Session()
        session.cookies.update(self.session.cookies)
        session.headers.update(self.session.headers)
        return session


# --- The two servers, as a viewer reaches them -------------------------------


def frame_urls(listing: dict) -> list[str]:
    """Every frame's URL of a viewer series list (docs/viewer.md), in order."""
    urls = []
    for listed in listing["instances"]:
        instance = {**listing["common"], **listed}
        url = listing["frame_url"].replace(
            "{sop_instance_uid}", instance["sop_instance_uid"]
        )
        for frame in range(1, max(instance["number_of_frames"], 1) + 1):
            urls.append(url.replace("{frame}", str(frame)))
    return urls


def nimbus_target(stack: Stack, study_uid: str, series_uid: str) -> Target:
    base = f"http://127.0.0.1:{stack.web_port}"
    session = signed_in_session(stack, base)
    series_url = f"/viewer/studies/{study_uid}/series/{series_uid}/"

    def open_series() -> list[str]:
        return frame_urls(session.get(base + series_url, timeout=60).json())

    def open_study() -> list[str]:
        page = session.get(f"{base}/viewer/studies/{study_uid}/", timeout=60)
        if page.status_code != 200:
            raise RuntimeError(f"Nimbus viewer page: HTTP {page.status_code}")
        return open_series()

    return Target(
        NIMBUS,
        base,
        session,
        open_study,
        open_series,
        lambda wc, ww: f"?wc={wc:g}&ww={ww:g}",
        "?preview=1",
    )


def signed_in_session(stack: Stack, base: str) -> requests.Session:
    """A session through the sign-in form: password and a fresh one-time code."""
    session = requests.Session()
    login = f"{base}/accounts/login/"
    form = session.get(login, timeout=30).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    if token is None:
        raise RuntimeError("Nimbus sign-in page without a CSRF token")
    response = session.post(
        login,
        data={
            "username": stack.username,
            "password": PASSWORD,
            "otp_token": stack.fresh_otp(),
            "csrfmiddlewaretoken": token.group(1),
            "next": "/",
        },
        timeout=30,
    )
    if response.status_code != 200 or "sessionid" not in session.cookies:
        raise RuntimeError("Nimbus sign-in failed")
    return session


def orthanc_target(base: str, study_uid: str) -> Target:
    session = requests.Session()

    def orthanc_json(path: str, body: str | None = None) -> object:
        if body is None:
            response = session.get(base + path, timeout=60)
        else:
            response = session.post(base + path, data=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def series_id() -> str:
        found = orthanc_json("/tools/lookup", study_uid)
        study_id = found[0]["ID"]  # type: ignore[index]
        return str(orthanc_json(f"/studies/{study_id}/series")[0]["ID"])  # type: ignore[index]

    def frames_of(series: str) -> list[str]:
        slices = orthanc_json(f"/series/{series}/ordered-slices")
        paths = slices["SlicesShort"]  # type: ignore[index]
        # Each entry: [instance ID, first frame, number of frames].
        return [f"/instances/{entry[0]}/frames/0/rendered" for entry in paths]

    known: dict[str, str] = {}

    def open_study() -> list[str]:
        known["series"] = series_id()
        return frames_of(known["series"])

    def open_series() -> list[str]:
        return frames_of(known.get("series") or series_id())

    return Target(
        ORTHANC,
        base,
        session,
        open_study,
        open_series,
        lambda wc, ww: f"?window={ww:g}&level={wc:g}",
    )


# --- Measures -----------------------------------------------------------------


def elapsed_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def p50_p95(timings: list[float]) -> str:
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.1f} / {p95:.1f}"


def first_image_ms(target: Target) -> tuple[float, list[str]]:
    """Open the study (page or lookups, series list) and fetch its first frame."""
    started = time.perf_counter()
    urls = target.open_study()
    target.get(urls[0])
    return (time.perf_counter() - started) * 1000, urls


def scroll_seconds(target: Target, urls: list[str]) -> float:
    """Fetch ``urls`` in order, BROWSER_CONNECTIONS at a time, as a prefetch does."""
    sessions = [target.clone_session() for _ in range(BROWSER_CONNECTIONS)]
    for session in sessions:  # open the connections first, as a browser has them
        session.get(target.base + urls[0], timeout=60)
    chunks = [urls[i::BROWSER_CONNECTIONS] for i in range(BROWSER_CONNECTIONS)]

    def fetch_all(index: int) -> None:
        for url in chunks[index]:
            target.get(url, sessions[index])

    started = time.perf_counter()
    with ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
        list(pool.map(fetch_all, range(BROWSER_CONNECTIONS)))
    return time.perf_counter() - started


def measure(target: Target, repeat: int) -> dict[str, str]:
    """Every figure for one server; the order matters: each frame set is fresh."""
    first_ms, urls = first_image_ms(target)
    row = {"time to first image (ms)": f"{first_ms:.0f}"}

    uncached = [elapsed_ms(lambda u=url: target.get(u)) for url in urls[1 : 1 + repeat]]
    row["frame uncached p50/p95 (ms)"] = p50_p95(uncached)
    cached = [elapsed_ms(lambda: target.get(urls[1])) for _ in range(repeat)]
    row["frame cached p50/p95 (ms)"] = p50_p95(cached)

    windows = [(40.0 + index, 400.0) for index in range(repeat)]
    windowed = [
        elapsed_ms(lambda w=w: target.get(urls[2] + target.window_query(*w)))
        for w in windows
    ]
    row["frame, new window each p50/p95 (ms)"] = p50_p95(windowed)
    if target.preview_query:
        previews = [
            elapsed_ms(
                lambda w=w: target.get(urls[3] + target.window_query(*w) + "&preview=1")
            )
            for w in windows
        ]
        row["lossy W/L preview p50/p95 (ms)"] = p50_p95(previews)

    opens = [
        elapsed_ms(lambda: target.get(target.open_series()[0])) for _ in range(repeat)
    ]
    row[f"series open, {len(urls)} slices p50/p95 (ms)"] = p50_p95(opens)

    scroll = urls[-SCROLL_FRAMES - 1 : -1]
    row[f"{SCROLL_FRAMES} frames x{BROWSER_CONNECTIONS}, uncached (s)"] = (
        f"{scroll_seconds(target, scroll):.3f}"
    )
    row[f"{SCROLL_FRAMES} frames x{BROWSER_CONNECTIONS}, cached (s)"] = (
        f"{scroll_seconds(target, scroll):.3f}"
    )
    return row


# --- The run --------------------------------------------------------------------


@contextmanager
def nimbus_target_for(tmp: Path, series: tuple[str, list[Path]]) -> Iterator[Target]:
    with running_stack(tmp, free_port()) as stack:
        ingest(nimbus_server(stack), series[0], series[1], 1)
        yield nimbus_target(stack, series[0], series_uid_of(series[1][0]))


@contextmanager
def orthanc_target_for(tmp: Path, series: tuple[str, list[Path]]) -> Iterator[Target]:
    with orthanc(tmp) as server:
        ingest(server, series[0], series[1], 1)
        yield orthanc_target(server.qido_base.removesuffix("/dicom-web"), series[0])


def series_uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


def viewer_section(
    slices: int = 300,
    repeat: int = 50,
    mpr: bool = True,
    servers: tuple[str, ...] = (NIMBUS, ORTHANC),
) -> Rows:
    """{metric: {server: figure}} for the viewer, Nimbus and Orthanc side by side."""
    starters = {NIMBUS: nimbus_target_for, ORTHANC: orthanc_target_for}
    rows: Rows = {}
    with tempfile.TemporaryDirectory(prefix="nimbus-viewer-bench-") as scratch:
        tmp = Path(scratch)
        series = generate_series(tmp / "series", slices)
        for name in servers:
            with starters[name](tmp / name.lower(), series) as target:
                print(f"measuring the viewer on {name}")
                for metric, figure in measure(target, repeat).items():
                    print(f"  {metric}: {figure}")
                    rows.setdefault(metric, {})[name] = figure
                if mpr and name == NIMBUS:
                    rows.update(mpr_over_http(target, series, max(5, repeat // 2)))

    if mpr:
        from bench.viewer_mpr import bench_mpr

        for metric, figure in bench_mpr(slices, max(5, repeat // 2)).items():
            rows[f"MPR: {metric}"] = {NIMBUS: figure}
    return rows


def mpr_over_http(target: Target, series: tuple[str, list[Path]], repeat: int) -> Rows:
    """bench/viewer_mpr.py's HTTP figures, through the signed-in session."""
    from bench.viewer_mpr import bench_mpr_http

    print("measuring MPR and 3D over HTTP on Nimbus")
    figures = bench_mpr_http(
        target.session, target.base, series[0], series_uid_of(series[1][0]), repeat
    )
    return {f"MPR over HTTP: {metric}": {NIMBUS: v} for metric, v in figures.items()}


def print_viewer_table(rows: Rows, slices: int, repeat: int) -> None:
    names = [NIMBUS, ORTHANC]
    width = max(len(metric) for metric in rows) + 2
    print()
    print(
        f"Viewer: {slices} CT slices 512x512, PNG frames; {repeat} requests per "
        f"latency figure; scrolling {BROWSER_CONNECTIONS} requests in parallel"
    )
    print("metric".ljust(width) + "".join(name.rjust(18) for name in names))
    for metric, figures in rows.items():
        print(
            metric.ljust(width)
            + "".join(figures.get(name, "-").rjust(18) for name in names)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--no-mpr", action="store_true")
    parser.add_argument("--servers", default=f"{NIMBUS},{ORTHANC}")
    args = parser.parse_args()

    servers = tuple(args.servers.split(","))
    rows = viewer_section(args.slices, args.repeat, not args.no_mpr, servers)
    print_viewer_table(rows, args.slices, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
