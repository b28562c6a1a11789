"""Patient access links: made by a radiologist, opened with an e-mailed code.

The patient then reads their own signed reports (page and PDF), scrolls the
images and downloads them as a DICOM ZIP with a DICOMDIR. The attacks: a
guessed token, an expired link, wrong codes until the link locks, another
patient's study through the same session, a revoked link mid-session, and
the patient's session reaching for the worklist, the API or DICOMweb.
"""

import datetime
import io
import re
import time
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core import mail
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone
from pydicom.fileset import FileSet

from accounts.models import Role, User
from audit.models import AuditEvent, EventType, Outcome
from conftest import current_totp, make_user, tenant_client
from pacs.models import Instance, Patient, Study
from pacs.tests.test_patient_without_id import ingest_one_by_one, no_id_studies
from patients.models import PatientLink
from patients.selectors import SESSION_KEY, hash_link_token
from reporting.actions import (
    do_issue_preliminary_report,
    do_save_report_draft,
    do_sign_report,
)
from reporting.models import Report, ReportStatus
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

REPORT_TEXT = "Findings: small hepatic cyst.\n\nImpression: benign."
EMAIL = "patient@example.org"


@pytest.fixture
def signed(tenant_a: Tenant, radiologist: User, study: Study) -> Study:
    do_save_report_draft(radiologist, study, REPORT_TEXT)
    do_sign_report(radiologist, study, current_totp())
    return study


def signed_report(study: Study, radiologist: User, text: str) -> None:
    # As signing leaves it; signing again through the action needs a new TOTP step.
    Report.objects.create(
        study=study,
        status=ReportStatus.SIGNED,
        text=text,
        signed_by=radiologist,
        signed_at=timezone.now(),
    )


def links_url(study: Study) -> str:
    return f"/patient-access/studies/{study.study_instance_uid}/"


def make_link(client: Client, study: Study, days: int = 14) -> str:
    """Make a link through the radiologist's page; returns its path."""
    response = client.post(links_url(study), {"email": EMAIL, "days": days})
    assert response.status_code == 200
    match = re.search(r'value="http://[^/"]+(/p/[^"]+/)"', response.content.decode())
    assert match, "the new link is shown once"
    return match.group(1)


def mailed_code() -> str:
    match = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert match
    return match.group(1)


def open_with_code(tenant: Tenant, path: str) -> Client:
    """A patient's browser: opens the link, asks for a code, enters it."""
    patient = Client(HTTP_HOST=tenant.domains.first().domain)  # type: ignore[union-attr]
    assert patient.get(path).status_code == 200
    patient.post(path, {"action": "send"})
    response = patient.post(path, {"action": "verify", "code": mailed_code()})
    assert response.status_code == 302
    assert response["Location"] == "/patient/"
    return patient


def events(event_type: EventType) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_type=event_type).order_by("id"))


@pytest.fixture
def link_path(signed: Study, client_a: Client) -> str:
    return make_link(client_a, signed)


@pytest.fixture
def patient(tenant_a: Tenant, link_path: str) -> Client:
    return open_with_code(tenant_a, link_path)


# --- Making and revoking links ------------------------------------------------------


def test_it_stores_only_the_hash_of_the_token(signed: Study, client_a: Client) -> None:
    path = make_link(client_a, signed)
    token = path.split("/")[2]
    link = PatientLink.objects.get()
    assert link.token_hash == hash_link_token(token)
    assert token not in link.token_hash
    assert link.patient_id == signed.patient_id
    assert link.email == EMAIL
    created = events(EventType.PATIENT_LINK_CREATED)
    assert [e.actor_username for e in created] == ["rad.a"]
    assert created[0].study_instance_uid == signed.study_instance_uid


def test_it_uses_the_default_lifetime_and_refuses_more_than_the_maximum(
    signed: Study, client_a: Client, settings: object
) -> None:
    page = client_a.get(links_url(signed)).content.decode()
    assert 'name="days" value="14"' in page
    response = client_a.post(links_url(signed), {"email": EMAIL, "days": 400})
    assert "/p/" not in response.content.decode()
    assert not PatientLink.objects.exists()


