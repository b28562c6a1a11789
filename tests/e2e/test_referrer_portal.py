"""The referring clinician's portal in Debian's Chromium, against the real processes.

A GP signs in and lands on the studies shared with them; the study with a
critical finding comes first. They open it, read the preliminary report
(marked as such), acknowledge the finding, hear live that the radiologist
signed it, open the cited key image in the viewer's simplified mode at its
frame and window, scroll and pick a preset. Screenshots go to
docs/screenshots/referrer-portal.png and referrer-viewer.png.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import store_small_ct_study, wait_in_page
from tests.support.stack import PASSWORD, TOTP_SECRET, Stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SLICES = 6
GP = "gp.visser"


@pytest.fixture
def referred_study(stack: Stack, tmp_path: Path) -> str:
    """A CT study shared with the GP: a preliminary report citing a key image,
    flagged critical."""
    stack.manage(
        "create_user", "--tenant", stack.schema, "--username", GP,
        "--role", "referrer", "--password", PASSWORD, "--totp-secret", TOTP_SECRET,
    )  # fmt: skip
    study_uid = store_small_ct_study(
        stack,
        tmp_path,
        SLICES,
        PatientID="E2E-GP-1",
        PatientName="Visser^Noor",
        StudyDescription="CT thorax",
    )
    stack.sql(
        "INSERT INTO reporting_studyreferral (study_id, referrer_id, created_at)"
        " SELECT s.id, u.id, now() FROM pacs_study s, accounts_user u"
        " WHERE s.study_instance_uid = %s AND u.username = %s RETURNING id",
        study_uid,
        GP,
    )
    (series_uid, sop_uid), *_ = stack.sql(
        "SELECT s.series_instance_uid, i.sop_instance_uid FROM pacs_instance i"
        " JOIN pacs_series s ON i.series_id = s.id"
        " JOIN pacs_study t ON s.study_id = t.id WHERE t.study_instance_uid = %s"
        " ORDER BY i.instance_number DESC",
        study_uid,
    )
    report = f"/api/studies/{study_uid}/report"
    for method, path, body in (
        ("PUT", report, {"text": "Findings: 9 mm nodule, right upper lobe."}),
        (
            "POST",
            f"{report}/images",
            {
                "series_instance_uid": series_uid,
                "sop_instance_uid": sop_uid,
                "frame": 1,
                "window_center": -600,
                "window_width": 1500,
            },
        ),
        ("POST", f"{report}/preliminary", None),
        ("POST", f"{report}/critical", None),
    ):
        status, answer = stack.call(method, path, body, token=stack.token)
        assert status == 200, (path, answer[:300])
    return study_uid


def sign_in_as_gp(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("#id_username", GP)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", stack.fresh_otp())
    page.click("button[type=submit]")


def test_a_gp_reads_the_report_acknowledges_and_views_the_key_image(
    stack: Stack, referred_study: str, browser: Browser
) -> None:
    gp = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    sign_in_as_gp(gp, stack)

    # The list: the shared study, its critical finding first, preliminary.
    expect(gp).to_have_url(re.compile(r"/referrals/$"))
    first = gp.locator("table.portal-studies tbody tr").first
    expect(first).to_have_attribute("data-study-uid", referred_study)
    expect(first).to_contain_text("Visser, Noor")
    expect(first.locator(".status-preliminary")).to_be_visible()
    expect(first.locator(".status-critical")).to_be_visible()
    gp.fill("#portal-search", "E2E-GP-1")
    gp.click("form[role=search] button")
    expect(gp.locator("table.portal-studies tbody tr")).to_have_count(1)

    # The study: the preliminary report, marked; the finding acknowledged.
    first.get_by_role("link", name="Open").click()
    expect(gp.locator("#preliminary-note")).to_be_visible()
    expect(gp.locator("#report-text")).to_contain_text("9 mm nodule")
    gp.click("#acknowledge")
    expect(gp.locator(".critical-done")).to_contain_text("acknowledged by")

    # The radiologist signs: the open page hears it over the websocket.
    report = f"/api/studies/{referred_study}/report"
    status, answer = stack.call(
        "POST", f"{report}/sign", {"otp": stack.fresh_otp()}, token=stack.token
    )
    assert status == 200, answer[:300]
    notice = gp.locator(".live-notice.notice-report_signed")
    expect(notice).to_contain_text("New signed report")
    expect(gp.locator("#unread-badge")).to_have_text("1")
    notice.get_by_role("link").click()
    expect(gp.locator(".signed-note").first).to_be_visible()
    expect(gp.locator("#preliminary-note")).to_have_count(0)
    key_image = gp.locator("a.key-image img")
    wait_in_page(gp, "document.querySelector('a.key-image img').naturalWidth > 0")
    expect(key_image).to_be_visible()
    gp.screenshot(path=str(SCREENSHOTS / "referrer-portal.png"), full_page=True)

    # The key image opens the simplified viewer at its frame and window.
    gp.click("a.key-image")
    expect(gp).to_have_url(re.compile(r"/viewer/studies/.+wc=-600&ww=1500"))
    expect(gp.locator("#viewer")).to_have_attribute("data-mode", "simple")
    expect(gp.locator("#overlay-wl")).to_have_text("W: 1500 L: -600")
    expect(gp.locator("#overlay-position")).to_contain_text(f"/{SLICES}")
    for absent in ("[data-tool=length]", "[data-tool=ellipse]", "#key-toggle"):
        expect(gp.locator(absent)).to_have_count(0)
    gp.locator("#viewport").focus()
    gp.keyboard.press("l")  # the length shortcut does nothing here
    expect(gp.locator("#viewport")).to_have_attribute("data-active-tool", "wl")
    gp.keyboard.press("ArrowUp")
    gp.click("[data-tool=zoom]")
    expect(gp.locator("[data-tool=zoom]")).to_have_attribute("aria-pressed", "true")
    gp.click("[data-preset]:text('Bone')")
    expect(gp.locator("#overlay-wl")).not_to_have_text("W: 1500 L: -600")
    wait_in_page(gp, "document.getElementById('viewer-image').naturalWidth > 0")
    gp.screenshot(path=str(SCREENSHOTS / "referrer-viewer.png"))

    recorded = {
        row[0]
        for row in stack.sql(
            "SELECT event_type FROM audit_auditevent"
            " WHERE study_instance_uid = %s AND actor_username = %s",
            referred_study,
            GP,
        )
    }
    # study opened, frames viewed, report read, critical finding acknowledged
    assert {201, 202, 210, 331} <= recorded
    gp.context.close()
