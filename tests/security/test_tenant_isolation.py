"""Tenant isolation, attacked: hospital A's radiologist reaching for hospital B's data.

Both hospitals hold the same CT slice under different Study Instance UIDs, so
that a UID guessed, leaked or copied from a referral letter is the only way
across. Every attempt must answer 404 (or the DICOM equivalent: no match, no
sub-operation) and, over HTTP, leave an ACCESS_DENIED record in the trail of
the tenant that asked, none in the other's. HTTP goes through the whole
Django stack (tenant middleware included) with the test client; websockets
through the real ASGI application; DICOM over real associations to the
listener; the Celery task through a real worker on the real broker.
"""

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from asgiref.sync import async_to_sync
from celery.contrib.testing.worker import start_worker
from channels.testing import WebsocketCommunicator
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django_tenants.utils import schema_context
from pydicom.uid import generate_uid

from accounts.models import ApiToken, User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from config.asgi import application
from config.celery import app as celery_app
from conftest import CT_SERIES, tenant_client
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import Instance, Study
from pacs.tests.test_listener import dcmtk
from pacs.tests.test_retrieve import add_remote, committed, final_response
from reporting.tests.test_consumer import session_cookie
from tenants.models import Tenant
from tests.support.stack import wait_for
from viewer.cache import render_key
from viewer.frame_query import FrameQuery

pytestmark = pytest.mark.django_db
SLICE = sorted(CT_SERIES.glob("*.dcm"))[0]


def copy_as_new_study(folder: Path, name: str) -> tuple[Path, pydicom.Dataset]:
    ds = pydicom.dcmread(SLICE)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, ds


def ingest(schema: str, path: Path) -> Instance:
    with schema_context(schema):
        result = do_ingest_spooled_file(spool.write_durably(schema, path.read_bytes()))
        assert result is not None
        return Instance.objects.select_related("series__study").get(
            sop_instance_uid=pydicom.dcmread(path).SOPInstanceUID
        )


@pytest.fixture
def theirs(tenant_a: Tenant, storage_dirs: Path, tmp_path: Path) -> Instance:
    """Hospital B's instance (the one A's users must never reach)."""
    path, _ = copy_as_new_study(tmp_path, "theirs")
    instance = ingest("hospital_b", path)
    connection.set_tenant(tenant_a)
    return instance


@pytest.fixture
def ours(tenant_a: Tenant, storage_dirs: Path, tmp_path: Path) -> Instance:
    path, _ = copy_as_new_study(tmp_path, "ours")
    return ingest("hospital_a", path)


def denials(schema: str) -> list[AuditEvent]:
    with schema_context(schema):
        return list(AuditEvent.objects.filter(event_type=EventType.ACCESS_DENIED))


def urls_for(instance: Instance) -> list[str]:
    """Every per-object route of the viewer, report API and DICOMweb."""
    study = instance.series.study.study_instance_uid
    series = instance.series.series_instance_uid
    sop = instance.sop_instance_uid
    return [
        f"/viewer/studies/{study}/",
        f"/viewer/studies/{study}/series/{series}/",
        f"/viewer/studies/{study}/series/{series}/instances/{sop}/frames/1.png",
        f"/api/studies/{study}/report",
        f"/dicomweb/studies/{study}/metadata",
        f"/dicomweb/studies/{study}/series/{series}/metadata",
        f"/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered",
    ]


# --- HTTP: another tenant's ids on our host ------------------------------------


@pytest.mark.parametrize("route", range(7))
def test_their_object_on_our_host_is_404_and_audited_in_our_trail(
    tenant_a: Tenant, client_a: Client, theirs: Instance, route: int
) -> None:
    url = urls_for(theirs)[route]
    # Past the export gate (DICOMweb metadata), so that the look-up answers.
    client = mark_reauthenticated(client_a, tenant_a)

    response = client.get(url, HTTP_ACCEPT="*/*")

    assert response.status_code == 404, url
    [denial] = denials("hospital_a")
    assert denial.actor_username == "rad.a"
    assert denial.study_instance_uid == theirs.series.study.study_instance_uid
    assert denial.outcome == "failure"
    assert not denials("hospital_b")


def test_our_object_on_their_host_is_404_for_their_radiologist(
    ours: Instance, radiologist_b: User
) -> None:
    tenant_b = Tenant.objects.get(schema_name="hospital_b")
    client_b = mark_reauthenticated(tenant_client(tenant_b, radiologist_b), tenant_b)

    answers = [client_b.get(url).status_code for url in urls_for(ours)]

    assert answers == [404] * len(answers)
    assert len(denials("hospital_b")) == len(answers)
    assert {d.actor_username for d in denials("hospital_b")} == {"rad.b"}
    assert not denials("hospital_a")