def test_it_makes_no_link_before_the_report_is_signed(
    study: Study,
    radiologist: User,
    client_a: Client,
) -> None:
    do_save_report_draft(radiologist, study, REPORT_TEXT)
    do_issue_preliminary_report(radiologist, study)
    response = client_a.post(links_url(study), {"email": EMAIL, "days": 3})
    assert response.status_code == 200
    assert not PatientLink.objects.exists()


@pytest.mark.parametrize("role", [Role.TENANT_ADMIN, Role.REFERRER, Role.HELPDESK])
def test_only_radiologists_make_links(
    tenant_a: Tenant, signed: Study, role: Role
) -> None:
    other = tenant_client(tenant_a, make_user(tenant_a, f"{role}.x", role))
    assert other.get(links_url(signed)).status_code == 404
    assert other.post(links_url(signed), {"email": EMAIL, "days": 3}).status_code in (
        403,
        404,
    )
    assert not PatientLink.objects.exists()


def test_revoking_ends_an_open_session_at_once(
    signed: Study, client_a: Client, patient: Client
) -> None:
    link = PatientLink.objects.get()
    assert patient.get("/patient/").status_code == 200
    client_a.post(f"{links_url(signed)}links/{link.pk}/revoke/")
    assert patient.get("/patient/").status_code == 403
    assert len(events(EventType.PATIENT_LINK_REVOKED)) == 1
    refused = events(EventType.ACCESS_DENIED)[-1]
    assert refused.actor_username == f"patient-link:{link.pk}"


# --- The whole flow -----------------------------------------------------------------


def test_a_patient_reads_the_report_views_and_downloads_the_images(
    signed: Study, link_path: str, tenant_a: Tenant
) -> None:
    patient = open_with_code(tenant_a, link_path)
    assert mail.outbox[-1].to == [EMAIL]
    assert "Müller" not in mail.outbox[-1].body  # no patient data in the e-mail
    uid = signed.study_instance_uid

    home = patient.get("/patient/").content.decode()
    assert f"/patient/studies/{uid}/" in home

    page = patient.get(f"/patient/studies/{uid}/")
    assert "small hepatic cyst" in page.content.decode()
    assert "no-store" in page["Cache-Control"]

    pdf = patient.get(f"/patient/studies/{uid}/report.pdf")
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    assert patient.get(f"/patient/studies/{uid}/viewer/").status_code == 200
    instance = Instance.objects.select_related("series").get(series__study=signed)
    series_uid = instance.series.series_instance_uid
    frames = patient.get(f"/patient/studies/{uid}/series/{series_uid}/").json()
    assert len(frames["images"]) == 1
    png = patient.get(frames["images"][0] + "?wc=40&ww=400")
    assert png["Content-Type"] == "image/png"

    opened = events(EventType.PATIENT_LINK_OPENED)
    reads = events(EventType.REPORT_READ)
    assert len(opened) == 1 and len(events(EventType.PATIENT_CODE_SENT)) == 1
    assert [r.detail["via"] for r in reads] == ["patient_html", "patient_pdf"]
    assert {r.patient_id for r in reads} == {signed.patient.patient_id}
    assert len(events(EventType.FRAMES_VIEWED)) == 1


def test_the_download_is_a_dicomdir_and_the_files_as_stored(
    signed: Study, patient: Client, tmp_path: Path
) -> None:
    response = patient.get(f"/patient/studies/{signed.study_instance_uid}/images.zip")
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))

    assert archive.namelist()[0] == "DICOMDIR"
    archive.extractall(tmp_path)
    file_set = FileSet(pydicom.dcmread(tmp_path / "DICOMDIR"))
    instance = Instance.objects.get(series__study=signed)
    [listed] = list(file_set)
    assert listed.SOPInstanceUID == instance.sop_instance_uid
    with default_storage.open(instance.storage_path, "rb") as stored:
        assert Path(listed.path).read_bytes() == stored.read()

    [download] = events(EventType.PATIENT_IMAGES_DOWNLOADED)
    assert download.detail["files"] == 1
    assert download.actor_username.startswith("patient-link:")


