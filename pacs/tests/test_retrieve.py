"""C-MOVE and C-GET, driven by dcmtk's movescu and getscu over real associations.

The destination of each C-MOVE is a real dcmtk storescp on 127.0.0.1. The
listener runs in a thread with its own database connections, so the archive
rows these tests need are committed from another thread and removed at the end.
"""

import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.db import connection
from django_tenants.utils import get_public_schema_name, schema_context

from audit.models import AuditEvent, EventType
from audit.testing import purge_audit_trail
from conftest import CT_SERIES, SHARED_DATA
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import (
    IngestFailure,
    Instance,
    Patient,
    RemoteApplicationEntity,
    Series,
    Study,
)
from pacs.tests.test_listener import dcmtk, free_port, listener, storescu  # noqa: F401
from tenants.models import Tenant

COMPRESSED_AND_OTHER = [
    SHARED_DATA / "pydicom" / name
    for name in (
        "MR_small_jpeg_ls_lossless.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "SC_rgb_dcmtk_+eb+cy+np.dcm",
        "examples_ybr_color.dcm",
        "JPEG2000.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
    )
]


def committed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``function`` on its own connection, so the listener thread sees it."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def ingest(schema: str, files: list[Path]) -> None:
    with schema_context(schema):
        for path in files:
            do_ingest_spooled_file(spool.write_durably(schema, path.read_bytes()))


def add_remote(schema: str, ae_title: str, port: int, **flags: bool) -> None:
    with schema_context(schema):
        RemoteApplicationEntity.objects.update_or_create(
            ae_title=ae_title, defaults={"host": "127.0.0.1", "port": port, **flags}
        )


def set_only_known_peers(schema: str, value: bool) -> None:
    with schema_context(get_public_schema_name()):
        Tenant.objects.filter(schema_name=schema).update(
            only_known_peers_may_store=value
        )


def wipe() -> None:
    for schema in ("hospital_a", "hospital_b"):
        set_only_known_peers(schema, False)
        with schema_context(schema):
            Instance.objects.all().delete()
            Series.objects.all().delete()
            Study.objects.all().delete()
            Patient.objects.all().delete()
            IngestFailure.objects.all().delete()
            RemoteApplicationEntity.objects.all().delete()
            # The trail is append-only: only a superuser session may empty it.
            purge_audit_trail()


# movescu's own default calling AE title: a known remote AE of hospital A in
# these tests (only known remote AEs may ask for a C-MOVE).
MOVE_REQUESTOR = "MOVESCU"


