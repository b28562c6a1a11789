"""`make bench`: Nimbus and Orthanc side by side, on the same input, in one run.

Both servers run on 127.0.0.1 with throw-away storage. The same generated CT
series (real pixels from the TCIA pancreas CT, new UIDs and positions) goes
to both with dcmtk's storescu; the same QIDO-RS and WADO-RS requests go to
both. TCP_NODELAY=1 is set for storescu and Orthanc (Nimbus sets it itself),
so that neither side waits on Nagle's algorithm.

Prints one table; nothing here asserts a target (see docs/decisions.md).
The viewer, dictation and load sections (bench/viewer.py, bench/dictation.py,
bench/load.py) print theirs after it; `--sections` picks some of them and
`--load-scale` shrinks the load section for a quick run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pydicom
import requests
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.stack import Stack, running_stack  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "dicom"
CT_SLICE = SHARED / "tcia-pancreas-ct" / "series-201" / "1-050.dcm"
SMALL = SHARED / "pydicom" / "MR_small.dcm"
NODELAY = {**os.environ, "TCP_NODELAY": "1"}
SECTIONS = ("main", "viewer", "dictation", "load")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- Input --------------------------------------------------------------------


def generate_series(folder: Path, slices: int) -> tuple[str, list[Path]]:
    """A CT series of 512x512 slices: one real slice, new geometry and UIDs."""
    template = pydicom.dcmread(CT_SLICE)
    study, series = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(slices):
        ds = template.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = index + 1
        x, y, _ = template.ImagePositionPatient
        ds.ImagePositionPatient = [x, y, -1.5 * index]
        ds.SliceLocation = -1.5 * index
        path = folder / f"{index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study, paths


def generate_studies(folder: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` one-image studies of distinct patients, for query benchmarks."""
    template = pydicom.dcmread(SMALL)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        ds = template.copy()
        ds.PatientID = f"BENCH{index:06d}"
        ds.PatientName = f"Bench^Patient{index:06d}"
        ds.AccessionNumber = f"ACC{index:06d}"
        ds.StudyDate = f"2024{1 + index % 12:02d}{1 + index % 28:02d}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"{index:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# --- Servers -------------------------------------------------------------------


@dataclass
class Server:
    name: str
    ae_title: str
    dicom_port: int
    qido_base: str
    headers: dict[str, str]
    processes: Callable[[], list[psutil.Process]]
    peak_rss: int = 0
    _sampling: bool = field(default=False, repr=False)

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far by the server's processes."""
        total = 0.0
        for process in self.processes():
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user
            total += times.children_system
        return total

    def pss(self) -> int:
        """Proportional set size: forked processes' shared pages counted once."""
        total = 0
        for process in self.processes():
            try:
                total += process.memory_full_info().pss
            except psutil.Error:
                continue
        return total

    def rss(self) -> int:
        total = 0
        for process in self.processes():
            try:
                total += process.memory_info().rss
            except psutil.Error:
                continue
        return total

    @contextmanager
    def sampling_memory(self) -> Iterator[None]:
        self._sampling = True

        def sample() -> None:
            while self._sampling:
                self.peak_rss = max(self.peak_rss, self.rss())
                time.sleep(0.2)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._sampling = False
            thread.join()

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(
            self.qido_base + path, params=params, headers=self.headers, timeout=60
        )

    def instances_in_study(self, study_uid: str) -> int:
        response = self.get(
            "/studies", StudyInstanceUID=study_uid, includefield="00201208"
        )
        if response.status_code != 200 or not response.content:
            return 0
        found = response.json()
        if not found:
            return 0
        values = found[0].get("00201208", {}).get("Value", [0])
        return int(values[0])


def tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
    except psutil.Error:
        return []
    return [parent, *parent.children(recursive=True)]


@contextmanager
def orthanc(tmp: Path) -> Iterator[Server]:
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "bench",
        "StorageDirectory": str(tmp / "storage"),
        "IndexDirectory": str(tmp / "index"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomCheckCalledAet": False,
        "StableAge": 1,
        "LimitFindResults": 0,
        "LimitFindInstances": 0,
    }
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "orthanc.json"
    path.write_text(json.dumps(config))
    log = open(tmp / "orthanc.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        ["Orthanc", str(path)], env=NODELAY, stdout=log, stderr=log
    )
    try:
        wait_http(f"http://127.0.0.1:{http_port}/system")
        yield Server(
            "Orthanc",
            "ORTHANC",
            dicom_port,
            f"http://127.0.0.1:{http_port}/dicom-web",
            {"Accept": "application/dicom+json"},
            lambda: tree(process.pid),
        )
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@contextmanager
def nimbus(tmp: Path) -> Iterator[Server]:
    # As `make run` starts it: one process group forked from a preloaded parent.
    with running_stack(tmp, free_port(), grouped=True) as stack:
        yield nimbus_server(stack)


@contextmanager
def nimbus_without_fsync(tmp: Path) -> Iterator[Server]:
    """Nimbus trusting the page cache, as Orthanc does: the like-for-like run."""
    os.environ["NIMBUS_SPOOL_FSYNC"] = "false"
    try:
        with running_stack(tmp, free_port(), grouped=True) as stack:
            yield nimbus_server(stack, "Nimbus no-fsync")
    finally:
        del os.environ["NIMBUS_SPOOL_FSYNC"]


def nimbus_server(stack: Stack, name: str = "Nimbus") -> Server:
    pids = [process.pid for process in stack.processes]
    return Server(
        name,
        stack.ae_title,
        stack.dicom_port,
        f"http://127.0.0.1:{stack.web_port}/dicomweb",
        {"Authorization": f"Bearer {stack.token}", "Accept": "application/dicom+json"},
        lambda: [p for pid in pids for p in tree(pid)],
    )


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


# --- Measurements ---------------------------------------------------------------


def storescu(server: Server, files: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["storescu", "-aec", server.ae_title, "127.0.0.1", str(server.dicom_port)]
        + [str(f) for f in files],
        env=NODELAY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def ingest(
    server: Server, study_uid: str, files: list[Path], associations: int
) -> float:
    """Seconds from the first byte sent until every instance is queryable."""
    chunks = [files[i::associations] for i in range(associations)]
    started = time.monotonic()
    with server.sampling_memory():
        senders = [storescu(server, chunk) for chunk in chunks]
        for sender in senders:
            _, errors = sender.communicate()
            if sender.returncode != 0:
                raise RuntimeError(
                    f"storescu to {server.name} failed: {errors[-500:]!r}"
                )
        while server.instances_in_study(study_uid) < len(files):
            if time.monotonic() - started > 600:
                raise TimeoutError(f"{server.name} did not index the series")
            time.sleep(0.1)
    return time.monotonic() - started


STOW_PARTS_PER_REQUEST = 50


def stow_series(server: Server, study_uid: str, files: list[Path]) -> float:
    """Seconds to store ``files`` with STOW-RS, 50 a request, until queryable."""
    boundary = "nimbus-bench-boundary"
    headers = {
        **server.headers,
        "Accept": "application/dicom+json",
        "Content-Type": f'multipart/related; type="application/dicom"; '
        f"boundary={boundary}",
    }
    started = time.monotonic()
    for start in range(0, len(files), STOW_PARTS_PER_REQUEST):
        body = b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
            for path in files[start : start + STOW_PARTS_PER_REQUEST]
        )
        body += f"--{boundary}--\r\n".encode()
        response = requests.post(
            server.qido_base + "/studies", data=body, headers=headers, timeout=600
        )
        if response.status_code != 200:
            raise RuntimeError(f"STOW-RS to {server.name}: {response.status_code}")
    while server.instances_in_study(study_uid) < len(files):
        if time.monotonic() - started > 600:
            raise TimeoutError(f"{server.name} did not index the STOW-RS series")
        time.sleep(0.1)
    return time.monotonic() - started


def load_studies(server: Server, files: list[Path]) -> None:
    for batch in (files[i : i + 500] for i in range(0, len(files), 500)):
        sender = storescu(server, batch)
        _, errors = sender.communicate()
        if sender.returncode != 0:
            raise RuntimeError(f"storescu to {server.name} failed: {errors[-500:]!r}")


def wait_for_studies(server: Server, patient_id: str) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        response = server.get("/studies", PatientID=patient_id)
        if response.status_code == 200 and response.content and response.json():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{server.name}: {patient_id} never became queryable")


def latency_ms(
    call: Callable[[], requests.Response], repeat: int
) -> tuple[float, float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = call()
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code >= 400:
            return float("nan"), float("nan")
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.95) - 1]


