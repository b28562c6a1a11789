import pytest
from django.db import connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.actions import do_create_user
from accounts.models import Role
from conftest import PASSWORD, TOTP_SECRET
from pacs.tests.test_listener import listener  # noqa: F401 - pacs's DICOM listener

ONBOARD_URL = "/tenants/tenant/onboard/"


@pytest.fixture
def platform_admin_client(db):  # type: ignore[no-untyped-def]
    connection.set_schema_to_public()
    user, _ = do_create_user("platform", Role.PLATFORM_ADMIN, PASSWORD, TOTP_SECRET)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = TOTPDevice.objects.get(user=user).persistent_id
    session.save()
    return client


def onboarding_data(**changes: object) -> dict[str, object]:
    """A complete onboarding form for St Luke; ``changes`` replace fields."""
    data: dict[str, object] = {
        "name": "St Luke",
        "schema_name": "stluke",
        "domains": "stluke.localhost\npacs.stluke.example",
        "ae_title": "STLUKE",
        "remote_aes": "CT_ROOM1 127.0.0.1 10401\nMR ROOM 2, 127.0.0.1, 10402",
        "ris_host": "127.0.0.1",
        "ris_port": "2575",
        "languages": ["en", "nl"],
        "default_language": "nl",
        "idle_timeout_minutes": "20",
        "retention_days": "3650",
        "admin_username": "it.stluke",
        "admin_email": "it@stluke.example",
    }
    data.update(changes)
    return data
