"""Several listener processes on one DICOM port, started as `make run` would."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from conftest import CT_SERIES
from pacs.tests.test_listener import dcmtk, free_port
from tests.support.stack import wait_for_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_listeners(db, tmp_path) -> Iterator[tuple[psutil.Process, int]]:  # type: ignore[no-untyped-def]
    database = settings.DATABASES["default"]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{database['USER']}@{database['HOST']}:"
        f"{database['PORT'] or 5432}/{database['NAME']}",
        "NIMBUS_VAR_DIR": str(tmp_path),
    }
    command = [sys.executable, "manage.py", "run_dicom_listener"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--processes", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        wait_for_port(port)
        yield psutil.Process(process.pid), port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


def listening_pids(port: int) -> set[int]:
    return {
        connection.pid
        for connection in psutil.net_connections("tcp")
        if connection.laddr.port == port and connection.status == psutil.CONN_LISTEN
    }


def test_it_runs_two_listener_processes_on_one_port(two_listeners):
    parent, port = two_listeners
    time.sleep(1)  # the forked listener binds a moment after the parent

    children = parent.children()

    assert len(children) == 1
    assert listening_pids(port) == {parent.pid, children[0].pid}


def test_every_association_is_served_whichever_process_takes_it(two_listeners):
    _parent, port = two_listeners
    files = [str(path) for path in sorted(CT_SERIES.glob("*.dcm"))[:2]]

    results = [
        dcmtk("storescu", "-aec", "NIMBUS_A", "127.0.0.1", str(port), *files)
        for _ in range(8)
    ]

    assert [result.returncode for result in results] == [0] * 8


def test_all_listener_processes_stop_with_the_parent(two_listeners):
    parent, _port = two_listeners
    child = parent.children()[0]

    parent.send_signal(signal.SIGTERM)

    gone, alive = psutil.wait_procs([parent, child], timeout=20)
    assert not alive
