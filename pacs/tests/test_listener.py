"""The DICOM listener, driven by dcmtk's echoscu and storescu over real associations."""

import base64
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import redis
from django.conf import settings

from conftest import CT_SERIES
from pacs import spool
from pacs.dimse.listener import serve
from tests.support.stack import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listener(storage_dirs, db, django_db_blocker) -> Iterator[int]:  # type: ignore[no-untyped-def]
    port = free_port()
    stop = threading.Event()
    with django_db_blocker.unblock():
        thread = threading.Thread(
            target=serve, args=("127.0.0.1", port, stop), daemon=True
        )
        thread.start()
        for _ in range(50):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            stop.wait(0.1)
        try:
            yield port
        finally:
            stop.set()
            thread.join(10)
            # The listener commits on its own connections (quarantine records,
            # audit events): remove them, or later tests see a foreign trail.
            from pacs.tests.test_retrieve import committed, wipe

            committed(wipe)


def dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


def storescu(
    port: int, calling: str, *files: Path, called: str = "NIMBUS_A"
) -> subprocess.CompletedProcess[str]:
    """dcmtk's storescu from AE title ``calling`` to ``called`` on 127.0.0.1."""
    return dcmtk(
        "storescu", "-aet", calling, "-aec", called, "127.0.0.1", str(port),
        *map(str, files),
    )  # fmt: skip


def queued_spool_names() -> list[str]:
    """Spool file names in the ingest tasks waiting on the Celery queue."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    names = []
    for raw in broker.lrange(settings.NIMBUS_INGEST_QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "pacs.ingest_spooled_files":
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            names += args[0]
    return names


def test_it_answers_c_echo_for_a_tenant_ae_title(listener):
    result = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))

    assert result.returncode == 0, result.stderr


def test_it_rejects_an_unknown_called_ae_title(listener):
    result = dcmtk("echoscu", "-aec", "NOT_A_TENANT", "127.0.0.1", str(listener))

    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stderr + result.stdout


def test_it_spools_each_instance_before_answering_and_queues_it(listener):
    files = sorted(CT_SERIES.glob("*.dcm"))[:3]
    before = set(queued_spool_names())

    result = dcmtk(
        "storescu", "-aec", "NIMBUS_B", "127.0.0.1", str(listener), *map(str, files)
    )

    assert result.returncode == 0, result.stderr
    spooled = sorted(spool.spool_dir("hospital_b").glob("*.dcm"))
    assert len(spooled) == 3
    received = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in spooled}
    for path in files:
        original = pydicom.dcmread(path)
        assert received[original.SOPInstanceUID] == original
    # Queued in one batch, at most a moment after the last response.
    expected = {path.name for path in spooled}
    assert wait_for(lambda: set(queued_spool_names()) - before == expected, 5)
    assert not any(spool.spool_dir("hospital_a").glob("*.dcm"))


def test_it_survives_a_peer_that_sends_garbage_and_hangs_up(listener):
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", listener), timeout=5) as sock:
            sock.sendall(b"\x01\x00\x00\x00\xff\xffnot an association")

    result = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))
    assert result.returncode == 0, result.stderr


def test_it_answers_cannot_understand_to_a_dataset_it_cannot_read_and_keeps_it(
    listener, tmp_path, monkeypatch
):
    from pydicom.dataset import FileMetaDataset
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import CTImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.999"
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    garbage = tmp_path / "garbage.dcm"
    with open(garbage, "wb") as handle:
        handle.write(b"\0" * 128 + b"DICM")
        pydicom.filewriter.write_file_meta_info(handle, meta)
        handle.write(b"\x08\x00\x18\x00UI\xff\x7fnot a dataset at all")
    # Send the bytes as they are, without decoding them first.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    scu = AE(ae_title="HOSTILE")
    scu.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")

    assoc = scu.associate("127.0.0.1", listener, ae_title="NIMBUS_A")
    assert assoc.is_established
    status = assoc.send_c_store(garbage)
    assoc.release()

    assert status.Status == 0xC000
    assert not any(spool.spool_dir("hospital_a").glob("*.dcm"))
    assert len(list(spool.quarantine_dir("hospital_a").glob("*.dcm"))) == 1
    echo = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))
    assert echo.returncode == 0


def test_it_still_serves_modalities_while_sixty_idle_connections_are_held(listener):
    idle = [
        socket.create_connection(("127.0.0.1", listener), timeout=5) for _ in range(60)
    ]
    try:
        result = dcmtk("echoscu", "-aec", "NIMBUS_A", "127.0.0.1", str(listener))
    finally:
        for connection in idle:
            connection.close()

    assert result.returncode == 0, result.stderr