@pytest.fixture
def archive(listener, django_db_blocker) -> Iterator[int]:  # noqa: F811
    """The running listener, with everything committed here removed afterwards."""
    with django_db_blocker.unblock():
        try:
            committed(add_remote, "hospital_a", MOVE_REQUESTOR, 104)
            yield listener
        finally:
            committed(wipe)


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[tuple[str, int, Path]]:
    """A dcmtk storescp accepting every transfer syntax it knows, as DEST_A."""
    port = free_port()
    folder = tmp_path / "received"
    folder.mkdir()
    process = subprocess.Popen(
        ["storescp", "-aet", "DEST_A", "+xa", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            if (
                dcmtk("echoscu", "-aec", "DEST_A", "127.0.0.1", str(port)).returncode
                == 0
            ):
                break
        yield "DEST_A", port, folder
    finally:
        process.terminate()
        process.wait(10)


def movescu(port: int, destination: str, level: str, *keys: str) -> str:
    result = dcmtk(
        "movescu",
        "-d",
        "-S",
        "-aec",
        "NIMBUS_A",
        "-aem",
        destination,
        "-k",
        f"QueryRetrieveLevel={level}",
        *[arg for key in keys for arg in ("-k", key)],
        "127.0.0.1",
        str(port),
    )
    return result.stdout + result.stderr


def final_response(output: str) -> dict[str, int]:
    """Status and sub-operation counts of the last C-MOVE/C-GET response dumped."""
    last = output.rsplit("Message Type                  : C-", 1)[-1]
    fields = {
        "status": r"DIMSE Status\s*:\s*0x([0-9A-Fa-f]{4})",
        "completed": r"Completed Suboperations\s*:\s*(\d+|none)",
        "failed": r"Failed Suboperations\s*:\s*(\d+|none)",
        "warning": r"Warning Suboperations\s*:\s*(\d+|none)",
    }
    answer = {}
    for name, pattern in fields.items():
        found = re.search(pattern, last)
        assert found, f"{name} missing in:\n{last}"
        value = found.group(1)
        answer[name] = (
            int(value, 16) if name == "status" else int(value.replace("none", "0"))
        )
    return answer


def received(folder: Path) -> dict[str, pydicom.Dataset]:
    return {
        str(ds.SOPInstanceUID): ds
        for ds in (pydicom.dcmread(path) for path in folder.iterdir() if path.is_file())
    }


def unique_instances(files: list[Path]) -> dict[str, Path]:
    """The first file of each SOP Instance UID (ingest keeps only the first)."""
    by_uid: dict[str, Path] = {}
    for path in files:
        by_uid.setdefault(str(pydicom.dcmread(path).SOPInstanceUID), path)
    return by_uid


def assert_same_content(got: pydicom.Dataset, source: Path) -> None:
    """Same elements and values; the pixel data compared as bytes.

    Data Set Trailing Padding belongs to the file, not the dataset sent
    (PS3.10 7.2), and storescp writes encapsulated pixel data as OB (PS3.5
    A.4) where a test file says OW: neither is part of the content compared.
    """
    original = pydicom.dcmread(source)
    for ds in (got, original):
        ds.pop(TRAILING_PADDING, None)
    got_pixels, original_pixels = (
        got.pop(PIXEL_DATA, None),
        original.pop(PIXEL_DATA, None),
    )
    assert got == original, source.name
    assert (got_pixels is None) == (original_pixels is None)
    if original_pixels is not None:
        assert got_pixels.value == original_pixels.value, source.name  # bit for bit
    syntax = original.file_meta.TransferSyntaxUID
    if syntax.is_compressed:
        assert got.file_meta.TransferSyntaxUID == syntax


TRAILING_PADDING = 0xFFFCFFFC
PIXEL_DATA = 0x7FE00010
CT_SLICES = sorted(CT_SERIES.glob("*.dcm"))[:4]


def test_it_moves_a_study_to_a_known_destination_unchanged(archive, storescp):
    title, port, folder = storescp
    committed(ingest, "hospital_a", CT_SLICES)
    committed(add_remote, "hospital_a", title, port, may_retrieve=True)
    study_uid = pydicom.dcmread(CT_SLICES[0]).StudyInstanceUID

    output = movescu(archive, title, "STUDY", f"StudyInstanceUID={study_uid}")

    expected = unique_instances(CT_SLICES)
    assert final_response(output) == {
        "status": 0x0000,
        "completed": len(expected),
        "failed": 0,
        "warning": 0,
    }
    got = received(folder)
    assert set(got) == set(expected)
    for uid, source in expected.items():
        assert_same_content(got[uid], source)


def test_it_moves_compressed_files_with_their_pixel_data_bit_for_bit(archive, storescp):
    title, port, folder = storescp
    committed(ingest, "hospital_a", COMPRESSED_AND_OTHER)
    committed(add_remote, "hospital_a", title, port, may_retrieve=True)
    expected = unique_instances(COMPRESSED_AND_OTHER)
    study_uids = sorted(
        {str(pydicom.dcmread(path).StudyInstanceUID) for path in expected.values()}
    )

    output = movescu(
        archive, title, "STUDY", "StudyInstanceUID=" + "\\".join(study_uids)
    )

    assert final_response(output) == {
        "status": 0x0000,
        "completed": len(expected),
        "failed": 0,
        "warning": 0,
    }
    got = received(folder)
    assert set(got) == set(expected)
    for uid, source in expected.items():
        assert_same_content(got[uid], source)


def test_it_moves_one_series_and_one_instance(archive, storescp):
    title, port, folder = storescp
    committed(ingest, "hospital_a", CT_SLICES + COMPRESSED_AND_OTHER[:2])
    committed(add_remote, "hospital_a", title, port, may_retrieve=True)
    first = pydicom.dcmread(CT_SLICES[0])
    in_series = unique_instances(
        [
            p
            for p in CT_SLICES
            if pydicom.dcmread(p).SeriesInstanceUID == first.SeriesInstanceUID
        ]
    )

    series = movescu(
        archive,
        title,
        "SERIES",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
    )
    assert final_response(series)["completed"] == len(in_series)
    assert set(received(folder)) == set(in_series)

    for path in folder.iterdir():
        path.unlink()
    image = movescu(
        archive,
        title,
        "IMAGE",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
        f"SOPInstanceUID={first.SOPInstanceUID}",
    )
    assert final_response(image)["completed"] == 1
    assert set(received(folder)) == {first.SOPInstanceUID}


def test_it_answers_move_destination_unknown_and_stays_up(archive, storescp):
    title, port, folder = storescp
    committed(ingest, "hospital_a", CT_SLICES[:1])
    # Known to the other tenant only: still unknown to hospital A.
    committed(add_remote, "hospital_b", title, port, may_retrieve=True)
    study_uid = pydicom.dcmread(CT_SLICES[0]).StudyInstanceUID

    output = movescu(archive, title, "STUDY", f"StudyInstanceUID={study_uid}")
    unknown = movescu(archive, "NOBODY", "STUDY", f"StudyInstanceUID={study_uid}")

    assert final_response(output)["status"] == 0xA801
    assert final_response(unknown)["status"] == 0xA801
    assert not any(folder.iterdir())
    echo = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(archive))
    assert echo.returncode == 0, echo.stderr


def test_it_moves_nothing_of_another_tenants_study(archive, storescp):
    title, port, folder = storescp
    committed(ingest, "hospital_b", CT_SLICES[:2])
    committed(add_remote, "hospital_a", title, port, may_retrieve=True)
    study_uid = pydicom.dcmread(CT_SLICES[0]).StudyInstanceUID

    output = movescu(archive, title, "STUDY", f"StudyInstanceUID={study_uid}")

    assert final_response(output) == {
        "status": 0x0000,
        "completed": 0,
        "failed": 0,
        "warning": 0,
    }
    assert not any(folder.iterdir())


def test_it_refuses_a_move_without_the_unique_key_of_its_level(archive, storescp):
    title, port, folder = storescp
    committed(add_remote, "hospital_a", title, port, may_retrieve=True)

    output = movescu(archive, title, "SERIES", "StudyInstanceUID=1.2.3")

    assert final_response(output)["status"] == 0xA900


def test_it_sends_a_series_back_over_the_same_association_with_c_get(archive, tmp_path):
    committed(ingest, "hospital_a", CT_SLICES + COMPRESSED_AND_OTHER[:3])
    committed(add_remote, "hospital_a", "GETTER", 1, may_retrieve=True)
    first = pydicom.dcmread(CT_SLICES[0])
    expected = unique_instances(CT_SLICES)
    folder = tmp_path / "got"
    folder.mkdir()

    result = dcmtk(
        "getscu",
        "-d",
        "-S",
        "-aet",
        "GETTER",
        "-aec",
        "NIMBUS_A",
        "-od",
        str(folder),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        "-k",
        f"SeriesInstanceUID={first.SeriesInstanceUID}",
        "127.0.0.1",
        str(archive),
    )

    output = result.stdout + result.stderr
    assert final_response(output) == {
        "status": 0x0000,
        "completed": len(expected),
        "failed": 0,
        "warning": 0,
    }
    got = received(folder)
    assert set(got) == set(expected)
    for uid, source in expected.items():
        assert_same_content(got[uid], source)
    with schema_context("hospital_a"):
        events = AuditEvent.objects.filter(event_type=EventType.DICOM_GET)
        assert events.filter(study_instance_uid=first.StudyInstanceUID).exists()


def test_it_refuses_c_get_from_a_peer_the_tenant_does_not_know(archive, tmp_path):
    committed(ingest, "hospital_a", CT_SLICES[:1])
    first = pydicom.dcmread(CT_SLICES[0])

    result = dcmtk(
        "getscu",
        "-d",
        "-S",
        "-aet",
        "STRANGER",
        "-aec",
        "NIMBUS_A",
        "-od",
        str(tmp_path),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={first.StudyInstanceUID}",
        "127.0.0.1",
        str(archive),
    )

    assert final_response(result.stdout + result.stderr)["status"] == 0x0124
    assert not list(tmp_path.glob("*.*.*"))


def test_only_known_peers_may_store_when_the_tenant_asks(archive):
    committed(set_only_known_peers, "hospital_a", True)
    committed(add_remote, "hospital_a", "MODALITY", 104, may_store=True)
    committed(add_remote, "hospital_a", "VIEWER", 104, may_retrieve=True)

    def store(
        calling: str, called: str = "NIMBUS_A"
    ) -> subprocess.CompletedProcess[str]:
        return storescu(archive, calling, CT_SLICES[0], called=called)

    stranger = store("STRANGER")
    viewer = store("VIEWER")
    modality = store("MODALITY")
    other_tenant = store("STRANGER", "NIMBUS_B")

    assert stranger.returncode != 0
    assert "Calling AE Title Not Recognized" in stranger.stdout + stranger.stderr
    assert viewer.returncode != 0
    assert modality.returncode == 0, modality.stderr
    assert other_tenant.returncode == 0, other_tenant.stderr
    echo = dcmtk(
        "echoscu", "-aet", "STRANGER", "-aec", "NIMBUS_A", "127.0.0.1", str(archive)
    )
    assert echo.returncode == 0
