"""The helpdesk console in Debian's Chromium, against the real processes.

Platform helpdesk staff sign in on the bare host, find a user of the tenant
by part of their name, look at their sign-ins, and request an MFA reset; the
tenant's administrator approves it on the tenant host, and the user's
authenticator app is gone. No patient name of the tenant's studies shows.
Screenshots go to docs/screenshots/helpdesk-console.png and helpdesk-user.png.
"""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.stack import PASSWORD, TOTP_SECRET, Stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
HELPDESK = "platform.help"
ADMIN = "hospital.it"
LOST_PHONE = "mfa.lostphone"


def create_user(stack: Stack, tenant: str, username: str, role: str) -> None:
    stack.manage(
        "create_user", "--tenant", tenant, "--username", username,
        "--role", role, "--password", PASSWORD, "--totp-secret", TOTP_SECRET,
    )  # fmt: skip


def sign_in(page: Page, stack: Stack, base: str, username: str, then: str) -> None:
    page.goto(f"{base}/accounts/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", stack.fresh_otp())
    page.click("button[type=submit]")
    # The first sign-in of a fresh stack may wait for its processes to warm up.
    page.wait_for_url(f"{base}{then}", timeout=60_000)


@pytest.fixture
def people(stack: Stack) -> None:
    create_user(stack, "public", HELPDESK, "helpdesk")
    create_user(stack, stack.schema, ADMIN, "tenant_admin")
    create_user(stack, stack.schema, LOST_PHONE, "radiologist")


def test_helpdesk_finds_a_user_and_the_tenant_admin_approves_an_mfa_reset(
    browser: Browser, stack: Stack, people: None, ct_study: str
) -> None:
    bare = f"http://localhost:{stack.web_port}"
    # The user first fails to sign in: the helpdesk will see it.
    caller = browser.new_context().new_page()
    caller.goto(f"{stack.base_url}/accounts/login/")
    caller.fill("#id_username", LOST_PHONE)
    caller.fill("#id_password", "not-the-password")
    caller.click("button[type=submit]")
    expect(caller.locator(".error")).to_be_visible()
    caller.context.close()

    helpdesk = browser.new_context(viewport={"width": 1360, "height": 900}).new_page()
    sign_in(helpdesk, stack, bare, HELPDESK, "/helpdesk/")

    helpdesk.fill("#id_q", "LOSTPH")
    helpdesk.click("form.helpdesk-search button[type=submit]")
    found = helpdesk.locator("table.helpdesk-users tbody tr")
    expect(found).to_have_count(1)
    expect(found).to_contain_text(LOST_PHONE)
    expect(helpdesk.locator("table.helpdesk-tenants")).to_contain_text("E2E Hospital")
    expect(helpdesk.locator(".helpdesk-nav a", has_text="Audit trail")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    helpdesk.screenshot(path=str(SCREENSHOTS / "helpdesk-console.png"), full_page=True)

    found.locator("a").first.click()
    expect(helpdesk.locator("h1")).to_have_text(LOST_PHONE)
    failed = helpdesk.locator("table.helpdesk-failed-sign-ins tbody")
    expect(failed).to_contain_text("Sign-in failed")
    expect(failed).to_contain_text("reason=password")
    helpdesk.fill("#id_reason", "Lost phone; identity checked by call-back")
    helpdesk.click("form.helpdesk-reset button[type=submit]")
    expect(helpdesk.locator(".notice-success")).to_contain_text("MFA reset requested")
    helpdesk.screenshot(path=str(SCREENSHOTS / "helpdesk-user.png"), full_page=True)

    helpdesk.goto(f"{bare}/helpdesk/tenants/{stack.schema}/")
    expect(helpdesk.locator(".helpdesk-liveness")).to_contain_text("Answers")
    page_text = helpdesk.content()
    assert "Pancreas-CT" not in page_text and ct_study not in page_text

    admin = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    sign_in(admin, stack, stack.base_url, ADMIN, "/helpdesk/approvals/")
    pending = admin.locator("table.helpdesk-pending tbody tr")
    expect(pending).to_contain_text(LOST_PHONE)
    pending.locator("button", has_text="Approve").click()
    expect(admin.locator(".notice-success")).to_contain_text("removed")
    assert stack.sql(
        "SELECT count(*) FROM otp_totp_totpdevice d JOIN accounts_user u"
        " ON d.user_id = u.id WHERE u.username = %s",
        LOST_PHONE,
    ) == [(0,)]
