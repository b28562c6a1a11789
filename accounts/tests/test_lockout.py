"""Brute force against the sign-in page, as an attacker would try it."""

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django_tenants.utils import tenant_context

from accounts.forms import SIGN_IN_FAILED
from accounts.tests.helpers import WRONG_PASSWORD, errors, sign_in, wrong_totp
from audit.models import AuditEvent, EventType, Outcome
from conftest import PASSWORD, current_totp, make_user, tenant_client

pytestmark = pytest.mark.django_db

ATTACKER = {"REMOTE_ADDR": "192.0.2.66"}
COLLEAGUE = {"REMOTE_ADDR": "192.0.2.10"}


def hammer(client, username: str, **extra: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, username, WRONG_PASSWORD, wrong_totp(), **extra)


def test_it_locks_out_a_user_name_after_repeated_failures_even_with_the_right_password(
    tenant_a, radiologist
):
    client = tenant_client(tenant_a)
    hammer(client, "rad.a", **ATTACKER)

    response = sign_in(client, "rad.a", PASSWORD, current_totp(), **ATTACKER)

    assert response.status_code == 200
    assert errors(response) == [SIGN_IN_FAILED]
    assert client.get("/").status_code == 302
    lockout = AuditEvent.objects.get(event_type=EventType.ACCOUNT_LOCKED_OUT)
    assert (lockout.actor_username, lockout.outcome) == ("rad.a", Outcome.FAILURE)
    assert lockout.source_ip == ATTACKER["REMOTE_ADDR"]
    last = AuditEvent.objects.filter(event_type=EventType.LOGIN_FAILED).first()
    assert last.detail["reason"] == "locked"
    assert (
        AuditEvent.objects.filter(event_type=EventType.LOGIN_FAILED).count()
        == settings.AXES_FAILURE_LIMIT + 1
    )


def test_a_locked_out_unknown_user_reads_exactly_like_a_wrong_password(
    tenant_a, radiologist
):
    plain_failure = sign_in(tenant_client(tenant_a), "rad.a", WRONG_PASSWORD, "1")
    client = tenant_client(tenant_a)
    hammer(client, "nobody", **ATTACKER)

    locked_unknown = sign_in(client, "nobody", PASSWORD, current_totp(), **ATTACKER)

    assert locked_unknown.status_code == plain_failure.status_code == 200
    assert errors(locked_unknown) == errors(plain_failure) == [SIGN_IN_FAILED]
    assert AuditEvent.objects.get(
        event_type=EventType.ACCOUNT_LOCKED_OUT
    ).actor_username == ("nobody")


def test_wrong_one_time_passwords_count_towards_the_lockout(tenant_a, radiologist):
    client = tenant_client(tenant_a)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = sign_in(client, "rad.a", PASSWORD, wrong_totp(), **ATTACKER)
        assert errors(response) == [SIGN_IN_FAILED]

    failures = AuditEvent.objects.filter(event_type=EventType.LOGIN_FAILED)
    assert {event.detail["reason"] for event in failures} == {"otp"}
    assert failures.first().actor_id == radiologist.pk
    assert AuditEvent.objects.filter(event_type=EventType.ACCOUNT_LOCKED_OUT).exists()


def test_the_lockout_holds_one_address_not_the_colleague_at_another(
    tenant_a, radiologist
):
    hammer(tenant_client(tenant_a), "rad.a", **ATTACKER)

    colleague = tenant_client(tenant_a)
    response = sign_in(colleague, "rad.a", PASSWORD, current_totp(), **COLLEAGUE)

    assert response.status_code == 302
    assert colleague.get("/").status_code == 200


def test_a_lockout_at_one_hospital_is_not_one_at_another(
    tenant_a, tenant_b, radiologist
):
    make_user(tenant_b, "rad.a", "radiologist")  # the same name at hospital B
    hammer(tenant_client(tenant_a), "rad.a", **ATTACKER)

    at_b = tenant_client(tenant_b)
    response = sign_in(at_b, "rad.a", PASSWORD, current_totp(), **ATTACKER)

    assert response.status_code == 302
    with tenant_context(tenant_b):
        assert not AccessAttempt.objects.exists()


def test_the_attempts_table_keeps_no_password_and_no_one_time_password(
    tenant_a, radiologist
):
    otp = wrong_totp()
    sign_in(tenant_client(tenant_a), "rad.a", PASSWORD, otp, **ATTACKER)

    attempt = AccessAttempt.objects.get()
    assert otp not in attempt.post_data
    assert PASSWORD not in attempt.post_data
