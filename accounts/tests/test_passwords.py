"""The password policy at creation and at change, and what a change ends."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent, EventType
from conftest import PASSWORD, tenant_client

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Quiet-lantern-orbit-58"
WEAK = {
    "too short": "Short-1a",
    "common": "password1234",
    "numeric": "123456789012",
    "like the user's name": "Abernathy-Whitfield1",
}


@pytest.mark.parametrize("weak", WEAK.values(), ids=WEAK.keys())
def test_the_password_page_refuses_a_weak_password(
    tenant_a, radiologist, client_a, weak
):
    radiologist.last_name = "Abernathy-Whitfield"
    radiologist.save()

    response = client_a.post(
        "/accounts/password/",
        {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["new_password2"]
    assert not AuditEvent.objects.filter(event_type=EventType.PASSWORD_CHANGED).exists()


def test_changing_the_password_ends_the_other_sessions_but_not_this_one(
    tenant_a, radiologist, client_a
):
    other_computer = tenant_client(tenant_a, radiologist)

    response = client_a.post(
        "/accounts/password/",
        {
            "old_password": PASSWORD,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 200
    assert client_a.get("/").status_code == 200
    assert other_computer.get("/").status_code == 302
    assert AuditEvent.objects.filter(event_type=EventType.PASSWORD_CHANGED).exists()


def test_the_password_page_wants_the_old_password(tenant_a, client_a):
    response = client_a.post(
        "/accounts/password/",
        {
            "old_password": "Not-the-password-42",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.context["form"].errors["old_password"]


def test_create_user_refuses_a_password_like_the_user_name(tenant_b):
    with pytest.raises(CommandError, match="similar"):
        call_command(
            "create_user",
            "--tenant",
            "hospital_b",
            "--username",
            "gwendolyn.abernathy",
            "--role",
            "radiologist",
            "--password",
            "Gwendolyn.Abernathy1",
            stdout=io.StringIO(),
        )
