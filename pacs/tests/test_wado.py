"""WADO-RS retrieve, metadata, frames, bulk data and thumbnails over HTTP.

Real files are ingested into hospital A; expected bytes and values are read
from the same files with pydicom.
"""

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from PIL import Image
from pydicom.encaps import get_frame
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from accounts.actions import do_issue_api_token
from accounts.models import User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA, make_user, tenant_client
from pacs import spool
from pacs.ingest import BULK_DATA_THRESHOLD, do_ingest_spooled_file
from tenants.models import Tenant

PYDICOM = SHARED_DATA / "pydicom"
# Copies of one MR slice share a SOP Instance UID; each gets its own below.
COPIES = Path(__file__).resolve().parents[2] / "var" / "test-wado-copies"


def distinct_copy(source: Path) -> Path:
    """The file with new SOP Instance and Series UIDs, written once as is."""
    target = COPIES / source.name
    if not target.exists():
        ds = pydicom.dcmread(source)
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[source.name, "sop"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[source.name, "series"])
        COPIES.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
    return target


CT_SLICES = sorted(CT_SERIES.glob("*.dcm"))[:3]
CT_SMALL = PYDICOM / "CT_small.dcm"
MR_IMPLICIT = PYDICOM / "MR_small_implicit.dcm"
MR_BIG_ENDIAN = distinct_copy(PYDICOM / "MR_small_bigendian.dcm")
MR_J2K = distinct_copy(PYDICOM / "MR_small_jp2klossless.dcm")
MR_JLS = distinct_copy(PYDICOM / "MR_small_jpeg_ls_lossless.dcm")
US_JPEG_CINE = PYDICOM / "examples_ybr_color.dcm"
PALETTE = PYDICOM / "examples_palette.dcm"
OVERLAY = PYDICOM / "examples_overlay.dcm"
ENHANCED_MR = SHARED_DATA / "pydicom-data" / "emri_small.dcm"
FILES = [
    *CT_SLICES,
    CT_SMALL,
    MR_IMPLICIT,
    MR_BIG_ENDIAN,
    MR_J2K,
    MR_JLS,
    US_JPEG_CINE,
    PALETTE,
    OVERLAY,
    ENHANCED_MR,
]
DICOM_ANY = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture
def archive(tenant_a: Tenant, storage_dirs: Path) -> None:
    with tenant_context(tenant_a):
        for path in FILES:
            spooled = spool.write_durably(tenant_a.schema_name, path.read_bytes())
            assert do_ingest_spooled_file(spooled) is not None


@pytest.fixture
def api(tenant_a: Tenant, radiologist: User, archive: None) -> Client:
    with tenant_context(tenant_a):
        token = do_issue_api_token(radiologist)
    return Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION=f"Bearer {token}")


def header(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def url(path: Path, suffix: str = "", level: str = "instance") -> str:
    ds = header(path)
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}"
    if level in ("series", "instance"):
        base += f"/series/{ds.SeriesInstanceUID}"
    if level == "instance":
        base += f"/instances/{ds.SOPInstanceUID}"
    return base + suffix


def parts(response: Any) -> list[tuple[str, bytes]]:
    """Split a multipart/related answer by hand: (part Content-Type, content)."""
    content_type = response["Content-Type"]
    assert content_type.startswith("multipart/related")
    boundary = re.search(r"boundary=([^;]+)", content_type).group(1).strip('"')
    body = b"".join(response.streaming_content)
    delimiter = b"\r\n--" + boundary.encode()
    assert body.startswith(b"--" + boundary.encode() + b"\r\n")
    assert body.endswith(delimiter + b"--\r\n")
    chunks = (b"\r\n" + body).split(delimiter)[1:-1]
    found = []
    for chunk in chunks:
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        headers = dict(
            line.decode().split(": ", 1) for line in head.split(b"\r\n") if line
        )
        found.append((headers["Content-Type"], content))
    return found


# --- Retrieve instances ------------------------------------------------------


def test_it_sends_an_instance_bit_for_bit_when_any_transfer_syntax_is_accepted(api):
    response = api.get(url(MR_J2K), HTTP_ACCEPT=DICOM_ANY)

    assert response.status_code == 200
    [(part_type, content)] = parts(response)
    assert content == MR_J2K.read_bytes()
    assert part_type == "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.90"


def test_it_sends_explicit_little_endian_as_stored_by_default(api):
    response = api.get(
        url(CT_SMALL), HTTP_ACCEPT='multipart/related; type="application/dicom"'
    )

    [(_, content)] = parts(response)
    assert content == CT_SMALL.read_bytes()


def test_it_sends_a_series_in_one_multipart_answer(api):
    response = api.get(url(CT_SLICES[0], level="series"), HTTP_ACCEPT=DICOM_ANY)

    assert response.status_code == 200
    assert response.streaming
    contents = sorted(content for _, content in parts(response))
    assert contents == sorted(path.read_bytes() for path in CT_SLICES)


def test_it_sends_a_study_with_every_instance(api):
    response = api.get(url(CT_SLICES[0], level="study"), HTTP_ACCEPT=DICOM_ANY)

    sent = {pydicom.dcmread(io.BytesIO(c)).SOPInstanceUID for _, c in parts(response)}
    assert sent == {header(path).SOPInstanceUID for path in CT_SLICES}


