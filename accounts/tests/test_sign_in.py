import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent, EventType, Outcome
from conftest import PASSWORD, current_totp, tenant_client


def sign_in(client, username, password, otp):  # type: ignore[no-untyped-def]
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password, "otp_token": otp},
    )


@pytest.mark.django_db
def test_it_signs_in_with_password_and_totp(tenant_a, radiologist):
    client = tenant_client(tenant_a)
    response = sign_in(client, "rad.a", PASSWORD, current_totp())

    assert response.status_code == 302
    assert client.get("/").status_code == 200
    event = AuditEvent.objects.get(event_type=EventType.LOGIN_SUCCEEDED)
    assert event.actor_username == "rad.a"


@pytest.mark.django_db
def test_it_refuses_a_wrong_password_and_records_it(tenant_a, radiologist):
    client = tenant_client(tenant_a)
    response = sign_in(client, "rad.a", "not-the-password", current_totp())

    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert client.get("/").status_code == 302
    event = AuditEvent.objects.get(event_type=EventType.LOGIN_FAILED)
    assert (event.outcome, event.detail["reason"]) == (Outcome.FAILURE, "password")


@pytest.mark.django_db
def test_it_refuses_a_wrong_one_time_password_and_records_it(tenant_a, radiologist):
    client = tenant_client(tenant_a)
    wrong = f"{(int(current_totp()) + 1) % 1_000_000:06d}"
    response = sign_in(client, "rad.a", PASSWORD, wrong)

    assert response.status_code == 200
    assert client.get("/").status_code == 302
    event = AuditEvent.objects.get(event_type=EventType.LOGIN_FAILED)
    assert event.detail["reason"] == "otp" and event.actor_id == radiologist.pk


@pytest.mark.django_db
def test_it_gives_the_same_message_for_an_unknown_user(tenant_a, radiologist):
    unknown = sign_in(tenant_client(tenant_a), "nobody", PASSWORD, current_totp())
    wrong_password = sign_in(tenant_client(tenant_a), "rad.a", "nope", current_totp())

    assert "not correct" in unknown.content.decode()
    assert unknown.context["form"].non_field_errors() == (
        wrong_password.context["form"].non_field_errors()
    )


@pytest.mark.django_db
def test_it_does_not_let_a_user_of_one_tenant_sign_in_at_another(
    tenant_a, tenant_b, radiologist
):
    client = tenant_client(tenant_b)
    response = sign_in(client, "rad.a", PASSWORD, current_totp())

    assert response.status_code == 200
    assert client.get("/").status_code == 302
    with tenant_context(tenant_b):
        assert AuditEvent.objects.filter(event_type=EventType.LOGIN_FAILED).count() == 1


@pytest.mark.django_db
def test_it_treats_a_session_without_second_factor_as_signed_out(tenant_a, radiologist):
    client = tenant_client(tenant_a)
    client.force_login(radiologist)

    response = client.get("/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_it_does_not_confirm_the_password_while_the_otp_is_throttled(
    tenant_a, radiologist
):
    wrong = f"{(int(current_totp()) + 1) % 1_000_000:06d}"
    sign_in(tenant_client(tenant_a), "rad.a", PASSWORD, wrong)  # throttles the device

    right_password = sign_in(tenant_client(tenant_a), "rad.a", PASSWORD, wrong)
    wrong_password = sign_in(tenant_client(tenant_a), "rad.a", "nope", wrong)

    assert right_password.context["form"].non_field_errors() == (
        wrong_password.context["form"].non_field_errors()
    )