def test_our_session_does_not_open_their_host(
    client_a: Client, theirs: Instance
) -> None:
    # The same browser cookie, sent to hospital B's host name.
    study = theirs.series.study.study_instance_uid
    cookie = client_a.cookies

    forged = Client(HTTP_HOST="b.localhost")
    forged.cookies = cookie
    page = forged.get(f"/viewer/studies/{study}/")
    api = forged.get(f"/api/studies/{study}/report")

    assert (page.status_code, api.status_code) == (404, 404)
    assert b"Study" not in api.content
    # In the trail of the host it was tried on; once for the one cookie.
    [refused] = denials("hospital_b")
    assert refused.object_type == "session" and refused.actor_username == ""
    assert refused.detail == {"reason": "session of another host", "answer": 404}
    assert refused.source_ip == "127.0.0.1"
    assert not denials("hospital_a")


def test_a_forged_host_header_selects_no_other_tenant(
    client_a: Client, theirs: Instance
) -> None:
    study = theirs.series.study.study_instance_uid

    unknown = client_a.get(f"/viewer/studies/{study}/", HTTP_HOST="evil.localhost")
    forwarded = client_a.get(
        f"/viewer/studies/{study}/", HTTP_X_FORWARDED_HOST="b.localhost"
    )

    assert unknown.status_code == 404
    assert forwarded.status_code == 404  # still hospital A: their UID is unknown
    assert len(denials("hospital_a")) == 1
    [refused] = denials("public")  # a cookie sent to a host no tenant has
    assert refused.detail == {
        "reason": "unknown host",
        "host": "evil.localhost",
        "answer": 404,
    }


# --- websockets ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _keep_the_test_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in reporting's consumer tests: channels' database calls share the
    # test transaction, so the rows made here are visible to the consumer.
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