def retrieve_series_seconds(server: Server, study: str) -> float:
    series = server.get(f"/studies/{study}/series")
    if series.status_code != 200:
        return float("nan")
    series_uid = series.json()[0]["0020000E"]["Value"][0]
    started = time.monotonic()
    response = requests.get(
        f"{server.qido_base}/studies/{study}/series/{series_uid}",
        headers={
            **server.headers,
            "Accept": 'multipart/related; type="application/dicom"',
        },
        timeout=600,
        stream=True,
    )
    size = sum(len(chunk) for chunk in response.iter_content(1 << 20))
    if response.status_code != 200 or not size:
        return float("nan")
    return time.monotonic() - started


# --- The run -----------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--servers",
        default="nimbus,nimbus-nofsync,orthanc",
        help="comma-separated subset of nimbus,nimbus-nofsync,orthanc",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument(
        "--load-scale",
        type=float,
        default=1.0,
        help="fraction of the load section's counts (0.05 for a quick run)",
    )
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"--sections takes a subset of {','.join(SECTIONS)}")
    for tool in ("storescu", "Orthanc"):
        if shutil.which(tool) is None:
            raise SystemExit(
                f"{tool} is missing: make bench installs dcmtk and orthanc"
            )

    if "main" in sections:
        main_section(args)

    # Imported here: bench/viewer.py builds on this module.
    from bench.viewer import print_viewer_table, viewer_section

    if "viewer" in sections:
        print_viewer_table(
            viewer_section(args.slices, args.repeat), args.slices, args.repeat
        )

    from bench.dictation import dictation_section, print_dictation_table

    if "dictation" in sections:
        print_dictation_table(dictation_section())

    from bench.load import load_section, print_load_table

    if "load" in sections:
        print_load_table(load_section(args.load_scale), args.load_scale)
    return 0


