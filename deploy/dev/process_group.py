"""Run Nimbus's processes as children forked from one preloaded parent.

Each of the web server, the DICOM and HL7 listeners, the worker and beat
imports the same Django project: about 110 MB each when started on their
own. Here the parent sets Django up and imports what the children share,
freezes those objects out of the garbage collector's reach (so that a
collection in a child does not copy their pages), and then forks one child
per command. The children run the very command lines of
deploy/dev/processes.py, in-process, and share the parent's pages until they
write to them: the whole group takes about half the memory.

A child that dies is started again (a fresh fork of the parent), at most
``MAX_RESTARTS`` times a minute; SIGTERM or SIGINT stops the group.

Used by `make run` and by the benchmark. Production runs each process from
its own unit (deploy/), so that each can be scaled and restarted alone.
"""

import ctypes
import gc
import importlib
import os
import runpy
import signal
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_RESTARTS = 5
PR_SET_NAME = 15  # prctl(2)

# What the children use. Not daphne.server or twisted.internet.reactor: they
# install Twisted's reactor (an event loop with its own epoll descriptor),
# which no two processes may share.
PRELOAD = (
    "config.asgi",
    "config.urls",
    "config.celery",
    "daphne.http_protocol",
    "daphne.ws_protocol",
    "daphne.access",
    "daphne.endpoints",
    "twisted.internet.asyncioreactor",
    "twisted.internet.endpoints",
    "psycopg_pool",
    "django.core.cache.backends.redis",
    "django.core.management.commands.makemigrations",
    "django_tenants.management.commands.migrate_schemas",
    "pacs.management.commands.run_dicom_listener",
    "reporting.management.commands.run_hl7_listener",
    "viewer.rendering",
    # The worker's command line and the parts it starts.
    "celery.bin.celery",
    "celery.apps.worker",
    "celery.beat",
    "celery.concurrency.thread",
    "celery.worker.consumer",
    "kombu.transport.redis",
)


def preload() -> None:
    """Set Django up and import what the children share, then freeze it."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    for module in PRELOAD:
        importlib.import_module(module)
    from django.db import connections
    from django.template import engines
    from django.urls import get_resolver

    from config.celery import app

    get_resolver().url_patterns  # noqa: B018 - compiles the URL patterns once
    for engine in engines.all():
        engine.engine.template_libraries  # noqa: B018 - loads the tag libraries
    app.loader.import_default_modules()  # every app's tasks module
    connections.close_all()
    if "twisted.internet.reactor" in sys.modules:
        raise RuntimeError("a preloaded module installed Twisted's reactor")
    gc.collect()
    gc.freeze()


def run_in_child(command: list[str]) -> None:
    """Run ``command`` (``python -m module ...`` or ``python script ...``) here."""
    if command[1] == "-m":
        sys.argv = [command[2], *command[3:]]
        runpy.run_module(command[2], run_name="__main__", alter_sys=True)
    else:
        sys.argv = command[1:]
        runpy.run_path(str(ROOT / command[1]), run_name="__main__")


def fork(name: str, command: list[str]) -> int:
    pid = os.fork()
    if pid:
        return pid
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # Ctrl-C reaches the whole terminal's process group: the parent answers
    # it with SIGTERM to each child, which lets them stop cleanly.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _name_process(f"nimbus-{name}")
    # The preloaded objects stay frozen: a full collection would otherwise
    # walk them all and copy every page they are on. What the child makes
    # itself is collected as usual.
    code = 0
    try:
        run_in_child(command)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported, then the child ends
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _name_process(name: str) -> None:
    """Show ``name`` in ps and top (Linux's 15-character comm); else nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass


def run_group(commands: dict[str, list[str]]) -> int:
    """Fork a child per command, restart the ones that die, stop on a signal."""
    preload()
    children = {fork(name, command): name for name, command in commands.items()}
    restarts: deque[float] = deque(maxlen=MAX_RESTARTS)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    healthy = True
    while not stopping:
        pid, status = _reap()
        if pid == 0:
            time.sleep(0.5)
            continue
        name = children.pop(pid)
        print(f"{name} ended ({_describe(status)}).", file=sys.stderr, flush=True)
        if len(restarts) == MAX_RESTARTS and time.monotonic() - restarts[0] < 60:
            print(f"{name} keeps ending: stopping.", file=sys.stderr, flush=True)
            healthy = False
            break
        restarts.append(time.monotonic())
        children[fork(name, commands[name])] = name

    _stop_all(children)
    return 0 if healthy else 1


def _reap() -> tuple[int, int]:
    try:
        return os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return 0, 0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def _stop_all(children: dict[int, str]) -> None:
    for pid in children:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while children and time.monotonic() < deadline:
        pid, _ = _reap()
        if pid:
            children.pop(pid, None)
        else:
            time.sleep(0.1)
    for pid in children:
        _signal(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main() -> int:
    import argparse

    sys.path.insert(0, str(ROOT))
    from deploy.dev.processes import commands

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web-host", default="127.0.0.1")
    parser.add_argument("--web-port", default="8000")
    parser.add_argument("--dicom-host", default="")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var")
    parser.add_argument(
        "--only", default="", help="comma-separated names; all when empty"
    )
    args = parser.parse_args()
    table = commands(
        sys.executable,
        web_host=args.web_host,
        web_port=args.web_port,
        var_dir=args.var_dir,
        dicom_host=args.dicom_host,
    )
    wanted = [name for name in args.only.split(",") if name] or list(table)
    unknown = set(wanted) - set(table)
    if unknown:
        parser.error(f"unknown process names: {', '.join(sorted(unknown))}")
    return run_group({name: table[name] for name in wanted})


if __name__ == "__main__":
    sys.exit(main())
