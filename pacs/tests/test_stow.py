"""STOW-RS Store Instances over HTTP: what is stored, what is refused, and why."""

import secrets
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.actions import do_issue_api_token
from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from conftest import CT_SERIES, SHARED_DATA, make_user, tenant_client
from pacs.models import Instance
from tenants.models import Tenant

CT_SLICES = sorted(CT_SERIES.glob("*.dcm"))[:2]
CT_SMALL = SHARED_DATA / "pydicom" / "CT_small.dcm"
MR_J2K = SHARED_DATA / "pydicom" / "MR_small_jp2klossless.dcm"

REFERENCED = "00081199"
FAILED = "00081198"
RETRIEVE_URL = "00081190"
SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"


def multipart(*parts: tuple[str, bytes]) -> tuple[bytes, str]:
    boundary = secrets.token_hex(8)
    body = b"".join(
        b"--"
        + boundary.encode()
        + b"\r\nContent-Type: "
        + kind.encode()
        + b"\r\n\r\n"
        + content
        + b"\r\n"
        for kind, content in parts
    )
    body += b"--" + boundary.encode() + b"--\r\n"
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def dicom_parts(*paths: Path) -> list[tuple[str, bytes]]:
    return [("application/dicom", path.read_bytes()) for path in paths]


def store(
    client: Client, parts: list[tuple[str, bytes]], path: str = "/dicomweb/studies"
) -> Any:
    body, content_type = multipart(*parts)
    return client.post(path, body, content_type=content_type)


@pytest.fixture
def api(tenant_a: Tenant, radiologist: User, storage_dirs: Path) -> Client:
    with tenant_context(tenant_a):
        token = do_issue_api_token(radiologist)
    return Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION=f"Bearer {token}")


def stored_uids(tenant: Tenant) -> set[str]:
    with tenant_context(tenant):
        return set(Instance.objects.values_list("sop_instance_uid", flat=True))


def test_it_stores_every_instance_and_answers_200_with_retrieve_urls(api, tenant_a):
    response = store(api, dicom_parts(*CT_SLICES))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/dicom+json")
    body = response.json()
    expected = {str(pydicom.dcmread(p).SOPInstanceUID) for p in CT_SLICES}
    referenced = body[REFERENCED]["Value"]
    assert {item[SOP_INSTANCE]["Value"][0] for item in referenced} == expected
    assert FAILED not in body
    assert stored_uids(tenant_a) == expected
    retrieve = referenced[0][RETRIEVE_URL]["Value"][0]
    assert retrieve.startswith("http://a.localhost/dicomweb/studies/")


def test_the_stored_file_is_the_uploaded_file_bit_for_bit(api, tenant_a):
    store(api, dicom_parts(MR_J2K))

    with tenant_context(tenant_a):
        instance = Instance.objects.get()
        with default_storage.open(instance.storage_path, "rb") as handle:
            assert handle.read() == MR_J2K.read_bytes()
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.4.90"


def test_what_it_stores_can_be_retrieved_with_wado(api):
    response = store(api, dicom_parts(CT_SMALL))

    retrieve = response.json()[REFERENCED]["Value"][0][RETRIEVE_URL]["Value"][0]
    answer = api.get(
        retrieve.removeprefix("http://a.localhost"),
        HTTP_ACCEPT='multipart/related; type="application/dicom"; transfer-syntax=*',
    )
    assert CT_SMALL.read_bytes() in b"".join(answer.streaming_content)


def test_a_non_dicom_part_fails_alone_and_stores_nothing(api, tenant_a, storage_dirs):
    parts = [("application/dicom", b"this is not DICOM at all"), *dicom_parts(CT_SMALL)]

    response = store(api, parts)

    assert response.status_code == 202
    body = response.json()
    [failure] = body[FAILED]["Value"]
    assert failure[FAILURE_REASON]["Value"] == [0xC000]
    assert len(body[REFERENCED]["Value"]) == 1
    assert stored_uids(tenant_a) == {str(pydicom.dcmread(CT_SMALL).SOPInstanceUID)}
    assert not list((storage_dirs / "spool").rglob("*.dcm"))