def main_section(args: argparse.Namespace) -> None:
    rows: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-") as scratch:
        tmp = Path(scratch)
        print(f"generating {args.slices} CT slices and {args.studies} small studies")
        one = generate_series(tmp / "series-1", args.slices)
        four = generate_series(tmp / "series-4", args.slices)
        stow = generate_series(tmp / "series-stow", args.slices)
        again = generate_series(tmp / "series-again", args.slices)
        small = generate_studies(tmp / "small", args.studies)
        size_mb = sum(p.stat().st_size for p in one[1]) / 1e6

        starters = {
            "nimbus": nimbus,
            "nimbus-nofsync": nimbus_without_fsync,
            "orthanc": orthanc,
        }
        for name in args.servers.split(","):
            with starters[name](tmp / name) as server:
                print(f"measuring {server.name}")
                rows[server.name] = measure(
                    server, one, four, stow, small, size_mb, args.repeat
                )
                rows[server.name].update(second_round(server, again, args.repeat))
    print_table(rows, args)


def measure(
    server: Server,
    one: tuple[str, list[Path]],
    four: tuple[str, list[Path]],
    stow: tuple[str, list[Path]],
    small: list[Path],
    size_mb: float,
    repeat: int,
) -> dict[str, str]:
    time.sleep(3)
    row = {
        "idle memory RSS (MB)": f"{server.rss() / 1e6:.0f}",
        "idle memory PSS (MB)": f"{server.pss() / 1e6:.0f}",
    }
    for label, (study, files), associations in (("1", one, 1), ("4", four, 4)):
        cpu_before = server.cpu_seconds()
        seconds = ingest(server, study, files, associations)
        cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / len(files)
        row[f"ingest x{label} (inst/s)"] = f"{len(files) / seconds:.0f}"
        row[f"ingest x{label} (MB/s)"] = f"{size_mb / seconds:.1f}"
        row[f"ingest x{label} CPU per instance (ms)"] = f"{cpu_ms:.1f}"
    seconds = stow_series(server, *stow)
    row["STOW-RS (inst/s)"] = f"{len(stow[1]) / seconds:.0f}"
    row["series retrieve (s)"] = f"{retrieve_series_seconds(server, one[0]):.2f}"
    listing = latency_ms(lambda: server.get(f"/studies/{one[0]}/instances"), repeat)
    row[f"QIDO instances of {len(one[1])} p50/p95 (ms)"] = (
        f"{listing[0]:.1f} / {listing[1]:.1f}"
    )

    for count in (1_000, len(small)) if small else ():
        load_studies(server, small[:count] if count == 1_000 else small[1_000:])
        wait_for_studies(server, f"BENCH{count - 1:06d}")
        exact = latency_ms(
            lambda: server.get("/studies", PatientID="BENCH000500"), repeat
        )
        page = latency_ms(lambda: server.get("/studies", limit="100"), repeat)
        row[f"QIDO exact @{count} p50/p95 (ms)"] = f"{exact[0]:.1f} / {exact[1]:.1f}"
        row[f"QIDO page 100 @{count} p50/p95 (ms)"] = f"{page[0]:.1f} / {page[1]:.1f}"
    row["peak memory RSS (MB)"] = f"{server.peak_rss / 1e6:.0f}"
    time.sleep(3)
    row["idle memory RSS after (MB)"] = f"{server.rss() / 1e6:.0f}"
    row["idle memory PSS after (MB)"] = f"{server.pss() / 1e6:.0f}"
    return row


def second_round(
    server: Server, series: tuple[str, list[Path]], repeat: int
) -> dict[str, str]:
    """Another series in and the same searches again: memory must not grow again."""
    ingest(server, *series, 1)
    latency_ms(lambda: server.get("/studies", limit="100"), repeat)
    latency_ms(lambda: server.get(f"/studies/{series[0]}/instances"), repeat)
    time.sleep(3)
    return {"idle memory PSS after a second round (MB)": f"{server.pss() / 1e6:.0f}"}


def print_table(rows: dict[str, dict[str, str]], args: argparse.Namespace) -> None:
    names = list(rows)
    metrics = list(rows[names[0]])
    width = max(len(m) for m in metrics) + 2
    print()
    print(
        f"{args.slices} CT slices 512x512; {args.studies} one-image studies; "
        f"{args.repeat} requests per latency figure; TCP_NODELAY on both sides"
    )
    print("metric".ljust(width) + "".join(n.rjust(18) for n in names))
    for metric in metrics:
        print(
            metric.ljust(width)
            + "".join(rows[n].get(metric, "-").rjust(18) for n in names)
        )


if __name__ == "__main__":
    sys.exit(main())
