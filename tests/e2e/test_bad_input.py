"""Bad input against the running stack: each gets a clear error and nothing is lost."""

import json
import subprocess
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import Page

from tests.support.ris import RisListener
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MR_SERIES = DATA / "dcm_qa_decubitus" / "HFS" / "3_t1_fl2d_sag"


def storescu(
    stack: Stack, ae_title: str, *files: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "storescu",
            "-aec",
            ae_title,
            "127.0.0.1",
            str(stack.dicom_port),
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def instance_count(stack: Stack) -> int:
    return int(stack.sql("SELECT count(*) FROM pacs_instance")[0][0])  # type: ignore[call-overload]


def test_an_unknown_called_ae_title_is_rejected_and_stores_nothing(stack: Stack):
    before = instance_count(stack)

    result = storescu(stack, "NOT_OUR_TENANT", DATA / "pydicom" / "CT_small.dcm")

    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stderr + result.stdout
    assert instance_count(stack) == before
    status, _ = stack.get("/healthz")
    assert status == 200


def test_truncated_pixel_data_is_stored_flagged_and_the_viewer_shows_an_error_image(
    stack: Stack, tmp_path: Path, page: Page
):
    ds = pydicom.dcmread(DATA / "pydicom" / "CT_small.dcm")
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 3]
    truncated = tmp_path / "truncated.dcm"
    ds.save_as(truncated)

    assert storescu(stack, stack.ae_title, truncated).returncode == 0

    flagged = wait_for(
        lambda: stack.sql(
            "SELECT pixel_status FROM pacs_instance WHERE sop_instance_uid = %s",
            ds.SOPInstanceUID,
        ),
        what="the truncated instance indexed",
    )
    assert flagged == [("truncated",)]
    page.goto(f"{stack.base_url}/viewer/studies/{ds.StudyInstanceUID}/")
    image = page.locator("#viewer-image")
    wait_for(
        lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"),
        what="the error image in the viewer",
    )
    # Fetched by the page itself: the same session, the same host resolution.
    status, render_error, content_type = page.evaluate(
        """async url => {
            const response = await fetch(url, {cache: "no-store"});
            return [response.status, response.headers.get("x-render-error"),
                    response.headers.get("content-type")];
        }""",
        f"/viewer/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}/frames/1.png",
    )
    assert (status, render_error, content_type) == (200, "1", "image/png")
    page.screenshot(path=SCREENSHOTS / "viewer-error-image.png")


def test_a_report_signed_while_the_ris_is_down_is_delivered_once_it_is_back(
    stack: Stack, ris: RisListener
):
    files = sorted(MR_SERIES.glob("*.dcm"))
    first = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert storescu(stack, stack.ae_title, *files).returncode == 0
    wait_for(
        lambda: stack.sql(
            "SELECT 1 FROM pacs_study WHERE study_instance_uid = %s "
            "AND number_of_study_related_instances = %s",
            first.StudyInstanceUID,
            len(files),
        ),
        what="the MR series indexed",
    )
    report = f"/api/studies/{first.StudyInstanceUID}/report"
    assert (
        stack.call("PUT", report, {"text": "Normal brain MR."}, stack.token)[0] == 200
    )

    ris.stop()
    received_before = len(ris.received)
    try:
        status, body = stack.call(
            "POST", report + "/sign", {"otp": stack.fresh_otp()}, stack.token
        )
        assert status == 200, body
        retrying = wait_for(
            lambda: (
                _delivery(stack, report)["state"] == "retrying"
                and _delivery(stack, report)
            ),
            what="delivery retrying",
        )
        assert retrying["last_error"]
    finally:
        ris.start()

    wait_for(lambda: _delivery(stack, report)["state"] == "delivered", what="delivery")
    ours = [
        m
        for m in ris.received[received_before:]
        if first.PatientID in str(m.segment("PID"))
    ]
    assert len(ours) == 1
    assert "Normal brain MR." in str(ours[0])


def _delivery(stack: Stack, report_path: str) -> dict[str, object]:
    status, body = stack.get(report_path, token=stack.token)
    assert status == 200, body
    return json.loads(body)["delivery"]  # type: ignore[no-any-return]
