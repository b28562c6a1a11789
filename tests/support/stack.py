"""The whole of Nimbus running as real processes, for end-to-end tests.

A fresh PostgreSQL database and Redis database, the web server (Daphne), the
DICOM listener and a Celery worker, each a subprocess started the way
`make run` starts them. Nothing is mocked.
"""

import base64
import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import redis
from django_otp.oath import totp

from deploy.dev.processes import commands

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "E2e-reader-password-7"
TOTP_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def wait_for(predicate, seconds: float = 60, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@dataclass
class Stack:
    env: dict[str, str]
    web_port: int
    dicom_port: int
    ris_port: int
    hl7_port: int = 0
    schema: str = "e2e"
    host: str = "e2e.localhost"
    ae_title: str = "NIMBUS_E2E"
    username: str = "reader"
    token: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Name (web, dicom, worker, hl7) -> its command and its running process,
    # for tests that kill or restart one of them.
    commands: dict[str, list[str]] = field(default_factory=dict)
    named: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path | None = None
    last_otp_step: int = -1

    def fresh_otp(self) -> str:
        """A TOTP code from a time step not used before: django-otp refuses replays."""
        key = base64.b32decode(TOTP_SECRET)
        while int(time.time()) // 30 <= self.last_otp_step:
            time.sleep(0.5)
        self.last_otp_step = int(time.time()) // 30
        return f"{totp(key):06d}"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}, public")
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def start(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        assert self.logs is not None
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=log
        )
        self.processes.append(process)
        self.named[name] = process
        return process

    def restart(self, name: str, *, kill: bool = False) -> subprocess.Popen[bytes]:
        """Stop process ``name`` (SIGKILL with ``kill``, else SIGTERM) and start it again."""
        old = self.named[name]
        if kill:
            old.kill()
        else:
            old.terminate()
        old.wait(30)
        self.processes.remove(old)
        return self.start(name, *self.commands[name])

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        return self.call("GET", path, token=token)

    def call(
        self, method: str, path: str, body: object = None, token: str | None = None
    ) -> tuple[int, bytes]:
        """An HTTP request to the web process, on the tenant's host name."""
        headers = {"Host": f"{self.host}:{self.web_port}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}{path}",
            data=data,
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


_stack_numbers = itertools.count(1)


def _database_url(base: str, name: str) -> str:
    parsed = urlparse(base)
    return parsed._replace(path=f"/{name}").geturl()


@contextlib.contextmanager
def running_stack(
    tmp: Path,
    ris_port: int,
    *,
    database_url: str = "",
    redis_url: str = "",
    env: dict[str, str] | None = None,
    grouped: bool = False,
) -> Iterator[Stack]:
    """A stack on the test run's PostgreSQL and Redis, or on the ones named.

    ``env`` adds or overrides the processes' environment (fault tests point
    the spool at a small file system, shorten the sweep). ``grouped`` starts
    the processes as `make run` does, forked from one preloaded parent
    (deploy/dev/process_group.py), as one process named "group".
    """
    base_db = database_url or os.environ.get(
        "DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/nimbus"
    )
    # Several stacks may live at once in one test run (the browser tests'
    # and the attack suite's are both session-scoped): a database each.
    db_name = f"nimbus_e2e_{os.getpid()}_{next(_stack_numbers)}"
    admin_url = _database_url(base_db, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        conn.execute(f'CREATE DATABASE "{db_name}"')

    redis_url = _claim_redis_database(
        redis_url or os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )

    logs = tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        env={
            **os.environ,
            "DATABASE_URL": _database_url(base_db, db_name),
            "REDIS_URL": redis_url,
            "NIMBUS_VAR_DIR": str(tmp / "var"),
            "NIMBUS_DICOM_PORT": "0",
            "NIMBUS_HL7_RETRY_BASE_SECONDS": "1",
            "NIMBUS_HL7_RETRY_MAX_SECONDS": "2",
            "NIMBUS_HL7_TIMEOUT_SECONDS": "3",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        },
        web_port=free_port(),
        dicom_port=free_port(),
        ris_port=ris_port,
        hl7_port=free_port(),
        logs=logs,
    )
    stack.env["NIMBUS_DICOM_PORT"] = str(stack.dicom_port)
    stack.env["NIMBUS_HL7_PORT"] = str(stack.hl7_port)
    if "NIMBUS_AUDIT_HEAD_DIR" not in (env or {}):
        # Every stack is a deployment of its own, with a tenant of the same
        # schema name: the test run's head folder would hold an earlier
        # stack's heads of that schema, and its chain would look cut short.
        stack.env.pop("NIMBUS_AUDIT_HEAD_DIR", None)
    try:
        stack.manage("migrate_schemas", "--shared", "--verbosity", "0")
        stack.manage(
            "create_tenant",
            "--schema",
            stack.schema,
            "--name",
            "E2E Hospital",
            "--domain",
            stack.host,
            # An alias on the loopback address, for clients that cannot
            # resolve *.localhost (Python's resolver, Node's).
            "--domain",
            "127.0.0.1",
            "--ae-title",
            stack.ae_title,
            "--ris-host",
            "127.0.0.1",
            "--ris-port",
            str(ris_port),
        )
        stack.manage(
            "create_user",
            "--tenant",
            stack.schema,
            "--username",
            stack.username,
            "--role",
            "radiologist",
            "--password",
            PASSWORD,
            "--totp-secret",
            TOTP_SECRET,
        )
        stack.token = (
            stack.manage(
                "create_api_token",
                "--tenant",
                stack.schema,
                "--username",
                stack.username,
            )
            .strip()
            .splitlines()[-1]
        )

        started = commands(
            sys.executable,
            web_host="127.0.0.1",
            web_port=str(stack.web_port),
            var_dir=tmp / "var",
            dicom_host="127.0.0.1",
        )
        stack.commands = started
        if grouped:
            stack.start(
                "group",
                sys.executable,
                "deploy/dev/process_group.py",
                *("--web-port", str(stack.web_port), "--dicom-host", "127.0.0.1"),
                *("--var-dir", str(tmp / "var"), "--only", "web,dicom,worker,hl7"),
            )
        else:
            for name in ("web", "dicom", "worker", "hl7"):
                stack.start(name, *started[name])
        wait_for_port(stack.web_port)
        wait_for_port(stack.dicom_port)
        wait_for_port(stack.hl7_port)
        _wait_until_ready(stack)
        yield stack
    finally:
        for process in stack.processes:
            process.terminate()
        for process in stack.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        redis.Redis.from_url(redis_url).delete(REDIS_OWNER_KEY)


REDIS_OWNER_KEY = "nimbus:test-stack-owner"


def _claim_redis_database(base_url: str) -> str:
    """A Redis database (8-15) that no other running stack uses, emptied.

    Two stacks on one Redis database would take each other's Celery tasks:
    the e2e tests, the bench and engineers' runs may overlap on one machine.
    """
    for number in range(8, 16):
        url = urlparse(base_url)._replace(path=f"/{number}").geturl()
        client = redis.Redis.from_url(url)
        if client.set(REDIS_OWNER_KEY, os.getpid(), nx=True, ex=4 * 3600):
            for key in client.scan_iter():
                if key != REDIS_OWNER_KEY.encode():
                    client.delete(key)
            return url
    raise RuntimeError("every Redis database from 8 to 15 is held by a test stack")


def _wait_until_ready(stack: Stack, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, _ = stack.get("/readyz")
        if status == 200:
            return
        time.sleep(1)
    raise TimeoutError(
        "the stack never became ready; see the logs under " + str(stack.logs)
    )
