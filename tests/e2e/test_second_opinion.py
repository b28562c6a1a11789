"""A second opinion across two tenants in Debian's Chromium, against the real processes.

A radiologist of the stack's tenant asks a reading group of a second tenant
for a second opinion from the viewer, with a note. A member of that group
signs in on their own tenant's host, finds the study on their worklist,
reads it in the viewer and answers in the thread; the first radiologist
sees the answer on their worklist and in the thread. Screenshots go to
docs/screenshots/second-opinion-request.png and second-opinion-answer.png.
"""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import store_small_ct_study, wait_in_page
from tests.support.stack import PASSWORD, TOTP_SECRET, Stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SLICES = 4
SCHEMA_B = "e2e_second"
HOST_B = "second.localhost"
READER_B = "dr.dubois"
NOTE = "Subtle hyperdensity in the left sylvian fissure: bleed or artefact?"
ANSWER = "No bleed: beam-hardening artefact next to the petrous bone."


@pytest.fixture
def second_tenant(stack: Stack) -> str:
    """A second hospital with a neuroradiology group that takes second opinions."""
    stack.manage(
        "create_tenant", "--schema", SCHEMA_B, "--name", "Second Hospital",
        "--domain", HOST_B, "--ae-title", "NIMBUS_E2E_2",
    )  # fmt: skip
    stack.manage(
        "create_user", "--tenant", SCHEMA_B, "--username", READER_B,
        "--role", "radiologist", "--password", PASSWORD, "--totp-secret", TOTP_SECRET,
    )  # fmt: skip
    stack.manage(
        "collab_group", "--tenant", SCHEMA_B, "--name", "Neuroradiology",
        "--member", READER_B,
    )  # fmt: skip
    return f"http://{HOST_B}:{stack.web_port}"


def sign_in(page: Page, stack: Stack, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", stack.fresh_otp())
    # Enter in the form, not the first submit button: the header's language
    # picker has one too.
    page.press("#id_otp_token", "Enter")
    expect(page.locator("table.studies").first).to_be_visible()


def wait_for_first_frame(page: Page) -> None:
    wait_in_page(
        page,
        "(() => { const img = document.querySelector('#viewer-image');"
        " return !!img && img.src.startsWith('blob:') && img.complete"
        " && img.naturalWidth > 0; })()",
    )


def test_a_second_opinion_goes_to_another_tenant_and_the_answer_comes_back(
    browser: Browser, stack: Stack, second_tenant: str, tmp_path: Path
) -> None:
    study_uid = store_small_ct_study(
        stack,
        tmp_path,
        SLICES,
        PatientID="E2E-SO-1",
        PatientName="Martin^Claire",
        StudyDescription="CT head",
    )

    # Tenant A asks from the viewer.
    context_a = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context_a.new_page()
    sign_in(page, stack, stack.base_url, stack.username)
    page.goto(f"{stack.base_url}/viewer/studies/{study_uid}/")
    page.click("#request-second-opinion")
    page.select_option("#id_group", label="Second Hospital · Neuroradiology")
    page.fill("#id_note", NOTE)
    page.fill("#id_days", "3")
    page.screenshot(path=str(SCREENSHOTS / "second-opinion-request.png"))
    page.click("#second-opinion-form button[type=submit]")
    expect(page.locator(".collab-note")).to_contain_text("sylvian fissure")
    thread_url = page.url

    # Tenant B's group member finds it on the worklist, reads it, answers.
    context_b = browser.new_context(viewport={"width": 1440, "height": 900})
    page_b = context_b.new_page()
    sign_in(page_b, stack, second_tenant, READER_B)
    row = page_b.locator(f'.shared-in-studies tr[data-study-uid="{study_uid}"]')
    expect(row).to_contain_text("Martin, Claire")
    expect(row).to_contain_text("E2E Hospital")
    row.get_by_role("link", name="View").click()
    wait_for_first_frame(page_b)
    expect(page_b.locator(".series-thumb")).to_have_count(1)
    page_b.locator("header a", has_text="Second opinion for").click()
    expect(page_b.locator(".collab-note")).to_contain_text("sylvian fissure")
    page_b.fill("#id_body", ANSWER)
    page_b.click("#comment-form button[type=submit]")
    expect(page_b.locator("#comments")).to_contain_text("beam-hardening")
    # The other tenant's own viewer does not know the study: only the share opens it.
    assert page_b.goto(f"{second_tenant}/viewer/studies/{study_uid}/").status == 404
    context_b.close()

    # Tenant A sees the answer.
    page.goto(f"{stack.base_url}/")
    expect(page.locator(".shared-in-link .badge")).to_contain_text("1 new answer")
    page.goto(thread_url)
    expect(page.locator("#comments")).to_contain_text("beam-hardening")
    expect(page.locator("#comments")).to_contain_text(READER_B)
    page.screenshot(path=str(SCREENSHOTS / "second-opinion-answer.png"), full_page=True)
    context_a.close()

    audit = stack.sql(
        "SELECT event_type FROM audit_auditevent WHERE actor_username = %s",
        f"{READER_B}@{SCHEMA_B}",
    )
    assert {row[0] for row in audit} >= {201, 202, 354, 355}
