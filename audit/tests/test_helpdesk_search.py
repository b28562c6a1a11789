import csv
import io

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.models import Role, User
from accounts.testing import mark_reauthenticated
from audit.actions import do_record_event
from audit.models import AuditEvent, EventType, Outcome
from conftest import PASSWORD, current_totp, make_user, tenant_client
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

URL = "/helpdesk/audit/"
PATIENT_ID = "PAT-HELP-1"


@pytest.fixture
def public() -> Tenant:
    return Tenant.objects.get(schema_name="public")


@pytest.fixture
def helpdesk(public: Tenant) -> User:
    return make_user(public, "help.desk", Role.HELPDESK)


@pytest.fixture
def helpdesk_client(public: Tenant, helpdesk: User) -> Client:
    # Re-authenticated: the CSV export waits for a fresh one-time password.
    return mark_reauthenticated(tenant_client(public, helpdesk), public)


def record_in(schema: str, event_type: EventType, **fields: object) -> AuditEvent:
    with schema_context(schema):
        return do_record_event(event_type, **fields)  # type: ignore[arg-type]


def events_in(schema: str, event_type: EventType) -> list[AuditEvent]:
    with schema_context(schema):
        return list(AuditEvent.objects.filter(event_type=event_type))


def rows_of(response) -> list[list[str]]:  # type: ignore[no-untyped-def]
    content = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(content)))


def test_it_finds_a_patients_events_in_every_tenant_newest_first(
    helpdesk_client: Client,
) -> None:
    record_in(
        "hospital_a",
        EventType.STUDY_OPENED,
        actor_username="rad.a",
        patient_id=PATIENT_ID,
    )
    record_in(
        "hospital_b",
        EventType.REPORT_READ,
        actor_username="rad.b",
        patient_id=PATIENT_ID,
    )
    record_in(
        "hospital_b", EventType.REPORT_READ, actor_username="rad.b", patient_id="OTHER"
    )

    response = helpdesk_client.get(URL, {"patient_id": PATIENT_ID})

    assert response.status_code == 200
    rows = response.context["rows"]
    # The search itself, recorded first, names the patient too.
    assert [(row.schema, row.actor_username) for row in rows] == [
        ("public", "help.desk"),
        ("hospital_b", "rad.b"),
        ("hospital_a", "rad.a"),
    ]
    assert response["Cache-Control"].count("no-store") == 1


def test_it_audits_every_search_by_the_helpdesk(helpdesk_client: Client) -> None:
    helpdesk_client.get(URL, {"patient_id": PATIENT_ID, "event_type": "2xx"})

    searches = events_in("public", EventType.AUDIT_SEARCHED)
    assert [(e.actor_username, e.patient_id) for e in searches] == [
        ("help.desk", PATIENT_ID)
    ]
    assert searches[0].detail["event_types"] == "200-299"


def test_it_filters_by_event_range_outcome_and_user(helpdesk_client: Client) -> None:
    record_in(
        "hospital_a",
        EventType.LOGIN_FAILED,
        actor_username="Rad.A",
        outcome=Outcome.FAILURE,
    )
    record_in("hospital_a", EventType.LOGIN_SUCCEEDED, actor_username="rad.a")
    record_in("hospital_a", EventType.STUDY_OPENED, actor_username="rad.a")

    response = helpdesk_client.get(
        URL, {"event_type": "1xx", "outcome": "failure", "username": "rad.a"}
    )

    assert [row.event_type for row in response.context["rows"]] == [101]


def test_it_filters_by_study_and_time(helpdesk_client: Client) -> None:
    event = record_in(
        "hospital_a", EventType.FRAMES_VIEWED, study_instance_uid="1.2.3.4"
    )

    search = {"study_instance_uid": "1.2.3.4", "event_type": "202"}
    found = helpdesk_client.get(URL, {**search, "since": "2000-01-01T00:00"})
    too_late = helpdesk_client.get(URL, {**search, "until": "2000-01-01T00:00"})

    assert [row.id for row in found.context["rows"]] == [event.pk]
    assert too_late.context["rows"] == []


def test_it_never_shows_report_text_kept_in_a_records_detail(
    helpdesk_client: Client,
) -> None:
    record_in(
        "hospital_a",
        EventType.REPORT_EDITED,
        patient_id=PATIENT_ID,
        detail={"text": "Spiculated mass in the left upper lobe", "count": 3},
    )

    page = helpdesk_client.get(URL, {"patient_id": PATIENT_ID})
    export = helpdesk_client.get(URL + "export.csv", {"patient_id": PATIENT_ID})

    assert "Spiculated" not in page.content.decode()
    assert "count=3" in page.content.decode()
    assert "Spiculated" not in str(rows_of(export))


def test_it_pages_newest_first(helpdesk_client: Client) -> None:
    for number in range(55):
        record_in(
            "hospital_a",
            EventType.STUDY_OPENED,
            object_id=str(number),
            patient_id=PATIENT_ID,
        )

    search = {"patient_id": PATIENT_ID, "event_type": "201"}
    first = helpdesk_client.get(URL, search)
    second = helpdesk_client.get(URL, {**search, "page": 2})

    assert len(first.context["rows"]) == 50 and first.context["has_next"]
    assert first.context["rows"][0].object_id == "54"
    assert [row.object_id for row in second.context["rows"]] == [
        "4",
        "3",
        "2",
        "1",
        "0",
    ]
    assert not second.context["has_next"]


