"""Two web processes and two Celery workers on one PostgreSQL, Redis and S3.

The layout of deploy/ in small: every process is started the way `make run`
starts it, the archive is a real S3 server (SeaweedFS) on loopback, and the
processes share nothing but the three services. It shows that ingest
spreads over the workers, that the files land in the bucket, and that a
report edited through one web process reaches an editor open on the other.
"""

import dataclasses
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from bench.dictation import WebSocketClient
from conftest import CT_SERIES
from tests.support.seaweed import S3Server
from tests.support.stack import (
    Stack,
    free_port,
    running_stack,
    wait_for,
    wait_for_port,
)

PREFIX = "scaleout"
WORKERS = ("ingest-a", "ingest-b")
INSTANCES = 24


@dataclasses.dataclass
class ScaledOut:
    stack: Stack
    second_web: Stack  # the same stack, addressed through the other web process
    s3: S3Server


@pytest.fixture(scope="module")
def scaled_out(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[ScaledOut]:
    tmp = tmp_path_factory.mktemp("scaleout")
    env = {**s3_server.env(PREFIX), "NIMBUS_SPOOL_FSYNC": "false"}
    with running_stack(tmp, free_port(), env=env) as stack:
        # The stack's one worker makes way for two named ones; one task at a
        # time each, so that a burst of batches has to spread.
        stack.named["worker"].terminate()
        stack.named["worker"].wait(30)
        worker = stack.commands["worker"]
        for name in WORKERS:
            command = [*worker, "-n", f"{name}@%h", "--concurrency", "1"]
            command += ["-Q", "ingest,rendering,delivery,celery"]
            stack.start(name, *command)

        port = free_port()
        web = [
            part if part != str(stack.web_port) else str(port)
            for part in stack.commands["web"]
        ]
        stack.start("web-2", *web)
        wait_for_port(port)
        second = dataclasses.replace(stack, web_port=port, processes=[], named={})
        for target in (stack, second):
            wait_for(lambda t=target: t.get("/readyz")[0] == 200, 90, what="ready")
        yield ScaledOut(stack, second, s3_server)


def new_series(folder: Path, count: int) -> tuple[list[Path], str]:
    """``count`` slices of the real CT series as a new study; its UID."""
    sources = sorted(CT_SERIES.glob("*.dcm"))
    study_uid, series_uid = generate_uid(), generate_uid()
    folder.mkdir(parents=True)
    files = []
    for number in range(count):
        ds = pydicom.dcmread(sources[number % len(sources)])
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        files.append(folder / f"{number:04d}.dcm")
        ds.save_as(files[-1])
    return files, study_uid


def storescu(stack: Stack, files: list[Path]) -> None:
    subprocess.run(
        ["storescu", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)]
        + [str(path) for path in files],
        check=True,
        capture_output=True,
        timeout=120,
    )


def metric(text: str, name: str) -> dict[str, float]:
    """``{worker: value}`` of a metric labelled by worker."""
    pattern = rf'^{name}{{worker="([^"]+)"}} (\S+)$'
    return {w: float(v) for w, v in re.findall(pattern, text, re.MULTILINE)}


def test_ingest_spreads_over_both_workers_and_lands_in_the_bucket(
    scaled_out: ScaledOut, tmp_path: Path
):
    stack = scaled_out.stack
    files, study_uid = new_series(tmp_path / "series", INSTANCES)

    # Six modalities at once, four instances each.
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda n: storescu(stack, files[n::6]), range(6)))

    def indexed() -> bool:
        [(count,)] = stack.sql(
            "SELECT count(*) FROM pacs_instance i JOIN pacs_series s ON s.id = i.series_id"
            " JOIN pacs_study t ON t.id = s.study_id WHERE t.study_instance_uid = %s",
            study_uid,
        )
        return count == INSTANCES

    wait_for(indexed, 120, what="every instance indexed")
    status, body = stack.get("/metrics")
    assert status == 200
    ingested = metric(body.decode(), "nimbus_ingested_instances_total")
    by_worker = {name.split("@")[0]: count for name, count in ingested.items()}
    assert set(by_worker) == set(WORKERS), by_worker
    assert all(count > 0 for count in by_worker.values()), by_worker
    assert sum(by_worker.values()) == INSTANCES

    keys = scaled_out.s3.keys(f"{PREFIX}/{stack.schema}/{study_uid}/")
    assert len(keys) == INSTANCES
    assert not (Path(stack.env["NIMBUS_VAR_DIR"]) / "storage").exists()


def test_both_web_processes_serve_images_from_the_bucket(
    scaled_out: ScaledOut, tmp_path: Path
):
    stack, second = scaled_out.stack, scaled_out.second_web
    files, study_uid = new_series(tmp_path / "one", 1)
    storescu(stack, files)
    wait_for(
        lambda: stack.sql(
            "SELECT 1 FROM pacs_study WHERE study_instance_uid = %s", study_uid
        ),
        60,
        what="the study indexed",
    )

    for web in (stack, second):
        status, body = web.get(f"/dicomweb/studies/{study_uid}/thumbnail", stack.token)
        assert status == 200 and len(body) > 100


def test_a_report_edited_through_one_web_process_appears_live_on_the_other(
    scaled_out: ScaledOut, tmp_path: Path
):
    stack, second = scaled_out.stack, scaled_out.second_web
    files, study_uid = new_series(tmp_path / "report", 1)
    storescu(stack, files)
    report = f"/api/studies/{study_uid}/report"
    wait_for(lambda: stack.get(report, stack.token)[0] == 200, 60, what="the study")
    editor = WebSocketClient(second, f"/ws/studies/{study_uid}/report/")
    try:
        editor.next("report")  # the state when the editor opened

        text = "Findings: edited through web process one."
        status, _ = stack.call("PUT", report, {"text": text}, stack.token)

        assert status == 200
        _, pushed = editor.next("report", timeout=30)
        assert pushed["text"] == text
    finally:
        editor.close()
