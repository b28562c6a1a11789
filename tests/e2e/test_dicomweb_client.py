"""DICOMweb against the running stack, driven by the dicomweb-client package.

Every file is a copy of a real file with fresh UIDs, so that other end-to-end
tests storing the same originals cannot make these look stored already.
"""

import io
import secrets
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.encaps import get_frame
from pydicom.uid import generate_uid

from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"
CT_SMALL = DATA / "pydicom" / "CT_small.dcm"
MR_JLS = DATA / "pydicom" / "MR_small_jpeg_ls_lossless.dcm"
ENHANCED_MR = DATA / "pydicom-data" / "emri_small.dcm"


def fresh_copy(source: Path, target: Path, study_uid: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(source)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(target)
    return pydicom.dcmread(target)


@pytest.fixture(scope="module")
def client(stack: Stack) -> DICOMwebClient:
    return DICOMwebClient(
        url=f"http://127.0.0.1:{stack.web_port}/dicomweb",
        headers={"Authorization": f"Bearer {stack.token}"},
    )


@pytest.fixture(scope="module")
def stored(
    client: DICOMwebClient, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Path, pydicom.Dataset]]:
    folder = tmp_path_factory.mktemp("dicomweb")
    study_uid = generate_uid()
    files = {
        name: fresh_copy(source, folder / f"{name}.dcm", study_uid)
        for name, source in (("ct", CT_SMALL), ("jls", MR_JLS), ("emr", ENHANCED_MR))
    }
    response = client.store_instances(list(files.values()))

    referenced = response.ReferencedSOPSequence
    assert {item.ReferencedSOPInstanceUID for item in referenced} == {
        ds.SOPInstanceUID for ds in files.values()
    }
    assert "FailedSOPSequence" not in response
    return {name: (folder / f"{name}.dcm", ds) for name, ds in files.items()}


def uids(ds: pydicom.Dataset) -> tuple[str, str, str]:
    return ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


def test_it_retrieves_a_stored_instance_exactly_as_stored(client, stored):
    path, ds = stored["jls"]

    retrieved = client.retrieve_instance(
        *uids(ds), media_types=(("application/dicom", "*"),)
    )

    original = pydicom.dcmread(path)
    assert retrieved.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert retrieved == original
    assert retrieved.PixelData == original.PixelData


def test_it_retrieves_a_series(client, stored):
    _, ds = stored["ct"]

    [retrieved] = client.retrieve_series(ds.StudyInstanceUID, ds.SeriesInstanceUID)

    assert retrieved == ds
    assert retrieved.PixelData == ds.PixelData


def test_it_answers_instance_metadata_from_the_header(client, stored, stack):
    _, ds = stored["ct"]

    metadata = client.retrieve_instance_metadata(*uids(ds))

    header = pydicom.dcmread(stored["ct"][0], stop_before_pixels=True)
    for tag, element in header.to_json_dict(1024, lambda _e: "").items():
        if "BulkDataURI" not in element:
            assert metadata[tag] == element, tag
    assert metadata["7FE00010"]["BulkDataURI"].endswith("/bulkdata/7FE00010")


def test_it_retrieves_native_frames(client, stored):
    _, ds = stored["emr"]
    size = ds.Rows * ds.Columns * ds.BitsAllocated // 8

    frames = client.retrieve_instance_frames(*uids(ds), frame_numbers=[2, 5])

    assert frames == [ds.PixelData[size : 2 * size], ds.PixelData[4 * size : 5 * size]]


def test_it_retrieves_jpeg_ls_frames_as_stored(client, stored):
    _, ds = stored["jls"]

    [frame] = client.retrieve_instance_frames(
        *uids(ds), frame_numbers=[1], media_types=(("image/jls", "*"),)
    )

    assert frame == get_frame(ds.PixelData, 0, number_of_frames=1)


def test_it_finds_the_stored_instances_at_the_instance_level(client, stored):
    _, ds = stored["ct"]
    found = client.search_for_instances(
        study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
    )

    assert [item["00080018"]["Value"][0] for item in found] == [ds.SOPInstanceUID]


# --- Bad input ------------------------------------------------------------------


def post_parts(
    stack: Stack, parts: list[bytes], path: str = "/dicomweb/studies"
) -> requests.Response:
    boundary = secrets.token_hex(8)
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + part
        + b"\r\n"
        for part in parts
    )
    body += f"--{boundary}--\r\n".encode()
    return requests.post(
        f"http://127.0.0.1:{stack.web_port}{path}",
        data=body,
        headers={
            "Authorization": f"Bearer {stack.token}",
            "Content-Type": f'multipart/related; type="application/dicom"; '
            f"boundary={boundary}",
        },
        timeout=60,
    )


def failure_reasons(response: requests.Response) -> list[int]:
    failed = response.json().get("00081198", {}).get("Value", [])
    return [item["00081197"]["Value"][0] for item in failed]


def test_a_non_dicom_upload_is_refused_and_the_server_stays_up(client, stored, stack):
    response = post_parts(stack, [b"%PDF-1.4 not a DICOM file"])

    assert response.status_code == 409
    assert failure_reasons(response) == [0xC000]
    _, ds = stored["ct"]
    assert client.retrieve_instance_metadata(*uids(ds))["00080018"]["Value"] == [
        ds.SOPInstanceUID
    ]


def test_a_truncated_part_is_refused_and_nothing_is_stored(stack, tmp_path):
    ds = fresh_copy(CT_SMALL, tmp_path / "t.dcm", generate_uid())
    data = (tmp_path / "t.dcm").read_bytes()

    response = post_parts(stack, [data[: len(data) // 2]])

    assert response.status_code == 409
    assert failure_reasons(response) == [0xC000]
    count = stack.sql(
        "SELECT count(*) FROM pacs_instance WHERE sop_instance_uid = %s",
        ds.SOPInstanceUID,
    )
    assert count == [(0,)]


def test_a_part_of_another_study_is_refused_when_storing_to_a_study(stack, stored):
    _, ct = stored["ct"]
    buffer = io.BytesIO()
    foreign = pydicom.dcmread(CT_SMALL)
    foreign.StudyInstanceUID = generate_uid()
    foreign.SOPInstanceUID = generate_uid()
    foreign.file_meta.MediaStorageSOPInstanceUID = foreign.SOPInstanceUID
    foreign.save_as(buffer)

    response = post_parts(
        stack, [buffer.getvalue()], f"/dicomweb/studies/{ct.StudyInstanceUID}"
    )

    assert response.status_code == 409
    assert failure_reasons(response) == [0xC409]
