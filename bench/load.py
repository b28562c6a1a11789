"""The load section of `make bench`: a busy department, Nimbus beside Orthanc.

    .venv/bin/python bench/load.py [--load-scale 1.0] [--servers nimbus,orthanc]

Both servers run on 127.0.0.1 with throw-away storage, started as bench/run.py
starts them (Nimbus as `make run` does, Orthanc with a throw-away
configuration, TCP_NODELAY on its side and on every storescu). At scale 1.0:

1. Ingest: four modalities (four dcmtk storescu processes at once) each send
   one study of 1,000 CT instances (five series of 200 slices; 256x256,
   16-bit, 131 KB: one real TCIA slice halved, new UIDs and positions).
   Measured: instances/s from the first byte until every instance is
   queryable (QIDO-RS polled), each C-STORE's round trip (from storescu's
   "Sending Store Request" to "Received Store Response", its log lines
   stamped to the millisecond), and the servers' peak memory.
2. Viewers: twenty viewers scroll the twenty series just received, one each,
   at once, each frame after the previous one over a keep-alive connection,
   twice (first pass, then again). Nimbus: twenty radiologists each signed
   in (password and one-time code), the viewer's frame URLs (PNG), which
   the fast path answers in front of Django. Orthanc: the same frames as
   WADO-RS rendered PNGs, without authentication.
3. A tenant with 100,000 studies: one patient, study, series and instance
   row each, inserted with INSERT ... SELECT over generate_series straight
   into the stack's PostgreSQL (the instance rows copy a really ingested
   header with new UIDs and patient attributes). This measures the query
   side only: the worklist's first page and a patient ID search, QIDO-RS
   with an exact PatientID and a page of 100. Orthanc has no bulk index
   load; see ORTHANC_INDEX_NOTE.
4. Memory: a 2,000-slice series (same small slices) is ingested over one
   association and then opened: the viewer page, the series' image list,
   100 frames, and the MPR volume with three planes. Peak RSS and PSS of
   all Nimbus processes during that, and the MPR volume cache's bound.

``--load-scale`` multiplies every count (0.05 runs in about two minutes).
`load_section()` returns the rows for bench/run.py; nothing here asserts a
target (see docs/operations.md, "Capacity").
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pydicom
import requests
from pydicom.dataset import FileDataset
from pydicom.uid import generate_uid

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import (  # noqa: E402
    CT_SLICE,
    NODELAY,
    Server,
    free_port,
    nimbus_server,
    orthanc,
)
from bench.viewer import frame_urls, signed_in_session  # noqa: E402
from tests.support.stack import (  # noqa: E402
    PASSWORD,
    TOTP_SECRET,
    Stack,
    running_stack,
)

NIMBUS = "Nimbus"
ORTHANC = "Orthanc"
Rows = dict[str, dict[str, str]]

MODALITIES = 4
INSTANCES_PER_MODALITY = 1_000
SERIES_PER_STUDY = 5
VIEWERS = MODALITIES * SERIES_PER_STUDY
INDEX_STUDIES = 100_000
LONG_SERIES = 2_000
FRAMES_OPENED = 100
LATENCY_REPEAT = 50
SAMPLE_SECONDS = 0.5

ORTHANC_INDEX_NOTE = (
    "Orthanc: - at 100,000 studies: it has no bulk index load, and 100,000 "
    "C-STOREs at its measured ingest rate would double the section's time."
)

# storescu's log, stamped to the millisecond (dcmtk's log4cplus configuration).
LOG_CONFIG = """\
log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%H:%M:%S.%q} %m%n
"""
LOG_LINE = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d{3}) (Sending Store Request|Received Store Response)"
)


def scaled(count: int, scale: float, least: int) -> int:
    return max(least, round(count * scale))


# --- Input ----------------------------------------------------------------------


@dataclass
class StudyFiles:
    study_uid: str
    series: list[tuple[str, list[Path]]]

    @property
    def files(self) -> list[Path]:
        return [path for _, paths in self.series for path in paths]


def small_ct_slice() -> FileDataset:
    """The run's real CT slice at 256x256: every other row and column."""
    ds = pydicom.dcmread(CT_SLICE)
    pixels = ds.pixel_array[::2, ::2].copy()
    ds.PixelData = pixels.tobytes()
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [float(value) * 2 for value in ds.PixelSpacing]
    return ds


