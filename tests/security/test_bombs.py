"""Decompression bombs and huge declared lengths against a running Nimbus.

A Deflated Explicit VR Little Endian data set (PS3.5 A.5) of a few MB that
inflates to gigabytes goes in over a C-STORE association and as a STOW-RS
part; the stack runs with ``NIMBUS_DICOM_MAX_INSTANCE_MB`` at 64, so the
inflate cap (``NIMBUS_MAX_INFLATED_MB``, the instance limit by default) is
64 MB. Each is refused quickly, kept in quarantine with its reason, and the
peak memory of the process that read it stays far below what inflating would
take. A normal deflated file still goes end to end. The reader itself is
also run in a child process whose address space is limited, where pydicom
alone would fail.
"""

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pydicom
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from tests.security.conftest import DATA, Attack
from tests.security.test_attacks_dicom import (
    failure_reasons,
    listener_answers_echo,
    quarantined,
    stow,
    with_oversized_length,
)
from tests.support.stack import wait_for

IMAGE_DFL = DATA / "pydicom" / "image_dfl.dcm"
GIB = 1 << 30
ZEROS = bytes(1 << 24)
INSTANCE_STORED = 300


def deflated_copy() -> bytes:
    """image_dfl.dcm (deflated secondary capture) as a new study and instance."""
    ds = pydicom.dcmread(IMAGE_DFL)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def deflate_bomb(inflated_gib: int = 3) -> bytes:
    """A deflated copy of image_dfl whose data set ends in ``inflated_gib`` of zeros.

    A private OB element after the pixel data holds the zeros; the data set
    reads correctly up to it, so only the inflated size can refuse it. Each
    16 MiB of zeros compresses to the same bytes after a sync flush, so the
    bomb (about 1 MB a gigabyte) is made in a moment.
    """
    raw = deflated_copy()
    fp = io.BytesIO(raw)
    read_preamble(fp, False)
    _read_file_meta_info(fp)
    start = fp.tell()
    body = zlib.decompress(raw[start:], -zlib.MAX_WBITS)
    element = b"\xe1\x7f\x10\x10OB\x00\x00" + struct.pack("<I", inflated_gib * GIB)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = deflater.compress(body + element + ZEROS)
    first += deflater.flush(zlib.Z_SYNC_FLUSH)
    repeated = deflater.compress(ZEROS) + deflater.flush(zlib.Z_SYNC_FLUSH)
    count = inflated_gib * GIB // len(ZEROS) - 1
    return raw[:start] + first + repeated * count + deflater.flush()


def sop_instance_uid(data: bytes) -> str:
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    return str(_read_file_meta_info(fp).MediaStorageSOPInstanceUID)


def c_store_deflated(attack: Attack, path: Path) -> int:
    """Send a file's bytes as they are, in Deflated Explicit VR Little Endian.

    Chunked from the file: otherwise pynetdicom reads the file with pydicom,
    which inflates the bomb in this process and deflates it again.
    """
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="BOMBER")
    ae.add_requested_context(
        SecondaryCaptureImageStorage, DeflatedExplicitVRLittleEndian
    )
    assoc = ae.associate(
        "127.0.0.1", attack.stack.dicom_port, ae_title=attack.stack.ae_title
    )
    assert assoc.is_established
    try:
        status = assoc.send_c_store(path)
        return int(status.Status) if "Status" in status else -1
    finally:
        assoc.release()
        _config.STORE_SEND_CHUNKED_DATASET = False


def peak_kb(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1])


def indexed(attack: Attack, sop_uid: str) -> bool:
    return bool(
        attack.sql(
            "e2e", "SELECT 1 FROM pacs_instance WHERE sop_instance_uid = %s", sop_uid
        )
    )


