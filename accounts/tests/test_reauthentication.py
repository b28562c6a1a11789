"""A person re-enters a one-time password before patient data leaves Nimbus."""

import time

import pytest
from django.test import Client

from accounts.models import ApiToken
from accounts.sessions import REAUTHENTICATED_AT
from accounts.tests.helpers import wrong_totp
from accounts.tests.test_sessions import age_session
from audit.models import AuditEvent, EventType, Outcome
from conftest import current_totp
from pacs.models import Patient, Study

pytestmark = pytest.mark.django_db

UID = "1.2.826.0.1.3680043.8.498.77"
FHIR = f"/api/studies/{UID}/report/fhir"


@pytest.fixture
def study(tenant_a) -> Study:  # type: ignore[no-untyped-def]
    patient = Patient.objects.create(patient_id="P-7", patient_name="Doe^John")
    return Study.objects.create(study_instance_uid=UID, patient=patient)


def reauthenticate(client: Client, otp: str, next_url: str = FHIR):  # type: ignore[no-untyped-def]
    return client.post(
        f"/accounts/reauthenticate/?next={next_url}",
        {"otp_token": otp, "next": next_url},
    )


def test_an_export_by_a_person_waits_for_a_fresh_one_time_password(
    tenant_a, client_a, study
):
    refused = client_a.get(FHIR)
    assert refused.status_code == 403
    assert refused.json()["reauthenticate"].startswith("/accounts/reauthenticate/")

    assert reauthenticate(client_a, wrong_totp()).status_code == 200
    assert client_a.get(FHIR).status_code == 403
    time.sleep(1.1)  # django-otp holds the device for a second after a failure

    response = reauthenticate(client_a, current_totp())
    assert response.status_code == 302 and response["Location"] == FHIR
    assert client_a.get(FHIR).status_code == 409  # past the gate: a draft-less study
    outcomes = AuditEvent.objects.filter(event_type=EventType.REAUTHENTICATED)
    assert sorted(outcomes.values_list("outcome", flat=True)) == [
        Outcome.FAILURE,
        Outcome.SUCCESS,
    ]


def test_a_reauthentication_lapses_after_the_configured_minutes(
    tenant_a, client_a, study, settings
):
    reauthenticate(client_a, current_totp())
    age_session(
        client_a, tenant_a, REAUTHENTICATED_AT, settings.NIMBUS_REAUTH_MINUTES * 60
    )

    assert client_a.get(FHIR).status_code == 403


def test_a_token_client_exports_without_a_second_factor(tenant_a, radiologist, study):
    _token, raw = ApiToken.issue(radiologist)
    client = Client(HTTP_HOST="a.localhost", HTTP_AUTHORIZATION=f"Bearer {raw}")

    assert client.get(FHIR).status_code == 409


def test_a_dicom_download_by_a_person_waits_for_reauthentication_too(
    tenant_a, radiologist, client_a, study
):
    _token, raw = ApiToken.issue(radiologist)

    assert client_a.get(f"/dicomweb/studies/{UID}").status_code == 403
    by_token = client_a.get(
        f"/dicomweb/studies/{UID}", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert by_token.status_code != 403


# Together these rebuild an instance: each is raw data leaving Nimbus.
RAW_DATA = (
    f"/dicomweb/studies/{UID}/metadata",
    f"/dicomweb/studies/{UID}/series/1.2.3/metadata",
    f"/dicomweb/studies/{UID}/series/1.2.3/instances/1.2.3.4/metadata",
    f"/dicomweb/studies/{UID}/series/1.2.3/instances/1.2.3.4/frames/1",
    f"/dicomweb/studies/{UID}/series/1.2.3/instances/1.2.3.4/bulkdata/7FE00010",
)


@pytest.mark.parametrize("path", RAW_DATA)
def test_dicomweb_metadata_frames_and_bulk_data_wait_for_reauthentication(
    tenant_a, radiologist, client_a, study, path
):
    _token, raw = ApiToken.issue(radiologist)

    refused = client_a.get(path)

    assert refused.status_code == 403
    assert b"/accounts/reauthenticate/" in refused.content
    [record] = AuditEvent.objects.filter(event_type=EventType.ACCESS_DENIED)
    assert record.outcome == Outcome.FAILURE
    assert record.actor_username == radiologist.username
    assert record.object_type == "export" and record.detail["path"] == path
    assert record.study_instance_uid == UID
    assert record.detail["reason"] == "one-time password not re-entered"
    # A machine with a token, and a person who just re-entered a code, pass.
    assert client_a.get(path, HTTP_AUTHORIZATION=f"Bearer {raw}").status_code != 403
    reauthenticate(client_a, current_totp())
    assert client_a.get(path).status_code != 403


def test_the_reauthentication_page_never_sends_a_user_off_site(tenant_a, client_a):
    response = reauthenticate(client_a, current_totp(), "https://evil.example/")

    assert response.status_code == 302 and response["Location"] == "/"
