import threading

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType, Outcome
from audit.testing import purge_audit_trail
from conftest import PASSWORD, TOTP_SECRET, current_totp, tenant_client
from pacs.models import ReadingStatus, Study
from reading.actions import ClaimRefused, do_claim_study
from reading.models import ReadingClaim, ReadingSettings, StudyReading
from reporting.actions import do_save_report_draft, do_sign_report

pytestmark = pytest.mark.django_db


def claim_url(study: Study) -> str:
    return f"/reading/studies/{study.study_instance_uid}/claim/"


def release_url(study: Study) -> str:
    return f"/reading/studies/{study.study_instance_uid}/release/"


def test_it_lets_a_radiologist_claim_a_study(client_a, radiologist, study):
    response = client_a.post(claim_url(study), {"next": "/"})

    assert response.status_code == 302
    assert response["Location"] == "/"
    reading = StudyReading.objects.get(study=study)
    assert reading.claimed_by == radiologist
    assert ReadingClaim.objects.get(study=study).radiologist == radiologist
    assert AuditEvent.objects.get(
        event_type=EventType.READING_CLAIMED, outcome=Outcome.SUCCESS
    ).actor_username == ("rad.a")


def test_it_shows_others_who_is_reading_and_refuses_their_claim(
    tenant_a, client_a, second_radiologist, study
):
    client_a.post(claim_url(study))
    other = tenant_client(tenant_a, second_radiologist)

    refused = other.post(claim_url(study), follow=True)
    page = other.get("/").content.decode()

    assert "rad.a is reading this study already." in refused.content.decode()
    assert "Being read by rad.a" in page
    assert StudyReading.objects.get(study=study).claimed_by.username == "rad.a"
    assert AuditEvent.objects.filter(
        event_type=EventType.READING_CLAIMED,
        outcome=Outcome.FAILURE,
        actor_username="rad2.a",
    ).exists()


def test_it_lets_the_reader_release_and_another_claim(
    tenant_a, client_a, second_radiologist, study
):
    client_a.post(claim_url(study))
    client_a.post(release_url(study))
    tenant_client(tenant_a, second_radiologist).post(claim_url(study))

    assert StudyReading.objects.get(study=study).claimed_by == second_radiologist
    ended = ReadingClaim.objects.get(study=study, radiologist__username="rad.a")
    assert ended.ending == ReadingClaim.Ending.RELEASED
    assert AuditEvent.objects.filter(event_type=EventType.READING_RELEASED).exists()


def test_it_lets_no_one_but_the_reader_release(
    tenant_a, client_a, second_radiologist, study
):
    client_a.post(claim_url(study))

    tenant_client(tenant_a, second_radiologist).post(release_url(study))

    assert StudyReading.objects.get(study=study).claimed_by.username == "rad.a"
    assert not AuditEvent.objects.filter(event_type=EventType.READING_RELEASED).exists()


def test_it_lets_hospital_it_take_a_claim_back(tenant_a, client_a, it_admin, study):
    client_a.post(claim_url(study))

    tenant_client(tenant_a, it_admin).post(release_url(study))

    assert StudyReading.objects.get(study=study).claimed_by is None
    event = AuditEvent.objects.get(event_type=EventType.READING_TAKEN_BACK)
    assert event.actor_username == "it.a"
    assert event.detail["held_by"] == "rad.a"


def test_it_refuses_to_claim_a_signed_study(radiologist, study):
    Study.objects.filter(pk=study.pk).update(reading_status=ReadingStatus.SIGNED)
    study.refresh_from_db()

    with pytest.raises(ClaimRefused):
        do_claim_study(None, radiologist, study)

    assert StudyReading.objects.get(study=study).claimed_by is None


# --- Two radiologists at once, each on a connection of their own -------------


def in_schema(work):  # type: ignore[no-untyped-def]
    """Run ``work`` in a thread with its own database connection; its result."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            with schema_context("hospital_a"):
                result["value"] = work()
        except Exception as error:  # noqa: BLE001 - handed to the test
            result["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


def committed_study_and_readers() -> tuple[int, list[int]]:
    from accounts.actions import do_create_user
    from pacs.models import Patient

    patient = Patient.objects.create(patient_id="RACE-1")
    study = Study.objects.create(study_instance_uid="1.2.3.4.99", patient=patient)
    readers = [
        do_create_user(name, Role.RADIOLOGIST, PASSWORD, TOTP_SECRET)[0].pk
        for name in ("race.1", "race.2")
    ]
    return study.pk, readers


def clean_up(study_pk: int) -> None:
    ReadingClaim.objects.filter(study_id=study_pk).delete()
    study = Study.objects.get(pk=study_pk)
    patient = study.patient
    study.delete()
    patient.delete()
    User.objects.filter(username__startswith="race.").delete()
    ReadingSettings.objects.all().delete()
    purge_audit_trail()


def test_it_lets_exactly_one_of_two_simultaneous_claims_win(tenant_a):
    study_pk, readers = in_schema(committed_study_and_readers)
    start = threading.Barrier(2)
    outcomes: dict[int, str] = {}

    def claim(user_pk: int) -> None:
        try:
            with schema_context("hospital_a"):
                user = User.objects.get(pk=user_pk)
                study = Study.objects.get(pk=study_pk)
                start.wait(10)
                do_claim_study(None, user, study)
                outcomes[user_pk] = "won"
        except ClaimRefused:
            outcomes[user_pk] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(pk,)) for pk in readers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        holder = in_schema(lambda: StudyReading.objects.get(pk=study_pk).claimed_by_id)
        claims = in_schema(
            lambda: ReadingClaim.objects.filter(study_id=study_pk).count()
        )
        assert sorted(outcomes.values()) == ["refused", "won"]
        assert outcomes[holder] == "won"
        assert claims == 1
    finally:
        in_schema(lambda: clean_up(study_pk))


def test_signing_the_report_ends_the_claim(tenant_a, client_a, radiologist, study):
    client_a.post(claim_url(study))
    do_save_report_draft(radiologist, study, "No acute findings.")

    do_sign_report(radiologist, study, current_totp())

    reading = StudyReading.objects.get(study=study)
    assert (reading.claimed_by, reading.claimed_at) == (None, None)
    [claim] = ReadingClaim.objects.filter(study=study)
    assert claim.ended_at is not None
    assert claim.ending == ReadingClaim.Ending.SIGNED