def generate_study(
    folder: Path, template: FileDataset, series_count: int, slices: int, label: str
) -> StudyFiles:
    """One patient's study of ``series_count`` series of ``slices`` slices."""
    study = StudyFiles(generate_uid(), [])
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, series_count + 1):
        series_uid, paths = generate_uid(), []
        for index in range(slices):
            ds = template.copy()
            ds.PatientID, ds.PatientName = label, f"Load^{label}"
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study.study_uid, series_uid
            ds.SeriesNumber, ds.InstanceNumber = number, index + 1
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            x, y, _ = template.ImagePositionPatient
            ds.ImagePositionPatient = [x, y, -1.5 * index]
            ds.SliceLocation = -1.5 * index
            path = folder / f"{number:02d}-{index:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        study.series.append((series_uid, paths))
    return study


# --- Measures ---------------------------------------------------------------------


@dataclass
class MemoryPeak:
    rss: int = 0
    pss: int = 0


@contextmanager
def peak_memory(server: Server) -> Iterator[MemoryPeak]:
    """Sample the server's RSS and PSS (sums over its processes) until the end."""
    peak, done = MemoryPeak(), threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak.rss = max(peak.rss, server.rss())
            peak.pss = max(peak.pss, server.pss())
            done.wait(SAMPLE_SECONDS)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        done.set()
        thread.join()


def p50_p95(timings: list[float]) -> str:
    if not timings:
        return "-"
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.1f} / {p95:.1f}"


def round_trips_ms(log: str) -> list[float]:
    """Each C-STORE's round trip from storescu's stamped log lines."""
    timings, sent = [], None
    for line in log.splitlines():
        match = LOG_LINE.match(line)
        if match is None:
            continue
        hours, minutes, seconds, event = match.groups()
        stamp = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        if event.startswith("Sending"):
            sent = stamp
        elif sent is not None:
            timings.append(((stamp - sent) % 86400) * 1000)
            sent = None
    return timings


def send_studies(
    server: Server, studies: list[StudyFiles], logs: Path
) -> tuple[float, list[float]]:
    """Seconds until every instance is queryable, and every C-STORE's round trip."""
    logs.mkdir(parents=True, exist_ok=True)
    config = logs / "storescu-log.cfg"
    config.write_text(LOG_CONFIG)
    started = time.monotonic()
    senders = []
    for index, study in enumerate(studies):
        log = open(logs / f"storescu-{index}.log", "wb")  # noqa: SIM115 - closed below
        command = ["storescu", "-lc", str(config), "-aec", server.ae_title]
        command += ["127.0.0.1", str(server.dicom_port), *map(str, study.files)]
        process = subprocess.Popen(command, env=NODELAY, stdout=log, stderr=log)
        senders.append((process, log))
    for process, log in senders:
        process.wait()
        log.close()
        if process.returncode != 0:
            raise RuntimeError(f"storescu to {server.name} failed; see {log.name}")

    for study in studies:
        while server.instances_in_study(study.study_uid) < len(study.files):
            if time.monotonic() - started > 900:
                raise TimeoutError(f"{server.name} did not index {study.study_uid}")
            time.sleep(0.2)
    seconds = time.monotonic() - started
    timings = []
    for index in range(len(studies)):
        timings += round_trips_ms((logs / f"storescu-{index}.log").read_text())
    return seconds, timings


@dataclass
class Viewer:
    session: requests.Session
    base: str
    urls: list[str]