def test_a_websocket_to_their_report_is_refused_and_audited(
    client_a: Client, radiologist: User, theirs: Instance
) -> None:
    study = theirs.series.study.study_instance_uid
    _token, bearer = ApiToken.issue(radiologist, label="isolation test")
    browser = [
        (b"host", b"a.localhost"),
        (b"origin", b"http://a.localhost"),
        (b"cookie", session_cookie(client_a).encode()),
    ]
    machine = [
        (b"host", b"a.localhost"),
        (b"authorization", f"Bearer {bearer}".encode()),
    ]

    async def attempt(kind: str, headers: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
        socket = WebsocketCommunicator(
            application, f"/ws/studies/{study}/{kind}/", headers=headers
        )
        connected, code = await socket.connect(timeout=10)
        await socket.disconnect()
        return connected, code

    async def both():  # type: ignore[no-untyped-def]
        return await attempt("report", browser), await attempt("dictation", machine)

    report, dictation = async_to_sync(both)()

    assert report == (False, 4404)
    assert dictation == (False, 4404)
    assert len(denials("hospital_a")) == 2
    assert not denials("hospital_b")


def test_our_session_on_their_websocket_is_refused_and_audited_in_their_trail(
    client_a: Client, theirs: Instance
) -> None:
    study = theirs.series.study.study_instance_uid
    headers = [
        (b"host", b"b.localhost"),
        (b"origin", b"http://b.localhost"),
        (b"cookie", session_cookie(client_a).encode()),
    ]

    async def attempt():  # type: ignore[no-untyped-def]
        socket = WebsocketCommunicator(
            application, f"/ws/studies/{study}/report/", headers=headers
        )
        connected, code = await socket.connect(timeout=10)
        await socket.disconnect()
        return connected, code

    assert async_to_sync(attempt)() == (False, 4403)
    [refused] = denials("hospital_b")
    assert refused.object_type == "session"
    assert refused.detail == {"reason": "session of another host", "via": "websocket"}
    assert not denials("hospital_a")


# --- cache keys and file storage --------------------------------------------------


def test_rendered_frame_cache_keys_differ_by_schema(
    tenant_a: Tenant, theirs: Instance
) -> None:
    key = render_key(
        theirs.series.series_instance_uid, theirs.sop_instance_uid, 0, FrameQuery()
    )
    with schema_context("hospital_b"):
        cache.set(key, b"hospital B's frame", 30)
        raw_b = cache.make_key(key)
    try:
        with schema_context("hospital_a"):
            raw_a = cache.make_key(key)
            seen_from_a = cache.get(key)
    finally:
        with schema_context("hospital_b"):
            cache.delete(key)

    assert raw_a != raw_b
    assert "hospital_a" in raw_a and "hospital_b" in raw_b
    assert seen_from_a is None


def test_the_same_instance_sent_to_both_is_stored_twice_under_each_schema(
    tenant_a: Tenant, storage_dirs: Path, tmp_path: Path
) -> None:
    path, _ = copy_as_new_study(tmp_path, "both")

    in_b = ingest("hospital_b", path)
    in_a = ingest("hospital_a", path)

    assert in_a.storage_path.startswith("hospital_a/")
    assert in_b.storage_path.startswith("hospital_b/")
    stored = storage_dirs / "storage"
    assert (stored / in_a.storage_path).read_bytes() == path.read_bytes()
    assert (stored / in_a.storage_path).stat().st_ino != (
        stored / in_b.storage_path
    ).stat().st_ino


# --- DICOM: through our AE for their study ------------------------------------------


@pytest.fixture
def archive_with_their_study(
    storage_dirs, django_db_blocker, tmp_path
) -> Iterator[tuple[int, str]]:  # type: ignore[no-untyped-def]
    from pacs.tests.test_dicom_hardening import running_listener

    path, ds = copy_as_new_study(tmp_path, "theirs")
    with running_listener(django_db_blocker) as port:
        committed(ingest, "hospital_b", path)
        committed(add_remote, "hospital_a", "READER_A", 104, may_retrieve=True)
        # findscu and movescu call with their default titles: known remote AEs
        # of both hospitals, so that only the tenant walls keep the study out.
        for schema in ("hospital_a", "hospital_b"):
            committed(add_remote, schema, "FINDSCU", 104)
            committed(add_remote, schema, "MOVESCU", 104)
        yield port, str(ds.StudyInstanceUID)


def test_c_find_through_our_ae_finds_none_of_their_studies(archive_with_their_study):
    port, study = archive_with_their_study

    ours = find(port, "NIMBUS_A", study)
    theirs = find(port, "NIMBUS_B", study)

    assert "StudyInstanceUID" not in ours
    assert study in theirs  # the query itself works where the study is


def find(port: int, called: str, study: str) -> str:
    result = dcmtk(
        "findscu", "-S", "-aec", called, "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(port),
    )  # fmt: skip
    return "\n".join(
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "(0020,000d)" in line
    )


def test_c_get_through_our_ae_retrieves_none_of_their_instances(
    archive_with_their_study, tmp_path
):
    port, study = archive_with_their_study
    folder = tmp_path / "got"
    folder.mkdir()

    result = dcmtk(
        "getscu", "-d", "-S", "-aet", "READER_A", "-aec", "NIMBUS_A",
        "-od", str(folder), "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study}", "127.0.0.1", str(port),
    )  # fmt: skip

    answer = final_response(result.stdout + result.stderr)
    assert answer["completed"] == 0
    assert not list(folder.iterdir())


def test_c_move_through_our_ae_moves_none_of_their_instances(archive_with_their_study):
    port, study = archive_with_their_study

    result = dcmtk(
        "movescu", "-d", "-S", "-aec", "NIMBUS_A", "-aem", "READER_A",
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
        "127.0.0.1", str(port),
    )  # fmt: skip

    assert final_response(result.stdout + result.stderr)["completed"] == 0


# --- Celery: a task runs in the schema it was queued from ------------------------------


QUEUE = "isolation-test"


def test_an_ingest_task_queued_for_their_schema_indexes_there_only(
    storage_dirs, django_db_blocker, tmp_path
):  # type: ignore[no-untyped-def]
    from pacs.tasks import ingest_spooled_files
    from pacs.tests.test_retrieve import wipe

    path, ds = copy_as_new_study(tmp_path, "queued")
    spooled = spool.write_durably("hospital_b", path.read_bytes())
    with django_db_blocker.unblock():
        try:
            with start_worker(
                celery_app,
                pool="solo",
                perform_ping_check=False,
                queues=[QUEUE],
                shutdown_timeout=30,
            ):
                ingest_spooled_files.apply_async(
                    args=[[spooled.name], "MODALITY"],
                    headers={"_schema_name": "hospital_b"},
                    queue=QUEUE,
                )
                wait_for(
                    lambda: committed(schemas_holding, str(ds.StudyInstanceUID)),
                    30,
                    "the queued ingest",
                )
            where = committed(schemas_holding, str(ds.StudyInstanceUID))
        finally:
            committed(wipe)

    assert where == ["hospital_b"]


def schemas_holding(study_uid: str) -> list[str]:
    holding = []
    for schema in ("hospital_a", "hospital_b"):
        with schema_context(schema):
            if Study.objects.filter(study_instance_uid=study_uid).exists():
                holding.append(schema)
    return holding
