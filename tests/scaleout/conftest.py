from collections.abc import Iterator
from pathlib import Path

import pytest

from config.storage import storage_setting
from tests.support.seaweed import S3Server, running_s3


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def s3_storage(storage_dirs: Path, s3_server: S3Server, settings, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    """The archive in the S3 server under a prefix of this test's own."""
    prefix = f"t-{storage_dirs.name}"
    for name, value in s3_server.env(prefix).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NIMBUS_STORAGE_CACHE", str(storage_dirs / "cache"))
    settings.STORAGES = {
        **settings.STORAGES,
        "default": storage_setting(
            s3_server.env(prefix)["NIMBUS_STORAGE"], storage_dirs
        ),
    }
    return storage_dirs
