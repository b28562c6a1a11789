"""`make run`'s process group (deploy/dev/process_group.py), run for real.

One parent forks the web server, the DICOM and HL7 listeners and the
worker; each must serve, a child that dies must come back, and stopping the
parent must stop them all.
"""

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.stack import Stack, free_port, running_stack, wait_for

CHILDREN = {"nimbus-web", "nimbus-dicom", "nimbus-worker", "nimbus-hl7"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("group"), free_port(), grouped=True
    ) as running:
        yield running


def children(stack: Stack) -> dict[str, psutil.Process]:
    parent = psutil.Process(stack.named["group"].pid)
    return {child.name(): child for child in parent.children()}


def echo(stack: Stack) -> int:
    return subprocess.run(
        ["echoscu", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)],
        capture_output=True,
        timeout=30,
    ).returncode


def test_each_process_runs_as_a_named_child_and_serves(stack: Stack):
    assert set(children(stack)) == CHILDREN
    assert stack.get("/readyz")[0] == 200  # the web server sees a live worker
    assert echo(stack) == 0


def test_a_killed_child_is_started_again(stack: Stack):
    old = children(stack)["nimbus-worker"]
    old.kill()

    new = wait_for(
        lambda: (
            (child := children(stack).get("nimbus-worker"))
            and child.pid != old.pid
            and child
        ),
        seconds=30,
        what="a new worker",
    )

    assert new.pid != old.pid
    wait_for(lambda: stack.get("/readyz")[0] == 200, seconds=60, what="readiness")


def test_stopping_the_parent_stops_every_child(tmp_path: Path):
    with running_stack(tmp_path, free_port(), grouped=True) as own:
        kids = list(children(own).values())
        parent = own.named["group"]
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0

        gone, alive = psutil.wait_procs(kids, timeout=10)

        assert not alive
        assert len(gone) == len(CHILDREN)