def scroll_together(viewers: list[Viewer]) -> tuple[float, list[float]]:
    """Every viewer fetches its frames in order, all viewers at once."""
    barrier = threading.Barrier(len(viewers))

    def scroll(viewer: Viewer) -> list[float]:
        timings = []
        barrier.wait()
        for url in viewer.urls:
            started = time.perf_counter()
            response = viewer.session.get(viewer.base + url, timeout=120)
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or not response.content:
                raise RuntimeError(f"{url}: HTTP {response.status_code}")
        return timings

    started = time.perf_counter()
    with ThreadPoolExecutor(len(viewers)) as pool:
        per_viewer = list(pool.map(scroll, viewers))
    seconds = time.perf_counter() - started
    return seconds, [t for timings in per_viewer for t in timings]


def viewer_rows(viewers: list[Viewer]) -> dict[str, str]:
    row = {}
    frames = sum(len(viewer.urls) for viewer in viewers)
    for label in ("first pass", "second pass"):
        seconds, timings = scroll_together(viewers)
        row[f"{len(viewers)} viewers, {label} (frames/s)"] = f"{frames / seconds:.0f}"
        row[f"{len(viewers)} viewers, {label} frame p50/p95 (ms)"] = p50_p95(timings)
    return row


def latencies_ms(session: requests.Session, url: str, repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = session.get(url, timeout=120)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {response.status_code}")
    return timings


# --- Nimbus -----------------------------------------------------------------------


def add_viewer_users(stack: Stack, count: int) -> int:
    """Radiologists viewer01.. with the stack's password and TOTP secret.

    One Django start-up for all of them; returns the MPR volume cache bound
    (NIMBUS_VOLUME_CACHE_MB) as the processes read it.
    """
    code = (
        "from django.conf import settings\n"
        "from django.core.management import call_command\n"
        f"for n in range(1, {count + 1}):\n"
        f"    call_command('create_user', tenant={stack.schema!r},"
        " username=f'viewer{n:02d}', role='radiologist',"
        f" password={PASSWORD!r}, totp_secret={TOTP_SECRET!r})\n"
        "print('volume-cache-mb', settings.NIMBUS_VOLUME_CACHE_MB)\n"
    )
    output = stack.manage("shell", "-c", code)
    return int(output.split("volume-cache-mb")[-1].strip())


def nimbus_sessions(stack: Stack, count: int) -> list[requests.Session]:
    """One signed-in session per radiologist: each has a one-time code device."""
    base = f"http://127.0.0.1:{stack.web_port}"
    return [
        signed_in_session(
            dataclasses.replace(stack, username=f"viewer{n:02d}", last_otp_step=-1),
            base,
        )
        for n in range(1, count + 1)
    ]


def nimbus_viewers(
    stack: Stack, sessions: list[requests.Session], studies: list[StudyFiles]
) -> list[Viewer]:
    base = f"http://127.0.0.1:{stack.web_port}"
    pairs = [(s.study_uid, uid) for s in studies for uid, _ in s.series]
    viewers = []
    for session, (study_uid, series_uid) in zip(sessions, pairs, strict=True):
        path = f"/viewer/studies/{study_uid}/series/{series_uid}/"
        listing = session.get(base + path, timeout=60).json()
        viewers.append(Viewer(session, base, frame_urls(listing)))
    return viewers


def schema_bytes(stack: Stack) -> int:
    """Tables, indexes and TOAST of the tenant's schema."""
    rows = stack.sql(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind = 'r'",
        stack.schema,
    )
    return int(rows[0][0])  # type: ignore[call-overload]


INDEX_SQL = [
    """
    INSERT INTO pacs_patient (patient_id, issuer_of_patient_id, patient_name,
        patient_birth_date, patient_sex, identity_key)
    SELECT 'BULK' || lpad(g::text, 6, '0'), '', 'Bulk^Patient' || lpad(g::text, 6, '0'),
        date '1940-01-01' + ((g * 7919) %% 29000)::int,
        (ARRAY['F', 'M'])[1 + g %% 2], ''
    FROM generate_series(0, %(count)s - 1) AS g
    """,
    """
    INSERT INTO pacs_study (study_instance_uid, study_date, study_time,
        accession_number, study_id, study_description, referring_physician_name,
        modalities_in_study, number_of_study_related_series,
        number_of_study_related_instances, reading_status, received_at,
        updated_at, patient_id)
    SELECT %(root)s || p.id || '.1', date '2021-01-01' + ((p.id * 31) %% 1800)::int,
        time '07:00' + (p.id %% 600) * interval '1 minute',
        'LACC' || substr(p.patient_id, 5), '1', 'Load study', '',
        (ARRAY['CT', 'MR', 'CR', 'US', 'MG'])[1 + p.id %% 5], 1, 1,
        (ARRAY['signed', 'signed', 'signed', 'unread', 'preliminary'])[1 + p.id %% 5],
        now() - p.id * interval '1 minute', now(), p.id
    FROM pacs_patient p WHERE p.patient_id LIKE 'BULK%%'
    """,
    # Each study's place in the reading queue, as ingest makes it (a
    # reading.StudyReading per study, due after its priority's default
    # turnaround) once the rules ran: 2 % STAT and 9 % urgent, as the
    # images' Requested Procedure Priority would give (47 and 11: not in
    # step with the reading status, which follows id % 5); none assigned.
    """
    INSERT INTO reading_studyreading (study_id, priority, priority_source,
        due_at, due_at_manual, routed_with_images)
    SELECT st.id, st.priority,
        CASE st.priority WHEN 'routine' THEN 'default' ELSE 'dicom' END,
        st.received_at + CASE st.priority WHEN 'stat' THEN interval '60 minutes'
            WHEN 'urgent' THEN interval '4 hours' ELSE interval '48 hours' END,
        false, true
    FROM (SELECT id, received_at, CASE WHEN id %% 47 = 0 THEN 'stat'
            WHEN id %% 11 = 1 THEN 'urgent' ELSE 'routine' END AS priority
        FROM pacs_study WHERE study_description = 'Load study') AS st
    """,
    """
    INSERT INTO pacs_series (series_instance_uid, modality, series_number,
        series_description, body_part_examined,
        number_of_series_related_instances, study_id)
    SELECT %(root)s || st.id || '.2', st.modalities_in_study, 1, 'Load series', '',
        1, st.id
    FROM pacs_study st WHERE st.study_description = 'Load study'
    """,
    """
    INSERT INTO pacs_instance (sop_instance_uid, sop_class_uid, instance_number,
        transfer_syntax_uid, rows, columns, number_of_frames, slice_position,
        image_position_patient, image_orientation_patient, window_center,
        window_width, pixel_status, pixel_error, storage_path, file_size,
        calling_ae_title, received_at, series_id, metadata)
    SELECT %(root)s || se.id || '.3', t.sop_class_uid, 1, t.transfer_syntax_uid,
        t.rows, t.columns, 1, t.slice_position, t.image_position_patient,
        t.image_orientation_patient, t.window_center, t.window_width,
        t.pixel_status, '', t.storage_path, t.file_size, t.calling_ae_title,
        st.received_at, se.id,
        t.metadata || jsonb_build_object(
            '00080018', jsonb_build_object('vr', 'UI',
                'Value', jsonb_build_array(%(root)s || se.id || '.3')),
            '0020000D', jsonb_build_object('vr', 'UI',
                'Value', jsonb_build_array(st.study_instance_uid)),
            '0020000E', jsonb_build_object('vr', 'UI',
                'Value', jsonb_build_array(se.series_instance_uid)),
            '00100020', jsonb_build_object('vr', 'LO',
                'Value', jsonb_build_array(p.patient_id)),
            '00100010', jsonb_build_object('vr', 'PN', 'Value',
                jsonb_build_array(jsonb_build_object('Alphabetic', p.patient_name))))
    FROM pacs_series se
    JOIN pacs_study st ON st.id = se.study_id
    JOIN pacs_patient p ON p.id = st.patient_id
    CROSS JOIN (SELECT * FROM pacs_instance ORDER BY id LIMIT 1) AS t
    WHERE se.series_description = 'Load series'
    """,
    "ANALYZE pacs_patient, pacs_study, pacs_series, pacs_instance, "
    "reading_studyreading",
]


def load_index(stack: Stack, count: int) -> float:
    """Seconds to insert ``count`` one-instance studies in bulk (query side only)."""
    # Short enough for the UIDs' 64 characters with the row id and a suffix.
    root = f"2.25.{uuid.uuid4().int >> 64}."
    started = time.monotonic()
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(f"SET search_path TO {stack.schema}, public")
        with conn.transaction():
            for statement in INDEX_SQL[:-1]:
                conn.execute(statement, {"count": count, "root": root})  # type: ignore[arg-type]
        conn.execute(INDEX_SQL[-1])  # type: ignore[arg-type]
    return time.monotonic() - started


def index_rows(
    stack: Stack, server: Server, session: requests.Session, count: int
) -> dict[str, str]:
    seconds = load_index(stack, count)
    base = f"http://127.0.0.1:{stack.web_port}"
    middle = f"BULK{count // 2:06d}"
    api = requests.Session()
    api.headers.update(server.headers)
    qido = server.qido_base + "/studies"
    figures = {
        "worklist first page": (session, f"{base}/"),
        "worklist, patient ID search": (session, f"{base}/?patient_id={middle}"),
        "QIDO-RS exact PatientID": (api, f"{qido}?PatientID={middle}"),
        "QIDO-RS page of 100": (api, f"{qido}?limit=100"),
    }
    label = f"@{count:,}"
    row = {f"index load {label}, bulk SQL (s)": f"{seconds:.0f}"}
    for name, (client, url) in figures.items():
        row[f"{name} {label} p50/p95 (ms)"] = p50_p95(
            latencies_ms(client, url, LATENCY_REPEAT)
        )
    return row


def long_series_rows(
    stack: Stack,
    server: Server,
    session: requests.Session,
    long: StudyFiles,
    cache_mb: int,
) -> dict[str, str]:
    """Ingest one long series over one association, then open it with MPR."""
    base = f"http://127.0.0.1:{stack.web_port}"
    study_uid, (series_uid, paths) = long.study_uid, long.series[0]
    viewer = f"{base}/viewer/studies/{study_uid}/"
    before = server.rss(), server.pss()
    with peak_memory(server) as ingest_peak:
        seconds, _ = send_studies(server, [long], stack.logs / "long")  # type: ignore[operator]
    with peak_memory(server) as open_peak:
        started = time.monotonic()
        if session.get(viewer, timeout=120).status_code != 200:
            raise RuntimeError("Nimbus did not open the long series' study")
        listing = session.get(f"{viewer}series/{series_uid}/", timeout=120).json()
        for url in frame_urls(listing)[:FRAMES_OPENED]:
            session.get(base + url, timeout=120).raise_for_status()
        geometry = session.get(f"{viewer}series/{series_uid}/volume.json", timeout=600)
        if not geometry.json().get("available", False):
            raise RuntimeError(f"MPR refused the long series: {geometry.text[:200]}")
        for plane in ("axial", "sagittal", "coronal"):
            url = f"{viewer}series/{series_uid}/mpr/{plane}.png"
            session.get(url, timeout=600).raise_for_status()
        open_seconds = time.monotonic() - started
    label = f"{len(paths):,}-slice series"
    return {
        f"{label}: ingest, 1 association (inst/s)": f"{len(paths) / seconds:.0f}",
        f"{label}: opened with MPR (s)": f"{open_seconds:.1f}",
        f"{label}: RSS / PSS before (MB)": f"{before[0] / 1e6:.0f} / "
        f"{before[1] / 1e6:.0f}",
        f"{label}: peak RSS / PSS, ingest (MB)": f"{ingest_peak.rss / 1e6:.0f} / "
        f"{ingest_peak.pss / 1e6:.0f}",
        f"{label}: peak RSS / PSS, opened (MB)": f"{open_peak.rss / 1e6:.0f} / "
        f"{open_peak.pss / 1e6:.0f}",
        f"{label}: MPR volume with 3D copies (MB)": str(
            round(geometry.json()["memory_mb"])
        ),
        "MPR volume cache bound per web process (MB)": str(cache_mb),
    }


def measure_nimbus(
    tmp: Path, studies: list[StudyFiles], long: StudyFiles, index_count: int
) -> dict[str, str]:
    with running_stack(tmp, free_port(), grouped=True) as stack:
        server = nimbus_server(stack)
        cache_mb = add_viewer_users(stack, VIEWERS)
        time.sleep(3)
        row = {"idle RSS / PSS (MB)": f"{server.rss() / 1e6:.0f} / "}
        row["idle RSS / PSS (MB)"] += f"{server.pss() / 1e6:.0f}"
        database_before = schema_bytes(stack)
        row |= ingest_rows(server, studies, tmp / "storescu")
        growth = schema_bytes(stack) - database_before
        instances = sum(len(study.files) for study in studies)
        row["database growth per 1,000 instances (MB)"] = (
            f"{growth / instances * 1000 / 1e6:.1f}"
        )
        sessions = nimbus_sessions(stack, VIEWERS)
        with peak_memory(server) as peak:
            row |= viewer_rows(nimbus_viewers(stack, sessions, studies))
        row["peak RSS / PSS, viewers (MB)"] = (
            f"{peak.rss / 1e6:.0f} / {peak.pss / 1e6:.0f}"
        )
        row |= long_series_rows(stack, server, sessions[0], long, cache_mb)
        row |= index_rows(stack, server, sessions[0], index_count)
        row["stored bytes per instance (KB)"] = stored_kb(stack)
        return row


def stored_kb(stack: Stack) -> str:
    total, count = stack.sql("SELECT sum(file_size), count(*) FROM pacs_instance")[0]
    return f"{int(total) / int(count) / 1e3:.0f}"  # type: ignore[call-overload]


def ingest_rows(
    server: Server, studies: list[StudyFiles], logs: Path
) -> dict[str, str]:
    instances = sum(len(study.files) for study in studies)
    cpu_before = server.cpu_seconds()
    with peak_memory(server) as peak:
        seconds, timings = send_studies(server, studies, logs)
    cpu_ms = (server.cpu_seconds() - cpu_before) * 1000 / instances
    label = f"{len(studies)} modalities x {instances // len(studies):,}"
    return {
        f"ingest {label} (inst/s)": f"{instances / seconds:.0f}",
        f"ingest {label}: C-STORE p50/p95 (ms)": p50_p95(timings),
        f"ingest {label}: CPU per instance (ms)": f"{cpu_ms:.1f}",
        "peak RSS / PSS, ingest (MB)": f"{peak.rss / 1e6:.0f} / {peak.pss / 1e6:.0f}",
    }


# --- Orthanc ------------------------------------------------------------------------


def orthanc_viewers(server: Server, studies: list[StudyFiles]) -> list[Viewer]:
    """WADO-RS rendered frames of each series, in instance number order."""
    viewers = []
    for study in studies:
        for series_uid, _ in study.series:
            session = requests.Session()
            path = f"/studies/{study.study_uid}/series/{series_uid}/instances"
            found = session.get(
                f"{server.qido_base}{path}?includefield=00200013",
                headers=server.headers,
                timeout=60,
            ).json()
            found.sort(key=lambda item: int(item["00200013"]["Value"][0]))
            session.headers["Accept"] = "image/png"
            urls = [
                f"{path}/{item['00080018']['Value'][0]}/frames/1/rendered"
                for item in found
            ]
            viewers.append(Viewer(session, server.qido_base, urls))
    return viewers


def measure_orthanc(tmp: Path, studies: list[StudyFiles]) -> dict[str, str]:
    with orthanc(tmp) as server:
        time.sleep(3)
        row = {"idle RSS / PSS (MB)": f"{server.rss() / 1e6:.0f} / "}
        row["idle RSS / PSS (MB)"] += f"{server.pss() / 1e6:.0f}"
        row |= ingest_rows(server, studies, tmp / "storescu")
        with peak_memory(server) as peak:
            row |= viewer_rows(orthanc_viewers(server, studies))
        row["peak RSS / PSS, viewers (MB)"] = (
            f"{peak.rss / 1e6:.0f} / {peak.pss / 1e6:.0f}"
        )
        return row


# --- The run ----------------------------------------------------------------------


def load_section(
    scale: float = 1.0, servers: tuple[str, ...] = (NIMBUS, ORTHANC)
) -> Rows:
    """{metric: {server: figure}} for the load above, at ``scale``."""
    per_modality = scaled(INSTANCES_PER_MODALITY, scale, SERIES_PER_STUDY)
    slices = per_modality // SERIES_PER_STUDY
    rows: Rows = {}
    with tempfile.TemporaryDirectory(prefix="nimbus-load-bench-") as scratch:
        tmp = Path(scratch)
        template = small_ct_slice()
        print(
            f"generating {MODALITIES} studies of {SERIES_PER_STUDY}x{slices} and "
            f"one of {scaled(LONG_SERIES, scale, 20)} 256x256 CT slices"
        )
        studies = [
            generate_study(
                tmp / f"modality-{n}", template, SERIES_PER_STUDY, slices, f"LOADMOD{n}"
            )
            for n in range(1, MODALITIES + 1)
        ]
        long = generate_study(
            tmp / "long", template, 1, scaled(LONG_SERIES, scale, 20), "LOADLONG"
        )
        for name in servers:
            print(f"measuring {name} under load")
            if name == NIMBUS:
                figures = measure_nimbus(
                    tmp / "nimbus", studies, long, scaled(INDEX_STUDIES, scale, 1000)
                )
            else:
                figures = measure_orthanc(tmp / "orthanc", studies)
            for metric, figure in figures.items():
                print(f"  {metric}: {figure}")
                rows.setdefault(metric, {})[name] = figure
    return rows


def print_load_table(rows: Rows, scale: float) -> None:
    names = [NIMBUS, ORTHANC]
    width = max(len(metric) for metric in rows) + 2
    per_modality = scaled(INSTANCES_PER_MODALITY, scale, SERIES_PER_STUDY)
    print()
    print(
        f"Load (scale {scale:g}): {MODALITIES} storescu x {per_modality:,} CT "
        f"instances 256x256 (131 KB) at once; {VIEWERS} viewers scrolling a "
        f"series each, PNG frames; {scaled(INDEX_STUDIES, scale, 1000):,} studies "
        f"inserted in bulk (query side only); {LATENCY_REPEAT} requests per "
        "query latency figure"
    )
    print("metric".ljust(width) + "".join(name.rjust(18) for name in names))
    for metric, figures in rows.items():
        print(
            metric.ljust(width)
            + "".join(figures.get(name, "-").rjust(18) for name in names)
        )
    if NIMBUS in next(iter(rows.values()), {}):
        print(ORTHANC_INDEX_NOTE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-scale", type=float, default=1.0)
    parser.add_argument("--servers", default=f"{NIMBUS},{ORTHANC}")
    args = parser.parse_args()

    rows = load_section(args.load_scale, tuple(args.servers.split(",")))
    print_load_table(rows, args.load_scale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
