"""The web process (Daphne) killed and started again while an editor is open.

A radiologist's report editor (Chromium) is open; text is typed and dictated
(through the API, as a dictation client does) before, during and after the
restart. The editor's websocket reconnects by itself, shows the text that
arrives after, and nothing typed or dictated is lost or doubled.
"""

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, sign_in, wait_in_page
from tests.faults.conftest import new_series, storescu, wait_until_indexed
from tests.support.stack import Stack, wait_for, wait_for_port

pytestmark = pytest.mark.faults

ONLINE = "!document.getElementById('report-editor').classList.contains('offline')"
OFFLINE = "document.getElementById('report-editor').classList.contains('offline')"


def in_own_thread(scenario: Callable[[], None]) -> None:
    """Run a Playwright scenario in a thread of its own.

    A session-scoped sync Playwright of the browser tests may hold this
    thread's event loop; a second one in the same thread would fail.
    """
    errors: list[BaseException] = []

    def run() -> None:
        try:
            scenario()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(300)
    assert not thread.is_alive(), "the browser scenario hung"
    if errors:
        raise errors[0]


def server_text(stack: Stack, report: str) -> str:
    status, body = stack.get(report, token=stack.token)
    assert status == 200, body[:300]
    return str(json.loads(body)["text"])


def dictate_until_accepted(stack: Stack, report: str, text: str) -> int:
    """Post dictation as a client would: retry while the web is away; tries."""
    for attempt in range(1, 120):
        try:
            status, _ = stack.call(
                "POST", f"{report}/dictation", {"text": text}, stack.token
            )
        except OSError:
            status = 0
        if status == 200:
            return attempt
        time.sleep(0.5)
    raise AssertionError("the dictation was never accepted")


def test_an_open_editor_reconnects_after_a_web_restart_and_loses_no_text(
    fault_stack: Stack, tmp_path: Path
) -> None:
    files, study_uid = new_series(tmp_path / "study", 2)
    assert storescu(fault_stack, files).returncode == 0
    wait_until_indexed(fault_stack, study_uid, 2)
    report = f"/api/studies/{study_uid}/report"
    figures: dict[str, object] = {}

    def scenario() -> None:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS
            )
            page = browser.new_context().new_page()
            sign_in(page, fault_stack)
            page.goto(f"{fault_stack.base_url}/reports/studies/{study_uid}/")
            wait_in_page(page, ONLINE)
            run_through_the_restart(page)
            browser.close()

    def run_through_the_restart(page: Page) -> None:
        editor = page.locator("#report-text")
        # Once the editor holds the lock: seconds on a machine busy with the
        # rest of the suite, not the assertion's default five.
        expect(editor).to_be_editable(timeout=60_000)
        editor.click()
        editor.press_sequentially("Typed before.", delay=5)
        wait_for(
            lambda: server_text(fault_stack, report) == "Typed before.",
            what="autosave",
        )
        assert dictate_until_accepted(fault_stack, report, " Dictated before.") == 1
        wait_in_page(
            page,
            "document.getElementById('report-text').value.includes('Dictated before.')",
        )

        fault_stack.restart("web", kill=True)
        restarted_at = time.monotonic()
        wait_in_page(page, OFFLINE)
        editor.press("End")
        editor.press_sequentially(" Typed while down.", delay=5)
        figures["dictation_tries_during"] = dictate_until_accepted(
            fault_stack, report, " Dictated during."
        )
        wait_for_port(fault_stack.web_port)
        wait_in_page(page, ONLINE, timeout=30)
        figures["editor_online_after"] = round(time.monotonic() - restarted_at, 1)
        dictate_until_accepted(fault_stack, report, " Dictated after.")
        # Live again: the dictation reaches the open editor over the new socket.
        wait_in_page(
            page,
            "document.getElementById('report-text').value.includes('Dictated after.')",
        )

        pieces = [
            "Typed before.",
            "Dictated before.",
            "Typed while down.",
            "Dictated during.",
            "Dictated after.",
        ]
        text = wait_for(
            lambda: (
                (saved := server_text(fault_stack, report))
                and all(saved.count(piece) == 1 for piece in pieces)
                and saved
            ),
            30,
            what="every piece saved once",
        )
        wait_for(
            lambda: page.locator("#report-text").input_value() == text,
            10,
            what="the editor in step",
        )
        figures["pieces_saved_once"] = len(pieces)
        figures["final_length"] = len(text)

    in_own_thread(scenario)
    print(f"FAULT web restart with an editor open: {figures}")
