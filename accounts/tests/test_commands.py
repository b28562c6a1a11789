import base64
import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import tenant_context

from accounts.authentication import user_for_bearer_token
from accounts.models import ApiToken, User
from conftest import TOTP_SECRET


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_create_user_prints_the_credentials_and_is_idempotent(tenant_b):
    first = run(
        "create_user",
        "--tenant",
        "hospital_b",
        "--username",
        "dr.x",
        "--role",
        "radiologist",
        "--totp-secret",
        TOTP_SECRET,
    )
    again = run(
        "create_user",
        "--tenant",
        "hospital_b",
        "--username",
        "dr.x",
        "--role",
        "radiologist",
        "--totp-secret",
        TOTP_SECRET,
    )

    assert "Created user dr.x" in first and "Updated user dr.x" in again
    assert f"TOTP secret: {TOTP_SECRET}" in first
    with tenant_context(tenant_b):
        user = User.objects.get(username="dr.x")
        assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1


@pytest.mark.django_db
def test_create_user_without_a_secret_prints_a_new_one_that_signs_in(tenant_b):
    # As README.md says: no QR enrolment for this user, the printed secret is it.
    output = run(
        "create_user", "--tenant", "hospital_b", "--username", "dr.y",
        "--role", "radiologist",
    )  # fmt: skip

    secret = output.split("TOTP secret: ", 1)[1].split()[0]
    with tenant_context(tenant_b):
        device = TOTPDevice.objects.get(user__username="dr.y")
        assert device.confirmed
        assert device.verify_token(f"{totp(base64.b32decode(secret)):06d}")


@pytest.mark.django_db
def test_create_user_refuses_a_weak_password_and_a_bad_secret(tenant_b):
    with pytest.raises(CommandError):
        run(
            "create_user",
            "--tenant",
            "hospital_b",
            "--username",
            "weak",
            "--role",
            "radiologist",
            "--password",
            "123",
        )
    with pytest.raises(CommandError, match="base32"):
        run(
            "create_user",
            "--tenant",
            "hospital_b",
            "--username",
            "weak",
            "--role",
            "radiologist",
            "--totp-secret",
            "not base32!",
        )


def robot_token() -> str:
    """A radiologist "robot" in hospital B, and the token create_api_token printed."""
    run(
        "create_user",
        "--tenant",
        "hospital_b",
        "--username",
        "robot",
        "--role",
        "radiologist",
    )
    output = run("create_api_token", "--tenant", "hospital_b", "--username", "robot")
    return output.splitlines()[-1]


@pytest.mark.django_db
def test_create_api_token_prints_a_working_token_alone_on_its_last_line(tenant_b):
    token = robot_token()

    with tenant_context(tenant_b):
        assert user_for_bearer_token(token).username == "robot"
        assert not ApiToken.objects.filter(
            key_hash=token
        ).exists()  # only the hash is kept


@pytest.mark.django_db
def test_a_token_of_one_tenant_means_nothing_in_another(tenant_a, tenant_b):
    token = robot_token()

    with tenant_context(tenant_a):
        assert user_for_bearer_token(token) is None


@pytest.mark.django_db
def test_a_token_notes_its_last_use_at_most_once_a_minute(tenant_b):
    token = robot_token()

    with tenant_context(tenant_b):
        user_for_bearer_token(token)
        first = ApiToken.objects.get().last_used_at
        user_for_bearer_token(token)
        assert ApiToken.objects.get().last_used_at == first
        ApiToken.objects.update(last_used_at=first - datetime.timedelta(minutes=2))
        user_for_bearer_token(token)
        assert ApiToken.objects.get().last_used_at > first
