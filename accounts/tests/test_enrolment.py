"""First sign-in without an authenticator app, and the backup codes."""

import re

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.actions import do_issue_backup_codes
from accounts.forms import SIGN_IN_FAILED
from accounts.models import Role, User
from accounts.tests.helpers import errors, sign_in
from audit.models import AuditEvent, EventType
from conftest import PASSWORD, tenant_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def newcomer(tenant_a) -> User:  # type: ignore[no-untyped-def]
    """A radiologist whom hospital IT created in the admin: no device yet."""
    return User.objects.create_user("new.rad", password=PASSWORD, role=Role.RADIOLOGIST)


def signed_in_newcomer(tenant):  # type: ignore[no-untyped-def]
    client = tenant_client(tenant)
    assert sign_in(client, "new.rad", PASSWORD, "").status_code == 302
    return client


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key):06d}"


def test_a_password_only_session_reaches_nothing_but_the_enrolment_page(
    tenant_a, newcomer
):
    client = signed_in_newcomer(tenant_a)

    for page in ("/", "/viewer/studies/1.2.3/", "/reports/studies/1.2.3/"):
        response = client.get(page)
        assert (
            response.status_code == 302 and response["Location"] == "/accounts/enrol/"
        )
    assert client.get("/api/studies/1.2.3/report").status_code == 401
    assert client.get("/dicomweb/studies").status_code == 401
    assert client.get("/accounts/enrol/").status_code == 200


def test_the_enrolment_page_draws_the_qr_code_as_svg_without_inline_script(
    tenant_a, newcomer
):
    response = signed_in_newcomer(tenant_a).get("/accounts/enrol/")
    html = response.content.decode()

    assert "<svg" in html and "otpauth" not in html.split("<svg")[1][:200]
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert " style=" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_wrong_first_code_does_not_enrol(tenant_a, newcomer):
    client = signed_in_newcomer(tenant_a)
    client.get("/accounts/enrol/")
    device = TOTPDevice.objects.get(user=newcomer)
    wrong = f"{(int(code_for(device)) + 1) % 1_000_000:06d}"

    response = client.post("/accounts/enrol/", {"otp_token": wrong})

    assert response.status_code == 200
    assert not TOTPDevice.objects.get(user=newcomer).confirmed
    assert client.get("/").status_code == 302


def test_enrolment_shows_ten_backup_codes_once_and_keeps_only_their_hashes(
    tenant_a, newcomer
):
    client = signed_in_newcomer(tenant_a)
    client.get("/accounts/enrol/")
    device = TOTPDevice.objects.get(user=newcomer)

    response = client.post("/accounts/enrol/", {"otp_token": code_for(device)})

    codes = response.context["codes"]
    assert len(codes) == 10 and all(code in response.content.decode() for code in codes)
    stored = set(StaticToken.objects.values_list("token", flat=True))
    assert len(stored) == 10 and not stored & {c.replace("-", "") for c in codes}
    assert not stored & set(codes)
    assert client.get("/").status_code == 200  # verified: the worklist opens
    assert client.get("/accounts/enrol/").status_code == 302  # never shown again
    assert AuditEvent.objects.filter(event_type=EventType.OTP_DEVICE_ENROLLED).exists()
    assert AuditEvent.objects.filter(event_type=EventType.BACKUP_CODES_ISSUED).exists()


def test_confirming_the_second_factor_gives_the_session_a_new_key(tenant_a, newcomer):
    # Whoever learnt the password-only session's key (fixation) must not
    # share the session once it has its second factor.
    client = signed_in_newcomer(tenant_a)
    client.get("/accounts/enrol/")
    before = client.cookies["sessionid"].value
    device = TOTPDevice.objects.get(user=newcomer)

    client.post("/accounts/enrol/", {"otp_token": code_for(device)})

    assert client.cookies["sessionid"].value not in ("", before)
    assert client.get("/").status_code == 200
    attacker = tenant_client(tenant_a)
    attacker.cookies["sessionid"] = before
    replay = attacker.get("/")
    assert replay.status_code == 302 and "/accounts/login/" in replay["Location"]
    [enrolled] = AuditEvent.objects.filter(event_type=EventType.OTP_DEVICE_ENROLLED)
    assert enrolled.actor_username == "new.rad" and enrolled.outcome == "success"


def test_a_backup_code_signs_in_once(tenant_a, radiologist):
    code = do_issue_backup_codes(radiologist)[0]

    first = tenant_client(tenant_a)
    assert sign_in(first, "rad.a", PASSWORD, code).status_code == 302
    assert first.get("/").status_code == 200

    again = sign_in(tenant_client(tenant_a), "rad.a", PASSWORD, code)
    assert errors(again) == [SIGN_IN_FAILED]
    assert StaticToken.objects.count() == 9


def test_a_user_with_an_app_cannot_leave_the_one_time_password_empty(
    tenant_a, radiologist
):
    client = tenant_client(tenant_a)

    response = sign_in(client, "rad.a", PASSWORD, "")

    assert errors(response) == [SIGN_IN_FAILED]
    assert client.get("/").status_code == 302
