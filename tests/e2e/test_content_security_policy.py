"""Every main page works under the strict Content-Security-Policy, in Chromium.

A violation shows both as a ``securitypolicyviolation`` event and as a
console error; the test collects both on every page and expects none.
"""

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import sign_in
from tests.support.stack import PASSWORD, Stack

WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


class Watched:
    def __init__(self, context: BrowserContext) -> None:
        self.context = context
        self.console: list[str] = []
        context.add_init_script(WATCH_VIOLATIONS)
        context.on("console", self._on_console)

    def _on_console(self, message) -> None:  # type: ignore[no-untyped-def]
        if "Content Security Policy" in message.text:
            self.console.append(message.text)

    def assert_clean(self, page: Page) -> None:
        page.wait_for_timeout(1500)  # late loads: frames, sockets, the idle check
        assert page.evaluate("window.__cspViolations") == []
        assert self.console == []


@pytest.fixture
def watched(browser: Browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield Watched(context)
    context.close()


def test_the_reading_pages_raise_no_csp_violation(
    watched: Watched, stack: Stack, ct_study: str
) -> None:
    page = watched.context.new_page()
    page.goto(f"{stack.base_url}/accounts/login/")
    watched.assert_clean(page)

    sign_in(page, stack)
    watched.assert_clean(page)

    page.goto(f"{stack.base_url}/viewer/studies/{ct_study}/")
    expect(page.locator("img").first).to_be_visible()
    watched.assert_clean(page)

    page.goto(f"{stack.base_url}/reports/studies/{ct_study}/")
    watched.assert_clean(page)

    page.goto(f"{stack.base_url}/accounts/security/")
    watched.assert_clean(page)


def test_the_enrolment_page_raises_no_csp_violation(
    watched: Watched, stack: Stack
) -> None:
    stack.manage(
        "create_user",
        "--tenant",
        stack.schema,
        "--username",
        "csp.newcomer",
        "--role",
        "radiologist",
        "--password",
        PASSWORD,
    )
    stack.sql(
        "DELETE FROM otp_totp_totpdevice WHERE user_id ="
        " (SELECT id FROM accounts_user WHERE username = 'csp.newcomer') RETURNING id"
    )
    page = watched.context.new_page()
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("#id_username", "csp.newcomer")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    expect(page.locator(".qr svg")).to_be_visible()
    watched.assert_clean(page)
