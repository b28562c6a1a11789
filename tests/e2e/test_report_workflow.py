"""The report workflow in Debian's Chromium: template, lock, preliminary, addendum.

One radiologist holds the lock and writes from a template while a colleague
watches read-only in a second window; the referrer of the study reads the
preliminary report; the report is signed and gets a signed addendum.
Screenshots go to docs/screenshots/.
"""

import base64
import re
import time
from pathlib import Path

from django_otp.oath import totp
from playwright.sync_api import Browser, Page, expect

from tests.support.stack import PASSWORD, TOTP_SECRET, Stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TEMPLATE_SQL = (
    "INSERT INTO reporting_reporttemplate (name, modality, body_part, "
    "clinical_information, technique, comparison, findings, impression, active, "
    "updated_at) VALUES ('CT abdomen', 'CT', '', '[[ ]]', 'Contrast-enhanced CT.', "
    "'None.', 'Liver [[liver]]. Pancreas normal.', '[[ ]]', true, now()) RETURNING id"
)


def otp_now() -> str:
    # Another user's device has not seen this step: no wait for a fresh one.
    return f"{totp(base64.b32decode(TOTP_SECRET)):06d}"


def sign_in_as(browser: Browser, stack: Stack, username: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", otp_now())
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def add_user(stack: Stack, username: str, role: str) -> None:
    stack.manage(
        "create_user",
        "--tenant", stack.schema,
        "--username", username,
        "--role", role,
        "--password", PASSWORD,
        "--totp-secret", TOTP_SECRET,
    )  # fmt: skip


def test_a_report_goes_from_template_to_preliminary_to_signed_with_an_addendum(
    stack: Stack,
    ct_study: str,  # a study of its own, not the one another test signs
    page: Page,
    browser: Browser,
) -> None:
    uid = ct_study
    add_user(stack, "watcher", "radiologist")
    add_user(stack, "referrer", "referrer")
    stack.sql("DELETE FROM reporting_reporttemplate RETURNING id")
    stack.sql(TEMPLATE_SQL)
    editor_url = f"{stack.base_url}/reports/studies/{uid}/"

    page.goto(editor_url)
    # A busy machine may take a while to hand the lock over.
    expect(page.locator("#lock-state")).to_have_attribute(
        "data-holder", stack.username, timeout=30_000
    )
    page.select_option("#template-choice", label="CT abdomen")
    page.click("#insert-template")
    expect(page.locator("#report-text")).to_have_value(re.compile("FINDINGS:"))
    page.keyboard.type("Abdominal pain.")
    page.click("#next-field")
    page.keyboard.type("normal")
    page.screenshot(path=SCREENSHOTS / "report-template.png")

    watcher = sign_in_as(browser, stack, "watcher")
    watcher.goto(editor_url)
    expect(watcher.locator("#lock-state")).to_have_attribute(
        "data-holder", stack.username
    )
    expect(watcher.locator("#report-text")).to_have_js_property("readOnly", True)
    expect(watcher.locator("#report-text")).to_have_value(re.compile("Abdominal pain"))
    watcher.screenshot(path=SCREENSHOTS / "report-watching-read-only.png")

    page.click("#preliminary-button")
    expect(page.locator("#report-status")).to_have_attribute(
        "data-status", "preliminary"
    )
    study_id = stack.sql("SELECT id FROM pacs_study WHERE study_instance_uid = %s", uid)
    referrer_id = stack.sql("SELECT id FROM accounts_user WHERE username = 'referrer'")
    stack.sql(
        "INSERT INTO reporting_studyreferral (study_id, referrer_id, created_at) "
        "VALUES (%s, %s, now()) RETURNING id",
        study_id[0][0],
        referrer_id[0][0],
    )
    referrer = sign_in_as(browser, stack, "referrer")
    referrer.goto(editor_url)
    expect(referrer.locator(".preliminary-note")).to_be_visible()
    referrer.screenshot(path=SCREENSHOTS / "report-preliminary-referrer.png")

    # An edit after issuing stays the radiologists' until issued again.
    expect(page.locator("#preliminary-button")).to_be_hidden()
    page.locator("#report-text").press("End")
    page.keyboard.type(" Edited after issuing.")
    expect(page.locator("#unissued-note")).to_be_visible()
    expect(watcher.locator("#report-text")).to_have_value(re.compile("after issuing"))
    expect(referrer.locator("#report-text")).not_to_have_value(
        re.compile("after issuing")
    )
    page.click("#preliminary-button")
    expect(page.locator("#unissued-note")).to_be_hidden()
    expect(referrer.locator("#report-text")).to_have_value(re.compile("after issuing"))

    page.click("#sign-button")
    page.fill("#sign-otp", stack.fresh_otp())
    page.click("#sign-confirm")
    expect(page.locator("#report-status")).to_have_attribute("data-status", "signed")
    expect(watcher.locator("#report-status")).to_have_attribute("data-status", "signed")

    page.fill("#addendum-text", "Addendum: rib fracture on image 5.")
    time.sleep(1.5)
    page.fill("#addendum-otp", stack.fresh_otp())
    page.click("#addendum-sign")
    expect(page.locator("#addenda article.addendum")).to_have_count(1)
    expect(watcher.locator("#addenda article.addendum")).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "report-addendum.png", full_page=True)
