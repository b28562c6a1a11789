"""A patient's images as a DICOM File-set in a ZIP: stored files plus a DICOMDIR.

PS3.10 section 8 and PS3.3 F.2: a File-set has one DICOMDIR whose directory
records (PATIENT, STUDY, SERIES, IMAGE...) name each file by its File ID, a
path of at most eight components of up to eight upper-case characters.
pydicom's ``FileSet`` builds the records and the File IDs. It copies every
file it writes, so it is given header-only copies in a scratch folder; the
ZIP then carries the DICOMDIR it wrote and, under the same File IDs, the
stored files exactly as received (the original transfer syntax, bit for
bit), read in chunks so the archive streams.
"""

import logging
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.core.files.storage import default_storage
from pydicom import Dataset, dcmread
from pydicom.fileset import FileSet

from pacs.models import Instance

logger = logging.getLogger(__name__)

CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One stored file and where it goes in the File-set."""

    file_id: str  # "PT000000/ST000000/SE000000/IM000000"
    storage_path: str


def build_file_set(instances: Iterable[Instance]) -> tuple[bytes, list[Member]]:
    """The DICOMDIR bytes and every member of the ZIP, in File ID order.

    An instance for which pydicom has no directory record (a record type
    that needs attributes the file lacks) still goes into the ZIP, under
    ``OTHER/``, outside the DICOMDIR: a patient's copy must not lose a file.
    """
    file_set = FileSet()
    file_set.ID = "NIMBUS"
    storage_of: dict[str, str] = {}
    unlisted: list[str] = []
    for instance in instances:
        try:
            file_set.add(_header(instance))
        except (ValueError, KeyError, AttributeError):
            unlisted.append(instance.storage_path)
            continue
        storage_of[instance.sop_instance_uid] = instance.storage_path
    if unlisted:
        logger.info("%d instances left out of a DICOMDIR", len(unlisted))

    members = [
        Member(f"OTHER/IM{number:06d}", path) for number, path in enumerate(unlisted)
    ]
    if not storage_of:
        return b"", members
    with tempfile.TemporaryDirectory(prefix="nimbus-fileset-") as scratch:
        file_set.write(scratch)
        dicomdir = (Path(scratch) / "DICOMDIR").read_bytes()
        members += [
            Member(Path(written.FileID).as_posix(), storage_of[written.SOPInstanceUID])
            for written in file_set
        ]
    members.sort(key=lambda member: member.file_id)
    return dicomdir, members


# PS3.3 F.5: attributes a PATIENT, STUDY, SERIES or IMAGE record may not
# leave empty, with what the record carries when the file has none.
REQUIRED_IN_RECORDS = {
    "PatientID": "UNKNOWN",
    "StudyDate": "19000101",
    "StudyTime": "000000",
    "StudyID": "1",
    "Modality": "OT",
    "SeriesNumber": 1,
}


def _header(instance: Instance) -> Dataset:
    """The stored file's header, with what a directory record needs filled in.

    Only the DICOMDIR sees the filled-in values: the ZIP carries the stored
    file itself. Modalities do leave out Study ID or Instance Number.
    """
    with default_storage.open(instance.storage_path, "rb") as handle:
        ds = dcmread(handle, stop_before_pixels=True)
    for keyword, value in REQUIRED_IN_RECORDS.items():
        if ds.get(keyword) in (None, ""):
            setattr(ds, keyword, value)
    if ds.get("InstanceNumber") in (None, ""):
        ds.InstanceNumber = instance.instance_number or 1
    return ds


class _Pipe:
    """A write-only, non-seekable file that hands written bytes to a generator.

    zipfile then writes data descriptors after each member instead of
    seeking back, which is what streaming needs.
    """

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def stream_zip(dicomdir: bytes, members: list[Member]) -> Iterator[bytes]:
    """The File-set as a ZIP, produced piece by piece (never whole in memory)."""
    pipe = _Pipe()
    with zipfile.ZipFile(
        pipe,  # type: ignore[arg-type]
        mode="w",
        compression=zipfile.ZIP_DEFLATED,
        compresslevel=1,
    ) as archive:
        archive.writestr("DICOMDIR", dicomdir)
        yield pipe.take()
        for member in members:
            info = zipfile.ZipInfo(member.file_id)
            info.compress_type = zipfile.ZIP_DEFLATED
            with (
                default_storage.open(member.storage_path, "rb") as source,
                archive.open(info, mode="w", force_zip64=True) as target,
            ):
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()