def test_preliminary_and_draft_reports_of_the_same_patient_never_show(
    signed: Study, radiologist: User, patient: Client
) -> None:
    preliminary = Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.8.498.77", patient=signed.patient
    )
    do_save_report_draft(radiologist, preliminary, "Preliminary words")
    do_issue_preliminary_report(radiologist, preliminary)
    uid = preliminary.study_instance_uid

    assert uid not in patient.get("/patient/").content.decode()
    assert patient.get(f"/patient/studies/{uid}/").status_code == 404
    assert patient.get(f"/patient/studies/{uid}/report.pdf").status_code == 404


def test_another_signed_study_of_the_same_patient_row_stays_closed(
    signed: Study, radiologist: User, patient: Client
) -> None:
    # A patient ID is no identity across studies ("0", "UNKNOWN", empty):
    # the link opens the study it was made for, nothing else of the row.
    earlier = Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.8.498.78", patient=signed.patient
    )
    signed_report(earlier, radiologist, "Earlier findings")
    uid = earlier.study_instance_uid

    assert uid not in patient.get("/patient/").content.decode()
    for path in ("", "report.pdf", "viewer/", "images.zip"):
        assert patient.get(f"/patient/studies/{uid}/{path}").status_code == 404
    assert signed.study_instance_uid in patient.get("/patient/").content.decode()


# --- Attacks ------------------------------------------------------------------------


def test_a_guessed_token_reads_like_any_unusable_link(
    tenant_a: Tenant, link_path: str
) -> None:
    stranger = Client(HTTP_HOST="a.localhost")
    guessed = stranger.get("/p/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/")
    stranger.post("/p/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/", {"action": "send"})
    PatientLink.objects.update(expires_at=timezone.now() - datetime.timedelta(1))
    expired = stranger.get(link_path)

    assert guessed.status_code == expired.status_code == 404
    assert guessed.content == expired.content
    assert mail.outbox == []


def test_an_expired_link_sends_no_code_and_opens_nothing(
    tenant_a: Tenant, link_path: str
) -> None:
    PatientLink.objects.update(expires_at=timezone.now() - datetime.timedelta(1))
    browser = Client(HTTP_HOST="a.localhost")
    assert browser.post(link_path, {"action": "send"}).status_code == 404
    assert browser.post(link_path, {"code": "123456"}).status_code == 404
    assert mail.outbox == []
    assert SESSION_KEY not in browser.session


def test_wrong_codes_lock_the_link_even_for_the_right_code_after(
    tenant_a: Tenant, link_path: str, settings: object
) -> None:
    browser = Client(HTTP_HOST="a.localhost")
    browser.post(link_path, {"action": "send"})
    code = mailed_code()
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answers = [
        browser.post(link_path, {"action": "verify", "code": wrong}).status_code
        for _ in range(5)
    ]
    assert answers == [200, 200, 200, 200, 404]
    assert (
        browser.post(link_path, {"action": "verify", "code": code}).status_code == 404
    )
    assert browser.get("/patient/").status_code == 403

    failed = events(EventType.PATIENT_CODE_FAILED)
    assert [e.detail["attempts"] for e in failed] == [1, 2, 3, 4, 5]
    assert all(e.outcome == Outcome.FAILURE for e in failed)
    assert len(events(EventType.PATIENT_LINK_LOCKED)) == 1
    assert PatientLink.objects.get().locked_at is not None


def test_an_expired_code_is_refused(tenant_a: Tenant, link_path: str) -> None:
    browser = Client(HTTP_HOST="a.localhost")
    browser.post(link_path, {"action": "send"})
    PatientLink.objects.update(code_expires_at=timezone.now())
    response = browser.post(link_path, {"action": "verify", "code": mailed_code()})
    assert response.status_code == 200
    assert events(EventType.PATIENT_CODE_FAILED)[0].detail["expired"] is True


def test_a_second_code_within_a_minute_is_not_sent(
    tenant_a: Tenant, link_path: str
) -> None:
    browser = Client(HTTP_HOST="a.localhost")
    browser.post(link_path, {"action": "send"})
    browser.post(link_path, {"action": "send"})
    assert len(mail.outbox) == 1


