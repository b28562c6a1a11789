import datetime

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from accounts.actions import do_issue_backup_codes
from accounts.models import Role, User
from audit.models import EventType
from conftest import PASSWORD, make_user, tenant_client
from helpdesk.actions import do_record_expired_resets
from helpdesk.models import MfaResetRequest, ResetState
from helpdesk.tests.conftest import APPROVALS, CONSOLE, Events
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def request_reset(client: Client, user: User, reason: str = "Lost phone; ID checked"):  # type: ignore[no-untyped-def]
    return client.post(
        f"{CONSOLE}tenants/hospital_a/users/{user.pk}/mfa-reset/", {"reason": reason}
    )


def the_reset(user: User) -> MfaResetRequest:
    with schema_context("hospital_a"):
        return MfaResetRequest.objects.get(user=user)


def factors_of(user: User) -> tuple[int, int]:
    with schema_context("hospital_a"):
        return (
            TOTPDevice.objects.filter(user=user).count(),
            StaticDevice.objects.filter(user=user).count(),
        )


def actions_in(events: Events, schema: str) -> list[str]:
    return [
        e.detail.get("action", "")
        for e in events(schema, EventType.USER_CHANGED)
        if "mfa" in e.detail.get("action", "")
    ]


@pytest.fixture
def ann_with_codes(ann_a: User) -> User:
    with schema_context("hospital_a"):
        do_issue_backup_codes(ann_a)
    return ann_a


def test_helpdesk_requests_a_reset_that_waits_for_the_tenant_admin(
    helpdesk_client: Client, ann_with_codes: User, events: Events
) -> None:
    response = request_reset(helpdesk_client, ann_with_codes)

    assert response.status_code == 302
    reset = the_reset(ann_with_codes)
    assert (reset.state, reset.requested_by_username) == ("pending", "help.desk")
    assert factors_of(ann_with_codes) == (1, 1)
    assert actions_in(events, "hospital_a") == ["mfa reset requested"]
    assert actions_in(events, "public") == ["mfa reset requested"]


def test_a_second_request_while_one_waits_is_refused_politely(
    helpdesk_client: Client, ann_a: User
) -> None:
    request_reset(helpdesk_client, ann_a)
    again = request_reset(helpdesk_client, ann_a)

    assert again.status_code == 302
    page = helpdesk_client.get(again["Location"])
    assert "This user has an MFA reset waiting for approval." in page.content.decode()
    with schema_context("hospital_a"):
        assert MfaResetRequest.objects.filter(user=ann_a).count() == 1


def test_a_request_needs_a_reason(helpdesk_client: Client, ann_a: User) -> None:
    response = request_reset(helpdesk_client, ann_a, reason="  ")

    page = helpdesk_client.get(response["Location"])
    assert "Say why, and how you checked who called." in page.content.decode()
    with schema_context("hospital_a"):
        assert not MfaResetRequest.objects.exists()


def test_the_tenant_admin_approves_and_the_user_enrols_again(
    helpdesk_client: Client,
    admin_client_a: Client,
    ann_with_codes: User,
    tenant_a_row: Tenant,
    events: Events,
) -> None:
    ann_session = tenant_client(tenant_a_row, ann_with_codes)
    assert ann_session.get("/").status_code == 200
    request_reset(helpdesk_client, ann_with_codes)
    reset = the_reset(ann_with_codes)

    listed = admin_client_a.get(APPROVALS)
    approved = admin_client_a.post(f"{APPROVALS}{reset.pk}/approve/")

    assert "Lost phone; ID checked" in listed.content.decode()
    assert approved.status_code == 302
    assert the_reset(ann_with_codes).state == ResetState.APPROVED
    assert factors_of(ann_with_codes) == (0, 0)
    # Her open session ends; her password alone now leads to enrolment only.
    assert ann_session.get("/").status_code == 302
    fresh = Client(HTTP_HOST="a.localhost")
    fresh.post("/accounts/login/", {"username": "asmith", "password": PASSWORD})
    assert fresh.get("/")["Location"] == "/accounts/enrol/"
    assert actions_in(events, "hospital_a") == [
        "mfa reset requested",
        "mfa reset approved",
    ]
    approval = events("hospital_a", EventType.USER_CHANGED)[-1]
    assert approval.actor_username == "admin.a"


