"""The MPR and 3D page in Chromium: three linked planes, slabs and a rotating 3D view.

Real CT slices (TCIA pancreas CT) go to the running stack with storescu;
every image on the page is rendered by the server.
"""

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_viewer_speed import ROOT
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e


def open_mpr(page: Page, stack: Stack, study_uid: str) -> list[str]:
    """Open the MPR page of the study's series; the image URLs requested."""
    requested: list[str] = []
    page.on(
        "request",
        lambda request: (
            requested.append(request.url)
            if "/mpr/" in request.url or "/3d.png" in request.url
            else None
        ),
    )
    series_uid = stack.sql(
        "SELECT s.series_instance_uid FROM pacs_series s JOIN pacs_study t"
        " ON s.study_id = t.id WHERE t.study_instance_uid = %s",
        study_uid,
    )[0][0]
    page.goto(f"{stack.base_url}/viewer/studies/{study_uid}/series/{series_uid}/mpr/")
    for plane in ("axial", "sagittal", "coronal"):
        image = page.locator(f'.mpr-view[data-plane="{plane}"] img')
        wait_for(
            lambda image=image: image.evaluate("i => i.complete && i.naturalWidth > 0"),
            what=f"the {plane} plane",
        )
    return requested


def plane_urls(requested: list[str], plane: str) -> list[str]:
    return [url for url in requested if f"/mpr/{plane}.png" in url]


def test_clicking_the_axial_plane_moves_the_other_two(stack, ct_study, page):
    requested = open_mpr(page, stack, ct_study)
    sagittal_before = len(plane_urls(requested, "sagittal"))
    axial = page.locator('.mpr-view[data-plane="axial"] img')
    box = axial.bounding_box()
    assert box is not None

    axial.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})

    wait_for(
        lambda: (
            len(plane_urls(requested, "sagittal")) > sagittal_before
            and len(plane_urls(requested, "coronal")) > 1
        ),
        what="the sagittal and coronal planes redrawn at the new point",
    )
    assert plane_urls(requested, "sagittal")[-1] != plane_urls(requested, "sagittal")[0]


def test_a_mip_slab_is_asked_for_with_its_thickness(stack, ct_study, page):
    requested = open_mpr(page, stack, ct_study)

    thickness = page.locator("#slab-thickness").input_value()

    page.select_option("#slab-mode", "mip")

    wait_for(
        lambda: any(
            "mode=mip" in url and f"thickness={thickness}" in url
            for url in plane_urls(requested, "axial")
        ),
        what=f"an axial MIP slab of {thickness} mm",
    )
    page.screenshot(path=str(ROOT / "docs" / "screenshots" / "viewer-mpr-mip.png"))


def test_dragging_the_3d_view_renders_coarse_then_full(stack, ct_study, page):
    requested = open_mpr(page, stack, ct_study)
    page.locator('.render-mode[data-mode="shaded"]').first.click()
    view = page.locator("#view-3d img")
    wait_for(
        lambda: view.evaluate("i => i.complete && i.naturalWidth > 0"),
        what="the 3D view",
    )
    box = view.bounding_box()
    assert box is not None

    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=8
    )
    expect(page.locator("#preview-marker")).to_be_visible()
    page.mouse.up()

    rendered = [url for url in requested if "/3d.png" in url]
    wait_for(
        lambda: any("quality=full" in url for url in requested[len(rendered) - 1 :]),
        what="the full-quality 3D render after the drag",
    )
    assert any("quality=coarse" in url for url in requested)
    expect(page.locator("#preview-marker")).to_be_hidden(timeout=30_000)
    page.screenshot(path=str(ROOT / "docs" / "screenshots" / "viewer-mpr-3d.png"))
