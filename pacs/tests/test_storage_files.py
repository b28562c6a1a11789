"""Placing spooled files in the archive: a storage name only holds whole files.

A full archive disk, or a crash mid-copy, once left a cut-short file under
the real name; the retry kept it because the name existed, indexed it, and
removed the only good copy from the spool.
"""

import errno
import os
import shutil
from pathlib import Path

import pytest

from pacs import storage_files

NAME = "tenant/1.2.3/1.2.3.4/1.2.3.4.5.dcm"


@pytest.fixture
def archive(settings, tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    settings.NIMBUS_SPOOL_FSYNC = False
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return root


@pytest.fixture
def spooled(tmp_path: Path) -> Path:
    path = tmp_path / "spool" / "received.dcm"
    path.parent.mkdir()
    path.write_bytes(os.urandom(100_000))
    return path


def stored(archive: Path) -> Path:
    return archive / NAME


def leftovers(archive: Path) -> list[Path]:
    return [p for p in archive.rglob("*") if p.is_file() and p.name.endswith(".part")]


def test_a_spooled_file_is_stored_whole(archive, spooled):
    storage_files.place([(spooled, NAME)])

    assert stored(archive).read_bytes() == spooled.read_bytes()
    assert not leftovers(archive)


def test_a_cut_short_file_left_by_an_earlier_failure_is_replaced(archive, spooled):
    stored(archive).parent.mkdir(parents=True)
    stored(archive).write_bytes(spooled.read_bytes()[:40_000])

    storage_files.place([(spooled, NAME)])

    assert stored(archive).read_bytes() == spooled.read_bytes()


def test_a_whole_file_already_stored_is_kept(archive, spooled):
    stored(archive).parent.mkdir(parents=True)
    shutil.copyfile(spooled, stored(archive))
    before = stored(archive).stat().st_ino

    storage_files.place([(spooled, NAME)])

    assert stored(archive).stat().st_ino == before


def test_a_copy_that_fills_the_disk_leaves_nothing_under_the_name(
    archive, spooled, monkeypatch
):
    # The archive on another file system (no hard link), and the disk full
    # halfway through the copy.
    def cannot_link(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def half_then_full(source, destination):
        Path(destination).write_bytes(Path(source).read_bytes()[:50_000])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_files.os, "link", cannot_link)
    monkeypatch.setattr(storage_files.shutil, "copyfile", half_then_full)

    with pytest.raises(OSError) as failure:
        storage_files.place([(spooled, NAME)])

    assert failure.value.errno == errno.ENOSPC
    assert not stored(archive).exists()
    assert not leftovers(archive)
    assert spooled.exists()  # the caller keeps it for the retry


def test_across_file_systems_the_bytes_are_copied(archive, spooled, monkeypatch):
    def cannot_link(*_args):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(storage_files.os, "link", cannot_link)

    storage_files.place([(spooled, NAME)])

    assert stored(archive).read_bytes() == spooled.read_bytes()
    assert not leftovers(archive)
