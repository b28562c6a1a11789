"""The MPR and 3D page in Chromium: linked planes, an oblique plane, slabs, 3D.

Real CT slices (TCIA pancreas CT) go to the running stack with storescu;
every image on the page is rendered by the server.
"""

import base64
import math
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import numpy as np
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


# Grey levels (the red channel) of a drawable, read back through a canvas.
GREY_OF = """(drawable, width, height) => {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    context.drawImage(drawable, 0, 0);
    const rgba = context.getImageData(0, 0, width, height).data;
    let text = "";
    for (let i = 0; i < rgba.length; i += 4) text += String.fromCharCode(rgba[i]);
    return [width, height, btoa(text)];
}"""


def grey(answer: list) -> np.ndarray:
    width, height, encoded = answer
    pixels = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
    return pixels.reshape(height, width)


def shown_png(page: Page, selector: str) -> np.ndarray:
    """The pixels a view shows (the page's CSP allows no fetch of blob URLs)."""
    script = f"""(selector) => {{
        const image = document.querySelector(selector);
        return ({GREY_OF})(image, image.naturalWidth, image.naturalHeight);
    }}"""
    return grey(page.evaluate(script, selector))


def served_png(page: Page, url: str) -> np.ndarray:
    """The pixels the server answers for ``url``, fetched by the signed-in page."""
    script = f"""async (url) => {{
        const response = await fetch(url, {{ cache: "no-store" }});
        if (!response.ok || response.headers.get("X-Render-Error")) return null;
        const bitmap = await createImageBitmap(await response.blob());
        return ({GREY_OF})(bitmap, bitmap.width, bitmap.height);
    }}"""
    answer = page.evaluate(script, url)
    assert answer is not None, f"the server did not render {url}"
    return grey(answer)


def shown_source(page: Page, selector: str) -> str:
    return page.locator(selector).evaluate(
        "i => i.complete && i.naturalWidth > 0 ? i.dataset.source || '' : ''"
    )


def test_tilting_the_oblique_line_shows_the_plane_the_server_renders(
    stack, ct_study, page
):
    open_mpr(page, stack, ct_study)
    oblique = "#view-oblique img"
    page.click("#oblique-toggle")
    wait_for(lambda: shown_source(page, oblique), what="the untilted oblique plane")
    first_source, first_pixels = shown_source(page, oblique), shown_png(page, oblique)
    axial = page.locator('.mpr-view[data-plane="axial"]')
    handle = axial.locator("circle.oblique-handle")
    expect(handle).to_be_visible()
    expect(page.locator("#view-3d")).to_be_hidden()

    # Drag the handle 30 degrees clockwise about the crosshair.
    box = handle.bounding_box()
    centre_x = axial.locator("line.v").bounding_box()["x"]
    start_x, start_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    reach = start_x - centre_x
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    angle = math.radians(30)
    page.mouse.move(
        centre_x + reach * math.cos(angle), start_y + reach * math.sin(angle), steps=6
    )
    page.mouse.up()

    tilt = int(page.locator("#oblique-angle").input_value())
    assert 25 <= tilt <= 35
    wait_for(
        lambda: f"u={direction(tilt)}" in unquote(shown_source(page, oblique)),
        what=f"the oblique plane tilted {tilt} degrees",
    )
    source = shown_source(page, oblique)
    query = parse_qs(urlsplit(source).query)
    # The coronal plane turned about the axial normal (+z): u in the axial
    # plane at the tilt, v still towards the feet.
    assert query["u"] == [direction(tilt)]
    assert query["v"] == ["0.000000,0.000000,-1.000000"]
    shown = shown_png(page, oblique)
    assert shown.shape != first_pixels.shape or np.any(shown != first_pixels)
    assert source != first_source

    # The same plane asked for by hand renders the same pixels.
    by_hand = urlsplit(source)._replace(
        query=urlencode(
            {
                "x": query["x"][0],
                "y": query["y"][0],
                "z": query["z"][0],
                "u": direction(tilt),
                "v": "0,0,-1",
                "size": query["size"][0],
            }
        )
    )
    np.testing.assert_array_equal(shown, served_png(page, by_hand.geturl()))
    page.screenshot(path=str(ROOT / "docs" / "screenshots" / "mpr-oblique.png"))


def test_the_oblique_plane_turns_by_keyboard_and_takes_the_slab(stack, ct_study, page):
    open_mpr(page, stack, ct_study)
    oblique = "#view-oblique img"
    page.click("#oblique-toggle")
    wait_for(lambda: shown_source(page, oblique), what="the oblique plane")

    page.locator('.mpr-view[data-plane="axial"] circle.oblique-handle').focus()
    page.keyboard.press("Shift+ArrowRight")
    page.select_option("#slab-mode", "mip")

    expect(page.locator("#oblique-angle")).to_have_value("10")
    wait_for(
        lambda: (
            "mode=mip" in shown_source(page, oblique)
            and f"u={direction(10)}" in unquote(shown_source(page, oblique))
        ),
        what="a MIP slab of the oblique plane tilted 10 degrees",
    )


def direction(degrees: int) -> str:
    """The page's u for the coronal plane turned by ``degrees`` about +z."""
    angle = math.radians(degrees)
    parts = (math.cos(angle), math.sin(angle), 0.0)
    return ",".join(f"{part:.6f}".replace("-0.000000", "0.000000") for part in parts)