def test_it_refuses_a_deflate_bomb_over_c_store_quickly_and_keeps_it(attack, tmp_path):
    bomb = deflate_bomb()
    assert len(bomb) < 4 << 20
    path = tmp_path / "bomb.dcm"
    path.write_bytes(bomb)
    listener = attack.stack.processes[1].pid
    before = peak_kb(listener)
    since = attack.mark()
    started = time.monotonic()

    status = c_store_deflated(attack, path)

    assert status == 0xA700
    assert time.monotonic() - started < 20
    assert peak_kb(listener) - before < 256 * 1024
    [(kept, error)] = wait_for(lambda: quarantined(attack, sop_instance_uid(bomb)), 30)
    assert "/quarantine/" in kept and "decompression bomb" in error
    assert not indexed(attack, sop_instance_uid(bomb))
    stored = [e for e in attack.events(since) if e[0] == INSTANCE_STORED]
    assert [e[1] for e in stored] == ["failure"]
    assert listener_answers_echo(attack)


def test_it_refuses_a_deflate_bomb_part_over_stow_rs_and_stores_the_others(attack):
    bomb, normal = deflate_bomb(), deflated_copy()
    web = attack.stack.processes[0].pid
    before = peak_kb(web)
    started = time.monotonic()

    status, answer = stow(attack, bomb, normal)

    assert status == 202
    assert failure_reasons(answer) == [0xA700]
    assert time.monotonic() - started < 20
    assert peak_kb(web) - before < 256 * 1024
    assert not indexed(attack, sop_instance_uid(bomb))
    assert indexed(attack, sop_instance_uid(normal))
    assert attack.stack.get("/healthz")[0] == 200


def test_a_normal_deflated_file_goes_end_to_end_over_c_store(attack, tmp_path):
    data = deflated_copy()
    ds = pydicom.dcmread(io.BytesIO(data))
    path = tmp_path / "dfl.dcm"
    path.write_bytes(data)

    assert c_store_deflated(attack, path) == 0x0000

    wait_for(lambda: indexed(attack, str(ds.SOPInstanceUID)), 30)
    rendered = attack.api(
        "author",
        "GET",
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/rendered",
        headers={"Accept": "image/png"},
    )
    assert rendered.status_code == 200
    assert rendered.content.startswith(b"\x89PNG")
    assert len(rendered.content) > 2000  # the image, not the error picture


# The reader in a process that may map 768 MB at most: pydicom alone fails.
LIMITED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (768 << 20, 768 << 20))
from django.conf import settings
settings.configure(NIMBUS_MAX_INFLATED_MB=64)
import pydicom
from pacs import deflate
source = sys.argv[2]
data = open(source, "rb").read() if sys.argv[1] == "bytes" else source
try:
    deflate.read_bounded(data)
    print("read")
except deflate.InflateLimitExceeded:
    print("refused")
except MemoryError:
    print("memory")
except Exception as error:
    print(type(error).__name__)
if sys.argv[1] == "pydicom":
    try:
        pydicom.dcmread(source)
        print("pydicom read")
    except MemoryError:
        print("pydicom memory")
"""


def read_in_limited_process(mode: str, path: Path) -> list[str]:
    answer = subprocess.run(
        [sys.executable, "-c", LIMITED_READ, mode, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    return answer.stdout.split("\n")[:-1]


def test_the_reader_refuses_a_bomb_within_a_768_mb_address_space(tmp_path):
    path = tmp_path / "bomb.dcm"
    path.write_bytes(deflate_bomb())

    assert read_in_limited_process("pydicom", path) == ["refused", "pydicom memory"]
    assert read_in_limited_process("bytes", path) == ["refused"]


def test_the_reader_allocates_no_declared_length_past_the_end_of_a_file(tmp_path):
    path, _ds = with_oversized_length(tmp_path)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(struct.pack("<I", 0x7FFFFFF0), b"\xf0\xff\xff\xef"))

    assert read_in_limited_process("pydicom", path) == ["read", "pydicom memory"]


def test_the_reader_still_reads_a_normal_deflated_file(tmp_path):
    path = tmp_path / "dfl.dcm"
    path.write_bytes(deflated_copy())

    assert read_in_limited_process("path", path) == ["read"]
