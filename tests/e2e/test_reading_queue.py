"""The reading queue in Debian's Chromium, as two radiologists, against the real processes.

The first radiologist claims a study from the worklist; the second sees who
is reading it, has no claim button on it, and finds the overdue STAT study
highlighted and alone under the overdue filter. The second radiologist's
worklist goes to docs/screenshots/reading-queue.png.
"""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import sign_in, store_small_ct_study
from tests.support.stack import PASSWORD, TOTP_SECRET, Stack

pytestmark = pytest.mark.e2e

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SECOND = "reader.two"


@pytest.fixture
def two_studies(stack: Stack, tmp_path: Path) -> tuple[str, str]:
    """An urgent study to claim and a STAT one already past its due time."""
    stack.manage(
        "create_user", "--tenant", stack.schema, "--username", SECOND,
        "--role", "radiologist", "--password", PASSWORD, "--totp-secret", TOTP_SECRET,
    )  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    to_claim = store_small_ct_study(
        stack, tmp_path / "a", 2, PatientID="E2E-RQ-1", PatientName="Janssens^Lieve"
    )
    late = store_small_ct_study(
        stack, tmp_path / "b", 2, PatientID="E2E-RQ-2", PatientName="Peeters^Bram"
    )
    for uid, priority, due in (
        (to_claim, "urgent", "now() + interval '3 hours'"),
        (late, "stat", "now() - interval '20 minutes'"),
    ):
        stack.sql(
            f"UPDATE reading_studyreading SET priority = %s, due_at = {due}"  # noqa: S608 - constants
            " WHERE study_id = (SELECT id FROM pacs_study WHERE study_instance_uid = %s)"
            " RETURNING study_id",
            priority,
            uid,
        )
    return to_claim, late


def row(page: Page, uid: str):  # type: ignore[no-untyped-def]
    return page.locator(f'tr[data-study-uid="{uid}"]')


def test_a_claim_shows_to_the_second_radiologist_and_overdue_stands_out(
    stack: Stack, page: Page, browser: Browser, two_studies: tuple[str, str]
) -> None:
    to_claim, late = two_studies

    # The first radiologist claims the urgent study from the worklist.
    page.goto(f"{stack.base_url}/")
    row(page, to_claim).locator("button.claim").click()
    expect(page.locator(".messages")).to_contain_text("You are reading this study.")
    expect(row(page, to_claim).locator(".being-read")).to_have_text(
        "You are reading it"
    )

    # The second sees who reads it, and cannot claim it too.
    second = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    sign_in(second, stack, SECOND)
    expect(row(second, to_claim).locator(".being-read")).to_have_text(
        f"Being read by {stack.username}"
    )
    expect(row(second, to_claim).locator("button.claim")).to_have_count(0)

    # STAT comes first; the late one is highlighted and marked in words.
    expect(second.locator("table.studies tbody tr").first).to_have_attribute(
        "data-study-uid", late
    )
    expect(row(second, late)).to_have_class(re.compile(r"\boverdue\b"))
    expect(row(second, late).locator(".overdue-badge")).to_have_text("Overdue")
    expect(row(second, to_claim)).not_to_have_class(re.compile(r"\boverdue\b"))
    background = (
        row(second, late)
        .locator("td")
        .first.evaluate("cell => getComputedStyle(cell).backgroundColor")
    )
    assert background == "rgb(46, 21, 21)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    second.screenshot(path=str(SCREENSHOTS / "reading-queue.png"), full_page=True)

    # The overdue filter keeps only the late study.
    second.check("#id_overdue")
    second.click("#worklist-filter button[type=submit]")
    expect(second.locator("table.studies tbody tr")).to_have_count(1)
    expect(second.locator("table.studies tbody tr").first).to_have_attribute(
        "data-study-uid", late
    )
    second.context.close()