def test_it_transcodes_implicit_vr_when_explicit_little_endian_is_asked_for(api):
    accept = (
        'multipart/related; type="application/dicom"; '
        "transfer-syntax=1.2.840.10008.1.2.1"
    )
    response = api.get(url(MR_IMPLICIT), HTTP_ACCEPT=accept)

    [(part_type, content)] = parts(response)
    assert part_type.endswith("transfer-syntax=1.2.840.10008.1.2.1")
    sent, stored = pydicom.dcmread(io.BytesIO(content)), pydicom.dcmread(MR_IMPLICIT)
    assert sent.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not sent.is_implicit_VR
    assert sent.SOPInstanceUID == stored.SOPInstanceUID
    assert np.array_equal(sent.pixel_array, stored.pixel_array)


def test_it_decodes_jpeg_2000_when_explicit_little_endian_is_asked_for(api):
    response = api.get(
        url(MR_J2K), HTTP_ACCEPT='multipart/related; type="application/dicom"'
    )

    [(_, content)] = parts(response)
    sent = pydicom.dcmread(io.BytesIO(content))
    assert sent.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(sent.pixel_array, pydicom.dcmread(MR_J2K).pixel_array)


def test_it_answers_406_for_a_transfer_syntax_it_cannot_produce(api):
    accept = (
        'multipart/related; type="application/dicom"; '
        "transfer-syntax=1.2.840.10008.1.2.4.80"
    )

    assert api.get(url(MR_J2K), HTTP_ACCEPT=accept).status_code == 406
    assert (
        api.get(
            url(MR_BIG_ENDIAN),
            HTTP_ACCEPT='multipart/related; type="application/dicom"',
        ).status_code
        == 406
    )
    assert api.get(url(CT_SMALL), HTTP_ACCEPT="application/pdf").status_code == 406


def test_it_answers_404_to_unknown_objects_and_to_strangers(api, tenant_a, archive):
    assert api.get(url(CT_SMALL).replace(".1.", ".9.", 1)).status_code == 404
    referrer = make_user(tenant_a, "ref.wado", "referrer")
    # Past the re-authentication that a person's download needs first.
    outsider = mark_reauthenticated(tenant_client(tenant_a, referrer), tenant_a)
    assert outsider.get(url(CT_SMALL), HTTP_ACCEPT=DICOM_ANY).status_code == 404
    assert outsider.get(url(CT_SMALL, "/metadata")).status_code == 404
    assert Client(HTTP_HOST="a.localhost").get(url(CT_SMALL)).status_code == 401


def test_it_records_the_retrieve_and_forbids_caching(api, tenant_a):
    response = api.get(url(CT_SMALL), HTTP_ACCEPT=DICOM_ANY)

    assert "no-store" in response["Cache-Control"]
    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(event_type=EventType.DICOMWEB_RETRIEVE)
    assert event.study_instance_uid == header(CT_SMALL).StudyInstanceUID


# --- Metadata ----------------------------------------------------------------------


def expected_metadata(path: Path, instance_url: str) -> dict[str, Any]:
    ds = pydicom.dcmread(path)
    del ds.PixelData

    def bulk(element: pydicom.DataElement) -> str:
        return "BULK"

    expected = ds.to_json_dict(BULK_DATA_THRESHOLD, bulk)
    return expected


def test_it_answers_instance_metadata_equal_to_the_file_header(api):
    for path in (CT_SMALL, MR_J2K, ENHANCED_MR, PALETTE, OVERLAY):
        response = api.get(url(path, "/metadata"))

        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/dicom+json")
        [metadata] = response.json()
        instance_url = f"http://a.localhost{url(path)}"
        pixel = metadata.pop("7FE00010")
        assert pixel["BulkDataURI"] == f"{instance_url}/bulkdata/7FE00010"
        expected = expected_metadata(path, instance_url)
        assert _without_bulk_uris(metadata) == _without_bulk_uris(expected), path


