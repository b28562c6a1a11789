"""Large radiographs in the viewer: an overview frame, then tiles of what is visible.

A generated 4,000 x 5,000 DX image goes to the running stack with dcmtk's
storescu; Chromium zooms in on it and must fetch tiles of the visible part
only, never the whole image at full resolution.
"""

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, generate_uid

from tests.e2e.conftest import store_files
from tests.e2e.test_viewer_speed import ROOT, open_study
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

ROWS, COLUMNS = 5000, 4000
TILE = 256


def large_radiograph(path: Path) -> pydicom.Dataset:
    """A 16-bit DX image with a grid, so tiles at any level show structure."""
    y, x = np.mgrid[0:ROWS, 0:COLUMNS]
    pixels = ((x // 50 + y // 50) % 2 * 2000 + (x + y) // 10).astype(np.uint16)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "TILES1", "Tiles^Large", "DX"
    ds.AccessionNumber, ds.StudyDate = "TILES1", "20260101"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 14, 13, 0
    ds.ImagerPixelSpacing = [0.1, 0.1]
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


@pytest.fixture(scope="module")
def large_study(stack: Stack, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("large") / "dx.dcm"
    ds = large_radiograph(path)
    store_files(stack, [path])
    wait_for(
        lambda: (
            stack.sql(
                "SELECT count(*) FROM pacs_instance WHERE sop_instance_uid = %s",
                str(ds.SOPInstanceUID),
            )
            == [(1,)]
        ),
        what="the radiograph indexed",
    )
    return str(ds.StudyInstanceUID)


def settled(viewport) -> bool:  # type: ignore[no-untyped-def]
    """Every tile asked for is on screen."""
    layer = viewport.locator(".vp-tiles")
    return layer.get_attribute("data-pending") == "0" and (
        viewport.locator(".vp-tile").count() > 0
    )


def test_zooming_into_a_large_radiograph_fetches_only_visible_tiles(
    stack, large_study, page
):
    frames, tiles = [], []
    page.on(
        "request",
        lambda request: (
            (tiles if "/tiles/" in request.url else frames).append(request.url)
            if "/frames/" in request.url
            else None
        ),
    )
    viewport = open_study(page, stack, large_study)
    box = viewport.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    page.keyboard.down("Control")
    for _ in range(12):
        page.mouse.wheel(0, -120)
    page.keyboard.up("Control")

    wait_for(lambda: viewport.locator(".vp-tile").count() > 0, what="tiles shown")
    wait_for(lambda: settled(viewport), what="every visible tile loaded")
    level = int(viewport.locator(".vp-tiles").get_attribute("data-level") or -1)
    columns = -(-COLUMNS // (TILE * 2**level))
    rows = -(-ROWS // (TILE * 2**level))
    shown = viewport.locator(".vp-tile").count()
    assert 0 < shown < columns * rows  # the visible part, not the whole level
    assert len(set(tiles)) >= shown
    whole = [url for url in frames if url.endswith(".png") or ".png?" in url]
    sizes = [int(parse_qs(urlparse(url).query).get("size", ["0"])[0]) for url in whole]
    assert whole and all(0 < size <= 1024 for size in sizes)
    page.screenshot(path=str(ROOT / "docs" / "screenshots" / "viewer-tiles-zoomed.png"))


def test_panning_a_zoomed_radiograph_fetches_the_tiles_that_come_into_view(
    stack, large_study, page
):
    viewport = open_study(page, stack, large_study)
    box = viewport.bounding_box()
    assert box is not None
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*centre)
    page.keyboard.down("Control")
    for _ in range(12):
        page.mouse.wheel(0, -120)
    page.keyboard.up("Control")
    wait_for(lambda: viewport.locator(".vp-tile").count() > 0, what="tiles shown")
    before = set(
        viewport.locator(".vp-tile").evaluate_all(
            "tiles => tiles.map(t => t.style.left + t.style.top)"
        )
    )

    page.mouse.move(*centre)
    page.mouse.down(button="middle")
    page.mouse.move(
        centre[0] + box["width"] / 3, centre[1] + box["height"] / 3, steps=5
    )
    page.mouse.up(button="middle")

    wait_for(
        lambda: (
            set(
                viewport.locator(".vp-tile").evaluate_all(
                    "tiles => tiles.map(t => t.style.left + t.style.top)"
                )
            )
            - before
        ),
        what="new tiles after panning",
    )
