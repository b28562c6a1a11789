"""Series prefetch with its progress bar, and lossy W/L previews, in Chromium.

Real CT slices go to the running stack with dcmtk's storescu; Debian's
Chromium, driven by Playwright, opens them in the viewer.
"""

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import SLICES
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def open_study(page: Page, stack: Stack, study_uid: str):  # type: ignore[no-untyped-def]
    page.goto(f"{stack.base_url}/viewer/studies/{study_uid}/")
    viewport = page.locator('.viewport[data-slot="0"]')
    wait_for(
        lambda: viewport.locator(".vp-image").evaluate(
            # The script's own copy (blob:), not the page's first frame.
            "img => img.complete && img.naturalWidth > 0 && img.src.startsWith('blob:')"
        ),
        what="the first frame",
    )
    return viewport


def test_the_progress_bar_fills_as_the_whole_series_loads(stack, ct_study, page):
    viewport = open_study(page, stack, ct_study)

    bar = viewport.locator(".frame-progress")

    expect(bar).to_have_attribute("aria-valuemax", str(SLICES))
    expect(bar).to_have_attribute("aria-valuenow", str(SLICES), timeout=30_000)
    expect(bar).to_have_class("frame-progress complete")
    expect(viewport.locator(".frame-progress-fill")).to_have_attribute(
        "style", "width: 100%;"
    )


def test_a_lossy_preview_is_marked_while_dragging_and_unmarked_after(
    stack, ct_study, page
):
    viewport = open_study(page, stack, ct_study)
    marker = viewport.locator(".lossy-marker")
    box = viewport.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    expect(marker).to_be_hidden()

    page.mouse.move(x, y)
    page.mouse.down(button="right")
    for step in range(1, 15):
        page.mouse.move(x + 6 * step, y + 4 * step)
        page.wait_for_timeout(40)

    expect(marker).to_be_visible()
    expect(marker).to_have_text("Lossy preview")
    page.screenshot(
        path=str(ROOT / "docs" / "screenshots" / "viewer-lossy-preview.png")
    )
    page.mouse.up(button="right")
    expect(marker).to_be_hidden()
    wait_for(
        lambda: (
            viewport.locator(".vp-image").evaluate("img => img.naturalWidth") == 512
        ),
        what="the lossless frame back",
    )


def test_the_series_is_kept_in_memory_only(stack, ct_study, page):
    viewport = open_study(page, stack, ct_study)
    expect(viewport.locator(".frame-progress")).to_have_attribute(
        "aria-valuenow", str(SLICES), timeout=30_000
    )

    stored = page.evaluate(
        """async () => ({
            caches: (await caches.keys()).length,
            databases: (await indexedDB.databases()).length,
            local: localStorage.length,
            session: sessionStorage.length,
        })"""
    )

    assert stored == {"caches": 0, "databases": 0, "local": 0, "session": 0}
