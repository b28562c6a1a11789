import os
import time

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import Role, User
from audit.actions import do_record_event
from audit.models import EventType, Outcome
from conftest import make_user, tenant_client
from helpdesk.tests.conftest import CONSOLE, Events
from pacs import spool
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def usernames(response) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(hit.schema, hit.username) for hit in response.context["hits"]]


def test_it_finds_users_of_every_tenant_by_part_of_a_name(
    helpdesk_client: Client, ann_a: User, annabel_b: User
) -> None:
    response = helpdesk_client.get(CONSOLE, {"q": "ANN"})

    assert response.status_code == 200
    assert usernames(response) == [("hospital_a", "asmith"), ("hospital_b", "ajones")]
    assert "no-store" in response["Cache-Control"]


def test_it_finds_a_user_by_user_name_e_mail_or_both_names(
    helpdesk_client: Client, ann_a: User, annabel_b: User
) -> None:
    by_username = helpdesk_client.get(CONSOLE, {"q": "jone"})
    by_email = helpdesk_client.get(CONSOLE, {"q": "@A.EXAMPLE"})
    by_names = helpdesk_client.get(CONSOLE, {"q": "smith ann"})

    assert usernames(by_username) == [("hospital_b", "ajones")]
    assert usernames(by_email) == [("hospital_a", "asmith")]
    assert usernames(by_names) == [("hospital_a", "asmith")]


def test_it_never_lists_patient_accounts(
    helpdesk_client: Client, tenant_a_row: Tenant
) -> None:
    make_user(tenant_a_row, "ann.patient", Role.PATIENT)

    response = helpdesk_client.get(CONSOLE, {"q": "ann"})

    assert usernames(response) == []


def test_it_asks_for_two_characters_at_least(helpdesk_client: Client) -> None:
    response = helpdesk_client.get(CONSOLE, {"q": "a"})

    assert response.context["hits"] is None
    assert "Type at least 2 characters." in response.content.decode()


def test_it_audits_the_search_in_the_public_trail(
    helpdesk_client: Client, ann_a: User, events: Events
) -> None:
    helpdesk_client.get(CONSOLE, {"q": "smith"})

    search = events("public", EventType.AUDIT_SEARCHED, object_type="user")
    assert [
        (e.actor_username, e.detail["query"], e.detail["results"]) for e in search
    ] == [("help.desk", "smith", 1)]


def test_it_refuses_a_platform_admin_with_403_and_audits_it(
    public: Tenant, events: Events
) -> None:
    admin = make_user(public, "platform.admin", Role.PLATFORM_ADMIN)

    response = tenant_client(public, admin).get(CONSOLE)

    assert response.status_code == 403
    denied = events("public", EventType.ACCESS_DENIED, actor_username="platform.admin")
    assert denied[0].detail == {"reason": "not helpdesk"}


def test_a_tenants_own_helpdesk_user_finds_no_console_on_the_tenant_host(
    tenant_a_row: Tenant,
) -> None:
    local_helpdesk = make_user(tenant_a_row, "help.a", Role.HELPDESK)

    response = tenant_client(tenant_a_row, local_helpdesk).get(CONSOLE)

    assert response.status_code == 404


def test_it_sends_a_stranger_to_sign_in(public: Tenant) -> None:
    response = Client(HTTP_HOST="localhost").get(CONSOLE)

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_it_answers_404_for_a_user_of_another_tenant_and_audits_it(
    helpdesk_client: Client, ann_a: User, annabel_b: User, events: Events
) -> None:
    # annabel_b's id does not exist in hospital_a unless ids happen to
    # coincide: ask for one that surely is not there.
    response = helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/users/999999/")
    unknown = helpdesk_client.get(f"{CONSOLE}tenants/nowhere/")

    assert response.status_code == 404
    assert unknown.status_code == 404
    assert [
        e.detail["reason"] for e in events("hospital_a", EventType.ACCESS_DENIED)
    ] == ["unknown user"]
    assert [e.detail["reason"] for e in events("public", EventType.ACCESS_DENIED)] == [
        "unknown user",
        "unknown tenant",
    ]