def test_it_exports_the_search_as_csv_up_to_the_row_cap_and_audits_it(
    helpdesk_client: Client, settings
) -> None:
    settings.NIMBUS_AUDIT_CSV_MAX_ROWS = 3
    for number in range(5):
        record_in(
            "hospital_b",
            EventType.REPORT_READ,
            object_id=str(number),
            patient_id=PATIENT_ID,
        )

    response = helpdesk_client.get(
        URL + "export.csv", {"patient_id": PATIENT_ID, "event_type": "2xx"}
    )

    header, *rows = rows_of(response)
    assert response["Content-Type"] == "text/csv"
    assert header[:3] == ["tenant", "id", "occurred_at"]
    assert [row[9] for row in rows] == ["4", "3", "2"]
    exported = events_in("public", EventType.AUDIT_EXPORTED)
    assert exported[0].detail["limit"] == 3


def test_it_exports_only_after_a_fresh_one_time_password_and_audits_a_refusal(
    public: Tenant, helpdesk: User
) -> None:
    record_in("hospital_a", EventType.STUDY_OPENED, patient_id=PATIENT_ID)
    client = tenant_client(public, helpdesk)

    refused = client.get(URL + "export.csv", {"patient_id": PATIENT_ID})
    followed = client.get(URL + "export.csv", HTTP_SEC_FETCH_MODE="navigate")

    assert refused.status_code == 403
    assert refused["Content-Type"].startswith("text/plain")  # no rows
    assert followed.status_code == 302
    assert followed["Location"].startswith("/accounts/reauthenticate/?next=")
    denied = events_in("public", EventType.ACCESS_DENIED)
    assert [(e.actor_username, e.object_type, e.detail["reason"]) for e in denied] == [
        ("help.desk", "export", "one-time password not re-entered")
    ] * 2
    assert {(e.detail["path"], e.patient_id) for e in denied} == {
        (URL + "export.csv", "")
    }
    assert events_in("public", EventType.AUDIT_EXPORTED) == []
    mark_reauthenticated(client, public)
    assert PATIENT_ID in str(
        rows_of(client.get(URL + "export.csv", {"patient_id": PATIENT_ID}))
    )


def test_it_defuses_a_formula_in_an_exported_cell(helpdesk_client: Client) -> None:
    record_in("hospital_a", EventType.LOGIN_FAILED, actor_username="=HYPERLINK(1)")

    rows = rows_of(helpdesk_client.get(URL + "export.csv", {"event_type": "101"}))

    assert rows[1][6] == "'=HYPERLINK(1)"


def test_it_refuses_a_radiologist_and_audits_the_attempt(
    tenant_a: Tenant, client_a: Client
) -> None:
    page = client_a.get(URL)
    export = client_a.get(URL + "export.csv")

    assert (page.status_code, export.status_code) == (403, 403)
    denied = events_in("hospital_a", EventType.ACCESS_DENIED)
    assert [(e.actor_username, e.object_type) for e in denied] == [
        ("rad.a", "audit_trail"),
        ("rad.a", "audit_trail"),
    ]
    assert events_in("hospital_a", EventType.AUDIT_SEARCHED) == []


def test_it_refuses_a_platform_admin(public: Tenant) -> None:
    admin = make_user(public, "platform.admin", Role.PLATFORM_ADMIN)

    response = tenant_client(public, admin).get(URL)

    assert response.status_code == 403


def test_it_sends_a_visitor_to_sign_in(public: Tenant) -> None:
    response = tenant_client(public).get(URL)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_platform_helpdesk_staff_sign_in_on_the_bare_host_and_search(
    public: Tenant, helpdesk: User
) -> None:
    # Helpdesk users are not admin staff: the admin's own sign-in refuses them.
    client = Client(HTTP_HOST=public.domains.first().domain)  # type: ignore[union-attr]
    with schema_context("public"):
        TOTPDevice.objects.filter(user=helpdesk).update(last_t=-1)

    response = client.post(
        "/accounts/login/",
        {"username": "help.desk", "password": PASSWORD, "otp_token": current_totp()},
    )

    assert response.status_code == 302
    assert client.get(URL).status_code == 200


def test_a_tenants_own_helpdesk_reads_only_that_tenants_trail(
    tenant_a: Tenant,
) -> None:
    user = make_user(tenant_a, "help.a", Role.HELPDESK)
    record_in("hospital_a", EventType.REPORT_READ, patient_id=PATIENT_ID)
    record_in("hospital_b", EventType.REPORT_READ, patient_id=PATIENT_ID)

    client = tenant_client(tenant_a, user)

    other = client.get(URL, {"patient_id": PATIENT_ID, "tenant": "hospital_b"})
    own = client.get(URL, {"patient_id": PATIENT_ID})

    assert "tenant" in other.context["form"].errors  # not one of its choices
    assert other.context["rows"] == []
    assert {row.schema for row in own.context["rows"]} == {"hospital_a"}
