"""Nimbus in English, French, German and Dutch, in Debian's Chromium.

A radiologist picks each language on the security page; the worklist then
speaks it, with the study date in that language's format and the patient's
name as "Family, Given". Screenshots: docs/screenshots/worklist-en.png,
-fr, -de and -nl, and the picker (language-picker-fr.png). A signed-out visitor switches the sign-in page with the
switcher in the top bar (login-de.png).
"""

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import sign_in, store_small_ct_study
from tests.support.stack import PASSWORD, TOTP_SECRET, Stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
READER = "lang.reader"
PATIENT_ID = "E2E-LANG-1"

# Language -> (the column header "Study date", 5 December 2026 as it writes it).
WORKLIST = {
    "en": ("Study date", "05/12/2026"),
    "fr": ("Date de l'examen", "05/12/2026"),
    "de": ("Untersuchungsdatum", "05.12.2026"),
    "nl": ("Onderzoeksdatum", "5-12-2026"),
}
SEARCH = {"en": "Search", "fr": "Rechercher", "de": "Suchen", "nl": "Zoeken"}


@pytest.fixture
def study(stack: Stack, tmp_path: Path) -> str:
    return store_small_ct_study(
        stack,
        tmp_path,
        2,
        PatientID=PATIENT_ID,
        PatientName="Dubois^Amélie",
        StudyDate="20261205",
        StudyDescription="CT thorax",
    )


@pytest.fixture
def reader_page(browser: Browser, stack: Stack) -> Page:
    """A radiologist of their own, so no other test sees their language."""
    stack.manage(
        "create_user", "--tenant", stack.schema, "--username", READER,
        "--role", "radiologist", "--password", PASSWORD, "--totp-secret", TOTP_SECRET,
    )  # fmt: skip
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    sign_in(page, stack, READER)
    return page


def pick_language(page: Page, stack: Stack, language: str) -> None:
    page.goto(f"{stack.base_url}/accounts/security/")
    page.select_option("#id_language", language)
    page.click("#save-language")
    expect(page.locator("html")).to_have_attribute("lang", language)


def test_the_worklist_speaks_each_language_the_reader_picks(
    reader_page: Page, stack: Stack, study: str
) -> None:
    page = reader_page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    for language, (header, date) in WORKLIST.items():
        pick_language(page, stack, language)
        page.goto(f"{stack.base_url}/?patient_id={PATIENT_ID}")

        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.locator("table.studies thead")).to_contain_text(header)
        expect(page.locator("#worklist-filter button[type=submit]")).to_have_text(
            SEARCH[language]
        )
        row = page.locator(f'tr[data-study-uid="{study}"]')
        expect(row).to_contain_text(date)
        expect(row.locator(".patient-name")).to_have_text("Dubois, Amélie")
        page.screenshot(path=str(SCREENSHOTS / f"worklist-{language}.png"))

    saved = stack.sql("SELECT language FROM accounts_user WHERE username = %s", READER)
    assert saved == [("nl",)]


def test_the_choice_follows_the_reader_to_the_next_sign_in(
    reader_page: Page, stack: Stack
) -> None:
    pick_language(reader_page, stack, "fr")
    expect(reader_page.locator("#id_language option[selected]")).to_have_text(
        "Français"
    )
    reader_page.screenshot(path=str(SCREENSHOTS / "language-picker-fr.png"))
    reader_page.click("#sign-out-form button")

    # Signed out, the sign-in page stays French: the choice is kept in a cookie.
    expect(reader_page.locator("html")).to_have_attribute("lang", "fr")
    expect(reader_page.locator("form.login h1")).to_have_text("Se connecter")


def test_a_signed_out_visitor_switches_the_sign_in_page(
    browser: Browser, stack: Stack
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.goto(f"{stack.base_url}/accounts/login/")
    expect(page.locator("form.login h1")).to_have_text("Sign in")

    # The switcher submits on change (static/js/auto-submit.js, no inline script).
    page.select_option("#language-switcher select", "de")

    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.locator("form.login h1")).to_have_text("Anmelden")
    expect(page.locator("#language-switcher option[selected]")).to_have_text("Deutsch")
    page.screenshot(path=str(SCREENSHOTS / "login-de.png"))
    context.close()