def test_another_patients_study_through_the_same_session_is_404_and_audited(
    signed: Study,
    other_study: Study,
    radiologist: User,
    patient: Client,
) -> None:
    signed_report(other_study, radiologist, "Someone else's report")
    uid = other_study.study_instance_uid
    series = Instance.objects.filter(series__study=signed).first().series  # type: ignore[union-attr]

    for path in (
        f"/patient/studies/{uid}/",
        f"/patient/studies/{uid}/report.pdf",
        f"/patient/studies/{uid}/viewer/",
        f"/patient/studies/{uid}/images.zip",
        f"/patient/studies/{uid}/series/{series.series_instance_uid}/",
    ):
        assert patient.get(path).status_code == 404, path

    denied = events(EventType.ACCESS_DENIED)
    assert len(denied) == 5
    assert {e.study_instance_uid for e in denied} == {uid}
    assert {e.actor_username for e in denied} == {
        f"patient-link:{PatientLink.objects.get().pk}"
    }


def test_the_patient_session_reaches_nothing_but_the_patient_pages(
    signed: Study, patient: Client
) -> None:
    uid = signed.study_instance_uid
    assert patient.get("/").status_code == 302  # the worklist: sign in first
    assert patient.get(f"/viewer/studies/{uid}/").status_code == 302
    assert patient.get(f"/reports/studies/{uid}/").status_code == 302
    assert patient.get(f"/api/studies/{uid}/report").status_code in (401, 403)
    assert patient.get("/dicomweb/studies").status_code == 401


def test_the_patient_session_ends_on_its_own(signed: Study, patient: Client) -> None:
    session = patient.session
    session[SESSION_KEY] = {**session[SESSION_KEY], "until": time.time() - 1}
    session.save()
    assert patient.get("/patient/").status_code == 403


def test_signing_out_ends_the_patient_session(signed: Study, patient: Client) -> None:
    assert patient.post("/patient/sign-out/").status_code == 200
    assert patient.get("/patient/").status_code == 403


def test_a_staff_session_opening_a_link_is_signed_out_first(
    tenant_a: Tenant, link_path: str, client_a: Client
) -> None:
    client_a.post(link_path, {"action": "send"})
    client_a.post(link_path, {"action": "verify", "code": mailed_code()})
    assert client_a.get("/patient/").status_code == 200
    assert client_a.get("/").status_code == 302


def test_links_are_for_one_patient_even_with_a_shared_patient_id_elsewhere(
    tenant_a: Tenant, signed: Study, patient: Client
) -> None:
    namesake = Patient.objects.create(
        patient_id=signed.patient.patient_id, issuer_of_patient_id="OTHER"
    )
    theirs = Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.8.498.79", patient=namesake
    )
    assert (
        patient.get(f"/patient/studies/{theirs.study_instance_uid}/").status_code == 404
    )


def test_a_link_for_a_study_without_patient_id_opens_only_that_study(
    tenant_a: Tenant,
    radiologist: User,
    client_a: Client,
    storage_dirs: Path,
    tmp_path: Path,
) -> None:
    first, second = no_id_studies(tmp_path)
    ingest_one_by_one(first, second)
    theirs, other = (
        Study.objects.get(study_instance_uid=s.study_instance_uid)
        for s in (second, first)
    )
    signed_report(other, radiologist, "Findings of the first person")
    signed_report(theirs, radiologist, "Findings of the second person")

    patient = open_with_code(tenant_a, make_link(client_a, theirs))

    home = patient.get("/patient/").content.decode()
    assert theirs.study_instance_uid in home and "Secondperson" in home
    assert other.study_instance_uid not in home and "Firstperson" not in home
    page = patient.get(f"/patient/studies/{theirs.study_instance_uid}/")
    assert "Findings of the second person" in page.content.decode()
    response = patient.get(f"/patient/studies/{theirs.study_instance_uid}/images.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    archive.extractall(tmp_path / "zip")
    listed = [
        pydicom.dcmread(tmp_path / "zip" / name, stop_before_pixels=True)
        for name in archive.namelist()
        if name != "DICOMDIR"
    ]
    assert [str(ds.SOPInstanceUID) for ds in listed] == [second.sop_instance_uid]
    assert {str(ds.PatientName) for ds in listed} == {second.patient_name}
    for path in ("", "report.pdf", "viewer/", "images.zip"):
        url = f"/patient/studies/{other.study_instance_uid}/{path}"
        assert patient.get(url).status_code == 404