def test_it_shows_a_users_sign_ins_failures_and_lockouts(
    helpdesk_client: Client, ann_a: User, events: Events
) -> None:
    with schema_context("hospital_a"):
        do_record_event(EventType.LOGIN_SUCCEEDED, actor=ann_a)
        do_record_event(
            EventType.LOGIN_FAILED,
            actor_username="ASmith",
            outcome=Outcome.FAILURE,
            detail={"reason": "otp"},
        )
        do_record_event(
            EventType.ACCESS_DENIED,
            actor=ann_a,
            outcome=Outcome.FAILURE,
            object_type="path",
            object_id="/viewer/studies/1.2.826.0.1.3680043.8.498.77/",
            detail={"reason": "not yours"},
        )
        AccessAttempt.objects.create(
            username="asmith",
            ip_address="10.0.0.7",
            user_agent="test",
            http_accept="*/*",
            path_info="/accounts/login/",
            get_data="",
            post_data="",
            failures_since_start=5,
        )

    # Platform helpdesk staff of the same name act in this trail too.
    same_name = make_user(
        Tenant.objects.get(schema_name="public"), "asmith", Role.HELPDESK
    )
    tenant_client(Tenant.objects.get(schema_name="public"), same_name).get(
        f"{CONSOLE}tenants/hospital_a/users/999999/"
    )

    response = helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/users/{ann_a.pk}/")

    view = response.context["view"]
    assert [row.event_label for row in view.sign_ins] == ["Sign-in succeeded"]
    assert [row.detail for row in view.failed_sign_ins] == [[("reason", "otp")]]
    assert len(view.failed_actions) == 1
    denial = view.failed_actions[0]
    assert denial.object_ref.startswith("/viewer/studies/uid#")
    assert "1.2.826.0.1.3680043.8.498.77" not in response.content.decode()
    assert [(lock.failures, lock.locked) for lock in view.lockouts] == [(5, True)]
    assert view.has_authenticator is True
    # The look is audited on both sides, the tenant's naming the helpdesk.
    looked = events("hospital_a", EventType.AUDIT_SEARCHED, object_type="user")
    assert [(e.actor_username, e.actor_id, e.detail["via"]) for e in looked] == [
        ("help.desk", None, "platform helpdesk")
    ]
    assert events("public", EventType.AUDIT_SEARCHED, object_id=str(ann_a.pk))


def test_it_counts_stuck_and_quarantined_files_per_tenant(
    helpdesk_client: Client,
    storage_dirs: object,
    settings,
    events: Events,  # type: ignore[no-untyped-def]
) -> None:
    settings.NIMBUS_HELPDESK_STUCK_MINUTES = 5
    stuck = spool.write_durably("hospital_a", b"DICM" * 10)
    spool.write_durably("hospital_a", b"fresh")
    spool.write_durably("hospital_a", b"bad", quarantine=True)
    an_hour_ago = time.time() - 3600
    os.utime(stuck, (an_hour_ago, an_hour_ago))

    overview = helpdesk_client.get(CONSOLE)
    page = helpdesk_client.get(f"{CONSOLE}tenants/hospital_a/")

    rows = {row.tenant.schema_name: row for row in overview.context["summaries"]}
    assert (rows["hospital_a"].stuck_files, rows["hospital_a"].quarantined_files) == (
        1,
        1,
    )
    assert (rows["hospital_b"].stuck_files, rows["hospital_b"].quarantined_files) == (
        0,
        0,
    )
    ingest = page.context["state"].ingest
    assert (ingest.stuck_files, ingest.oldest_stuck_minutes) == (1, 60)
    assert events("hospital_a", EventType.AUDIT_SEARCHED, object_type="tenant")