def _without_bulk_uris(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: ("URI" if key == "BulkDataURI" else _without_bulk_uris(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_bulk_uris(item) for item in value]
    return value


def test_it_answers_series_and_study_metadata_for_every_instance(api):
    series = api.get(url(CT_SLICES[0], "/metadata", level="series")).json()
    study = api.get(url(CT_SLICES[0], "/metadata", level="study")).json()

    expected = {str(header(path).SOPInstanceUID) for path in CT_SLICES}
    assert {item["00080018"]["Value"][0] for item in series} == expected
    assert {item["00080018"]["Value"][0] for item in study} == expected


def test_its_bulk_data_uris_answer_the_values_of_the_file(api):
    [metadata] = api.get(url(OVERLAY, "/metadata")).json()
    ds = pydicom.dcmread(OVERLAY)
    uris = {
        tag: element["BulkDataURI"]
        for tag, element in metadata.items()
        if "BulkDataURI" in element and tag != "7FE00010"
    }
    assert "60003000" in uris, "the overlay plane is bulk data"

    for tag, uri in uris.items():
        response = api.get(uri.removeprefix("http://a.localhost"))

        assert response.status_code == 200, tag
        [(part_type, content)] = parts(response)
        assert part_type == "application/octet-stream"
        assert content == ds[int(tag, 16)].value


def test_it_answers_404_for_bulk_data_the_instance_does_not_hold(api):
    assert api.get(url(CT_SMALL, "/bulkdata/00091001")).status_code == 404
    assert api.get(url(CT_SMALL, "/bulkdata/00100010/0")).status_code == 404


# --- Frames ----------------------------------------------------------------------------


def native_frame(path: Path, number: int) -> bytes:
    ds = pydicom.dcmread(path)
    size = ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * ds.BitsAllocated // 8
    return ds.PixelData[(number - 1) * size : number * size]


def test_it_sends_native_frames_as_octet_stream_in_the_order_asked(api):
    response = api.get(
        url(ENHANCED_MR, "/frames/3,1,10"),
        HTTP_ACCEPT='multipart/related; type="application/octet-stream"',
    )

    assert response.status_code == 200
    sent = parts(response)
    assert [content for _, content in sent] == [
        native_frame(ENHANCED_MR, n) for n in (3, 1, 10)
    ]
    assert sent[0][0] == (
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    )


def test_it_sends_implicit_vr_pixels_as_they_are(api):
    response = api.get(url(CT_SLICES[0], "/frames/1"))

    [(_, content)] = parts(response)
    assert content == native_frame(CT_SLICES[0], 1)


def test_it_sends_encapsulated_frames_as_stored_with_their_media_type(api):
    ds = pydicom.dcmread(US_JPEG_CINE)
    response = api.get(
        url(US_JPEG_CINE, "/frames/2,30"),
        HTTP_ACCEPT='multipart/related; type="image/jpeg"',
    )

    assert response.status_code == 200
    sent = parts(response)
    assert [content for _, content in sent] == [
        get_frame(ds.PixelData, i, number_of_frames=30) for i in (1, 29)
    ]
    assert sent[0][0] == "image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"


def test_it_sends_jpeg_ls_and_jpeg_2000_frames_with_their_types(api):
    for path, media_type in ((MR_JLS, "image/jls"), (MR_J2K, "image/jp2")):
        accept = f'multipart/related; type="{media_type}"'
        [(part_type, content)] = parts(
            api.get(url(path, "/frames/1"), HTTP_ACCEPT=accept)
        )

        ds = pydicom.dcmread(path)
        assert part_type.startswith(media_type)
        assert content == get_frame(ds.PixelData, 0, number_of_frames=1)


def test_it_decodes_a_compressed_frame_when_octet_stream_is_asked_for(api):
    response = api.get(
        url(MR_JLS, "/frames/1"),
        HTTP_ACCEPT='multipart/related; type="application/octet-stream"',
    )

    [(_, content)] = parts(response)
    pixels = pydicom.dcmread(MR_JLS).pixel_array
    assert content == pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()


def test_it_refuses_frames_it_cannot_produce_and_frames_that_do_not_exist(api):
    jpeg_only = 'multipart/related; type="image/jpeg"'
    assert api.get(url(MR_JLS, "/frames/1"), HTTP_ACCEPT=jpeg_only).status_code == 406
    assert api.get(url(CT_SMALL, "/frames/2")).status_code == 404
    assert api.get(url(CT_SMALL, "/frames/0")).status_code == 400
    assert api.get(url(CT_SMALL, "/frames/1,x")).status_code == 400


# --- Thumbnails -----------------------------------------------------------------


def test_it_answers_png_thumbnails_for_instance_series_and_study(api):
    for level in ("instance", "series", "study"):
        response = api.get(url(CT_SLICES[0], "/thumbnail", level=level))

        assert response.status_code == 200, level
        assert response["Content-Type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert max(image.size) == 128


def test_it_fits_a_thumbnail_in_the_viewport(api):
    response = api.get(url(US_JPEG_CINE, "/thumbnail"), {"viewport": "64,64"})

    image = Image.open(io.BytesIO(response.content))
    ds = header(US_JPEG_CINE)
    assert image.size == (64, round(64 * ds.Rows / ds.Columns))


def test_it_sends_jpeg_only_when_asked_by_name(api):
    lossless = api.get(url(CT_SMALL, "/thumbnail"), HTTP_ACCEPT="image/*")
    lossy = api.get(
        url(CT_SMALL, "/thumbnail"), {"quality": "30"}, HTTP_ACCEPT="image/jpeg"
    )

    assert lossless["Content-Type"] == "image/png"
    assert lossy["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(lossy.content)).format == "JPEG"


def test_it_refuses_bad_thumbnail_parameters(api):
    thumbnail = url(CT_SMALL, "/thumbnail")
    assert api.get(thumbnail, {"viewport": "0,10"}).status_code == 400
    assert api.get(thumbnail, {"viewport": "abc"}).status_code == 400
    assert api.get(thumbnail, {"quality": "101"}).status_code == 400
    assert api.get(thumbnail, HTTP_ACCEPT="image/gif").status_code == 406
