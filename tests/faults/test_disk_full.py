"""The spool's file system full while a modality sends a series.

The spool is a real tmpfs of its own, filled with a file until a little
more than two slices fit. The worker is stopped meanwhile, so nothing frees
space behind the test's back. The C-STORE of the slice that no longer fits
is answered 0xA700 (Refused: Out of Resources, PS3.4 B.2.3), its half-written
file is removed, and only complete files are indexed. With space again, the
same series sent in full is indexed exactly once.
"""

import os
from pathlib import Path

import pydicom
import pytest

from tests.faults.conftest import (
    indexed,
    indexed_uids,
    ingest_failures,
    new_series,
    sop_uids,
    spool_folder,
    spool_leftovers,
    storescu,
    wait_until_indexed,
)
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.faults

SLICES = 8


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that takes all but ``leave_bytes`` of ``folder``'s file system."""
    filler = folder / "filler.bin"
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    chunk = b"\0" * (1 << 20)
    remaining = free - leave_bytes
    with open(filler, "wb") as handle:
        while remaining > 0:
            remaining -= handle.write(chunk[: min(len(chunk), remaining)])
    return filler


def test_a_full_spool_answers_out_of_resources_and_indexes_no_half_written_file(
    fault_stack: Stack, spool_on_tmpfs: Path | None, tmp_path: Path
) -> None:
    if spool_on_tmpfs is None:
        pytest.skip("no tmpfs can be mounted here (mounting needs root)")
    files, study_uid = new_series(tmp_path / "series", SLICES)
    failures_before = ingest_failures(fault_stack)
    spool_folder(fault_stack).mkdir(parents=True, exist_ok=True)
    wait_for(lambda: not spool_leftovers(fault_stack), 60, what="an empty spool")
    worker = fault_stack.named["worker"]
    worker.terminate()
    worker.wait(30)
    fault_stack.processes.remove(worker)

    slice_bytes = max(path.stat().st_size for path in files)
    filler = fill(spool_on_tmpfs, leave_bytes=int(2.5 * slice_bytes))
    try:
        full = storescu(fault_stack, files)
        spooled = spool_leftovers(fault_stack)
    finally:
        filler.unlink()

    accepted = full.stderr.count("Received Store Response (Success)")
    refused = full.stderr.count("Received Store Response (Refused: OutOfResources)")
    assert full.returncode != 0
    # Two slices fit, the third does not: refused, and storescu stops there.
    assert (accepted, refused) == (2, 1), full.stderr[-1500:]
    assert [name for name in spooled if not name.endswith(".dcm")] == []
    assert len(spooled) == accepted
    assert "C-STORE spool write failed" in (fault_stack.logs / "dicom.log").read_text()

    fault_stack.start("worker", *fault_stack.commands["worker"])
    rows, distinct = wait_until_indexed(fault_stack, study_uid, accepted, 90)
    assert (rows, distinct) == (accepted, accepted)
    assert indexed_uids(fault_stack, study_uid) == sop_uids(files[:accepted])
    assert_stored_whole(fault_stack, study_uid, files)
    assert ingest_failures(fault_stack) == failures_before

    # Space again: the modality sends the whole series once more.
    again = storescu(fault_stack, files)
    assert again.returncode == 0, again.stderr[-1500:]
    rows, distinct = wait_until_indexed(fault_stack, study_uid, SLICES, 90)
    assert (rows, distinct) == (SLICES, SLICES)
    assert indexed_uids(fault_stack, study_uid) == sop_uids(files)
    assert_stored_whole(fault_stack, study_uid, files)
    wait_for(lambda: not spool_leftovers(fault_stack), 30, what="an empty spool")
    print(
        f"FAULT disk full: spool tmpfs free={int(2.5 * slice_bytes)} bytes, "
        f"slice={slice_bytes} bytes; sent={SLICES} accepted={accepted} "
        f"refused_0xA700={refused} partial_files_left=0 indexed_while_full={accepted}; "
        f"after space freed and a resend: rows={rows} distinct={distinct}"
    )


def assert_stored_whole(stack: Stack, study_uid: str, sources: list[Path]) -> None:
    """Every indexed instance's stored file holds the pixels that were sent."""
    storage = Path(stack.env["NIMBUS_VAR_DIR"]) / "storage"
    by_uid = {
        str(pydicom.dcmread(path).SOPInstanceUID): pydicom.dcmread(path)
        for path in sources
    }
    rows = stack.sql(
        "SELECT i.sop_instance_uid, i.storage_path, i.file_size FROM pacs_instance i"
        " JOIN pacs_series s ON i.series_id = s.id JOIN pacs_study t"
        " ON s.study_id = t.id WHERE t.study_instance_uid = %s",
        study_uid,
    )
    for sop_uid, storage_path, file_size in rows:
        stored = storage / str(storage_path)
        assert stored.stat().st_size == file_size
        ds = pydicom.dcmread(stored)
        assert ds.pixel_array.tobytes() == by_uid[str(sop_uid)].pixel_array.tobytes()
    assert indexed(stack, study_uid)[0] == len(rows)