def test_the_tenant_admin_refuses_and_nothing_changes(
    helpdesk_client: Client,
    admin_client_a: Client,
    ann_with_codes: User,
    events: Events,
) -> None:
    request_reset(helpdesk_client, ann_with_codes)
    reset = the_reset(ann_with_codes)

    admin_client_a.post(f"{APPROVALS}{reset.pk}/refuse/")
    late_approval = admin_client_a.post(f"{APPROVALS}{reset.pk}/approve/")

    assert the_reset(ann_with_codes).state == ResetState.REFUSED
    assert factors_of(ann_with_codes) == (1, 1)
    page = admin_client_a.get(late_approval["Location"])
    assert "This request was decided already or has expired." in page.content.decode()
    assert actions_in(events, "hospital_a") == [
        "mfa reset requested",
        "mfa reset refused",
    ]


def test_an_expired_request_cannot_be_approved(
    helpdesk_client: Client,
    admin_client_a: Client,
    ann_with_codes: User,
    events: Events,
) -> None:
    request_reset(helpdesk_client, ann_with_codes)
    reset = the_reset(ann_with_codes)
    with schema_context("hospital_a"):
        MfaResetRequest.objects.filter(pk=reset.pk).update(
            expires_at=timezone.now() - datetime.timedelta(minutes=1)
        )

    listed = admin_client_a.get(APPROVALS)
    admin_client_a.post(f"{APPROVALS}{reset.pk}/approve/")

    assert list(listed.context["pending"]) == []
    assert the_reset(ann_with_codes).state == ResetState.EXPIRED
    assert factors_of(ann_with_codes) == (1, 1)
    assert actions_in(events, "hospital_a")[-1] == "mfa reset expired"


def test_beat_records_each_lapsed_request_once(
    helpdesk_client: Client, ann_a: User, events: Events
) -> None:
    request_reset(helpdesk_client, ann_a)
    with schema_context("hospital_a"):
        MfaResetRequest.objects.update(
            expires_at=timezone.now() - datetime.timedelta(minutes=1)
        )
        assert do_record_expired_resets() == 1
        assert do_record_expired_resets() == 0

    assert actions_in(events, "hospital_a").count("mfa reset expired") == 1


def test_helpdesk_staff_cannot_approve_their_own_request(
    helpdesk_client: Client,
    ann_with_codes: User,
    tenant_a_row: Tenant,
    events: Events,
) -> None:
    # The same person, with a tenant administrator's account of the same name.
    same_person = make_user(tenant_a_row, "help.desk", Role.TENANT_ADMIN)
    request_reset(helpdesk_client, ann_with_codes)
    reset = the_reset(ann_with_codes)

    response = tenant_client(tenant_a_row, same_person).post(
        f"{APPROVALS}{reset.pk}/approve/"
    )

    assert response.status_code == 302
    assert the_reset(ann_with_codes).state == ResetState.PENDING
    assert factors_of(ann_with_codes) == (1, 1)
    denied = events("hospital_a", EventType.ACCESS_DENIED, object_type="mfa_reset")
    assert [e.detail["reason"] for e in denied] == ["own request"]


def test_an_admin_cannot_approve_a_reset_of_their_own_account(
    helpdesk_client: Client, admin_client_a: Client, admin_a: User, events: Events
) -> None:
    request_reset(helpdesk_client, admin_a)
    reset = the_reset(admin_a)

    admin_client_a.post(f"{APPROVALS}{reset.pk}/approve/")

    assert the_reset(admin_a).state == ResetState.PENDING
    denied = events("hospital_a", EventType.ACCESS_DENIED, object_type="mfa_reset")
    assert [e.detail["reason"] for e in denied] == ["own account"]


def test_only_tenant_admins_see_or_decide_resets(
    helpdesk_client: Client, ann_a: User, tenant_a_row: Tenant, radiologist: User
) -> None:
    request_reset(helpdesk_client, ann_a)
    reset = the_reset(ann_a)
    reader = tenant_client(tenant_a_row, radiologist)

    assert reader.get(APPROVALS).status_code == 403
    assert reader.post(f"{APPROVALS}{reset.pk}/approve/").status_code == 403
    # The bare host has no approvals page: the platform admin's catch-all
    # answers with its own sign-in.
    assert "/login/" in helpdesk_client.get(APPROVALS)["Location"]
    assert the_reset(ann_a).state == ResetState.PENDING


def test_another_tenants_admin_cannot_reach_the_request(
    helpdesk_client: Client, ann_with_codes: User, tenant_b: Tenant
) -> None:
    request_reset(helpdesk_client, ann_with_codes)
    reset = the_reset(ann_with_codes)
    admin_b = make_user(tenant_b, "admin.b", Role.TENANT_ADMIN)

    client_b = tenant_client(tenant_b, admin_b)
    listed = client_b.get(APPROVALS)
    client_b.post(f"{APPROVALS}{reset.pk}/approve/")

    assert list(listed.context["pending"]) == []
    assert the_reset(ann_with_codes).state == ResetState.PENDING
    assert factors_of(ann_with_codes) == (1, 1)