def test_a_truncated_dicom_part_is_refused(api, tenant_a):
    data = CT_SMALL.read_bytes()

    response = store(api, [("application/dicom", data[: len(data) - 5000])])

    assert response.status_code == 409
    [failure] = response.json()[FAILED]["Value"]
    assert failure[FAILURE_REASON]["Value"] == [0xC000]
    assert stored_uids(tenant_a) == set()


def test_a_part_from_another_study_is_refused_when_the_path_names_a_study(
    api, tenant_a
):
    study = str(pydicom.dcmread(CT_SLICES[0]).StudyInstanceUID)

    response = store(
        api, dicom_parts(CT_SLICES[0], CT_SMALL), f"/dicomweb/studies/{study}"
    )

    assert response.status_code == 202
    body = response.json()
    [failure] = body[FAILED]["Value"]
    assert failure[SOP_INSTANCE]["Value"] == [
        str(pydicom.dcmread(CT_SMALL).SOPInstanceUID)
    ]
    assert failure[FAILURE_REASON]["Value"] == [0xC409]
    assert body[RETRIEVE_URL]["Value"] == [
        f"http://a.localhost/dicomweb/studies/{study}"
    ]
    assert stored_uids(tenant_a) == {str(pydicom.dcmread(CT_SLICES[0]).SOPInstanceUID)}


def test_it_answers_409_when_nothing_was_stored(api):
    response = store(api, [("text/plain", b"hello")])

    assert response.status_code == 409
    assert REFERENCED not in response.json()


def test_it_answers_415_for_a_body_that_is_not_multipart_dicom(api):
    single = api.post(
        "/dicomweb/studies", CT_SMALL.read_bytes(), content_type="application/dicom"
    )
    json_parts = api.post(
        "/dicomweb/studies",
        b"--b\r\n\r\n{}\r\n--b--\r\n",
        content_type='multipart/related; type="application/dicom+json"; boundary=b',
    )

    assert single.status_code == 415
    assert json_parts.status_code == 415


def test_it_answers_400_for_a_malformed_multipart_body(api, tenant_a):
    content_type = 'multipart/related; type="application/dicom"; boundary=abc'
    no_delimiter = api.post("/dicomweb/studies", b"garbage", content_type=content_type)
    no_boundary = api.post(
        "/dicomweb/studies", b"--abc--", content_type="multipart/related"
    )
    unclosed = api.post(
        "/dicomweb/studies",
        b"--abc\r\nContent-Type: application/dicom\r\n\r\n" + CT_SMALL.read_bytes(),
        content_type=content_type,
    )

    assert no_delimiter.status_code == 400
    assert no_boundary.status_code == 400
    assert unclosed.status_code == 400
    assert stored_uids(tenant_a) == set()


def test_storing_twice_keeps_one_instance(api, tenant_a):
    assert store(api, dicom_parts(CT_SMALL)).status_code == 200
    assert store(api, dicom_parts(CT_SMALL)).status_code == 200

    with tenant_context(tenant_a):
        assert Instance.objects.count() == 1


def test_only_radiologists_may_store(tenant_a, storage_dirs):
    admin = make_user(tenant_a, "it.a", Role.TENANT_ADMIN)
    with tenant_context(tenant_a):
        token = do_issue_api_token(admin)
    client = Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION=f"Bearer {token}")

    assert store(client, dicom_parts(CT_SMALL)).status_code == 403
    assert stored_uids(tenant_a) == set()


def test_it_needs_credentials(tenant_a, storage_dirs):
    assert (
        store(Client(HTTP_HOST="a.localhost"), dicom_parts(CT_SMALL)).status_code == 401
    )


def test_a_session_needs_a_csrf_token(tenant_a, radiologist, storage_dirs):
    client = tenant_client(tenant_a, radiologist)
    client.handler.enforce_csrf_checks = True

    assert store(client, dicom_parts(CT_SMALL)).status_code == 403


def test_it_records_the_store_in_the_audit_trail(api, tenant_a, radiologist):
    store(api, dicom_parts(CT_SMALL))

    with tenant_context(tenant_a):
        event = AuditEvent.objects.get(
            event_type=EventType.INSTANCE_STORED, object_type="stow-rs"
        )
    assert event.actor_username == radiologist.username
    assert event.detail["stored"] == 1


def test_searching_studies_still_works_on_the_same_path(api):
    store(api, dicom_parts(CT_SMALL))

    assert api.get("/dicomweb/studies").status_code == 200
