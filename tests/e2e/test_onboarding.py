"""Hospital IT onboards a hospital in the platform admin and checks it.

The bare host (``localhost``) is the public schema. The platform admin
signs in there, fills in the onboarding form, notes the first
administrator's initial password, and runs the checklist against a real
dcmtk storescp, a closed port and the test RIS. Screenshot:
docs/screenshots/onboarding-checklist.png.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.support.ris import RisListener
from tests.support.stack import (
    PASSWORD,
    TOTP_SECRET,
    Stack,
    free_port,
    wait_for_port,
)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def platform_admin(stack: Stack) -> str:
    stack.manage(
        "create_user",
        "--tenant",
        "public",
        "--username",
        "platform.it",
        "--role",
        "platform_admin",
        "--password",
        PASSWORD,
        "--totp-secret",
        TOTP_SECRET,
    )
    return "platform.it"


@pytest.fixture
def storescp() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "--aetitle", "CT_ROOM1", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, seconds=10)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_hospital_it_onboards_a_hospital_and_runs_its_checklist(
    browser: Browser,
    stack: Stack,
    ris: RisListener,
    platform_admin: str,
    storescp: int,
) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    base = f"http://localhost:{stack.web_port}"

    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", platform_admin)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", stack.fresh_otp())
    # Enter in the last field: the page has another form (language) before it.
    page.press("#id_otp_token", "Enter")
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/tenants/tenant/")
    page.click("text=Onboard a hospital")

    closed = free_port()
    page.fill("#id_name", "St Luke Hospital")
    page.fill("#id_schema_name", "stluke")
    page.fill("#id_domains", "stluke.localhost")
    page.fill("#id_ae_title", "STLUKE")
    page.fill(
        "#id_remote_aes",
        f"CT_ROOM1 127.0.0.1 {storescp}\nOLD_PACS 127.0.0.1 {closed}",
    )
    page.fill("#id_ris_host", "127.0.0.1")
    page.fill("#id_ris_port", str(ris.port))
    page.select_option("#id_default_language", "en")
    page.fill("#id_admin_username", "it.stluke")
    page.fill("#id_admin_email", "it@stluke.example")
    # Creating the schema runs every tenant migration: seconds alone, much
    # longer on a machine busy with the rest of the suite.
    page.click("input[type=submit]", timeout=180_000)

    expect(page.locator("#initial-password")).to_be_visible(timeout=180_000)
    assert len(page.inner_text("#initial-password")) >= 12
    page.click("text=Open the onboarding checklist")
    page.click("input[type=submit]")

    rows = page.locator("table.checklist tbody tr")
    expect(rows.first).to_be_visible(timeout=30_000)
    echo_ok = page.locator("tr.check-c_echo.check-ok", has_text="CT_ROOM1")
    echo_failed = page.locator("tr.check-c_echo.check-failed", has_text="OLD_PACS")
    expect(echo_ok).to_be_visible()
    expect(echo_failed).to_contain_text("No DICOM association")
    expect(page.locator("tr.check-hl7.check-ok")).to_contain_text("acknowledged")
    expect(page.locator("tr.check-domain.check-ok")).to_contain_text("stluke.localhost")
    expect(page.locator("tr.check-first_admin.check-failed")).to_contain_text(
        "it.stluke"
    )
    page.screenshot(path=str(SCREENSHOTS / "onboarding-checklist.png"), full_page=True)

    assert stack.sql(
        "SELECT count(*) FROM public.audit_auditevent "
        "WHERE event_type = 506 AND object_id = 'stluke'"
    ) == [(6,)]
    context.close()
