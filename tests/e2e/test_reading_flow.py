"""From a modality's C-STORE to a signed report at the RIS, with every process real.

dcmtk's storescu plays the modality, Debian's Chromium (through Playwright)
plays the radiologist, dicomweb-client plays a DICOMweb consumer, and an MLLP
listener built on python-hl7 plays the hospital RIS.
"""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import hl7
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from playwright.sync_api import Page, expect

from tests.support.ris import RisListener
from tests.support.stack import Stack, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CT_SERIES = (
    ROOT.parent / "shared" / "data" / "dicom" / "tcia-pancreas-ct" / "series-201"
)
SCREENSHOTS = ROOT / "docs" / "screenshots"
ACCESSION = "E2E-ACC-0001"


@pytest.fixture(scope="module")
def study_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The real CT series, with the accession number the hospital RIS gave it."""
    folder = tmp_path_factory.mktemp("ct")
    copies = []
    for source in sorted(CT_SERIES.glob("*.dcm")):
        target = folder / source.name
        shutil.copy(source, target)
        copies.append(target)
    subprocess.run(
        ["dcmodify", "-nb", "-i", f"(0008,0050)={ACCESSION}", *map(str, copies)],
        check=True,
        capture_output=True,
    )
    return copies


@pytest.fixture(scope="module")
def stored_study(stack: Stack, study_files: list[Path]) -> pydicom.Dataset:
    result = subprocess.run(
        [
            "storescu",
            "-aec",
            stack.ae_title,
            "127.0.0.1",
            str(stack.dicom_port),
            *map(str, study_files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    first = pydicom.dcmread(study_files[0], stop_before_pixels=True)
    wait_for(
        lambda: (
            stack.sql(
                "SELECT number_of_study_related_instances FROM pacs_study "
                "WHERE study_instance_uid = %s",
                first.StudyInstanceUID,
            )
            == [(len(study_files),)]
        ),
        what="all instances indexed",
    )
    return first


def test_storescu_sends_the_ct_series_and_dicomweb_finds_it(
    stack, stored_study, study_files
):
    client = DICOMwebClient(
        url=f"http://127.0.0.1:{stack.web_port}/dicomweb",
        headers={"Authorization": f"Bearer {stack.token}"},
    )
    found = client.search_for_studies(search_filters={"AccessionNumber": ACCESSION})

    assert len(found) == 1
    study = pydicom.Dataset.from_json(found[0])
    assert study.StudyInstanceUID == stored_study.StudyInstanceUID
    assert study.PatientID == stored_study.PatientID
    assert int(study.NumberOfStudyRelatedInstances) == len(study_files)

    resending = subprocess.run(
        [
            "storescu",
            "-aec",
            stack.ae_title,
            "127.0.0.1",
            str(stack.dicom_port),
            str(study_files[0]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resending.returncode == 0
    time.sleep(3)
    in_study = stack.sql(
        "SELECT count(*) FROM pacs_instance i JOIN pacs_series s ON s.id = i.series_id "
        "JOIN pacs_study t ON t.id = s.study_id WHERE t.study_instance_uid = %s",
        stored_study.StudyInstanceUID,
    )
    assert in_study == [(len(study_files),)]


def test_a_radiologist_reads_reports_and_signs_and_the_ris_receives_it(
    stack: Stack, stored_study: pydicom.Dataset, ris: RisListener, page: Page
):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{stack.base_url}/")
    row = page.locator(f'tr[data-study-uid="{stored_study.StudyInstanceUID}"]')
    expect(row.locator(".image-count")).to_have_text("64")
    expect(row.locator(".series-count")).to_have_text("1")
    page.screenshot(path=SCREENSHOTS / "worklist.png")

    view_the_study(page, row)
    page.screenshot(path=SCREENSHOTS / "viewer.png")

    report_text = "Liver and pancreas | unremarkable ^ no lesion & no ~ fluid."
    edit_and_dictate(page, stack, stored_study, report_text)
    page.screenshot(path=SCREENSHOTS / "report.png")

    page.click("#sign-button")
    page.fill("#sign-otp", stack.fresh_otp())
    page.click("#sign-confirm")
    expect(page.locator("#report-status")).to_have_attribute("data-status", "signed")
    expect(page.locator("#delivery-state")).to_have_attribute(
        "data-state", "delivered", timeout=60_000
    )
    expect(page.locator("#report-text")).not_to_be_editable()
    page.screenshot(path=SCREENSHOTS / "report-signed.png")

    message = wait_for(lambda: ris.received, what="ORU at the RIS")[-1]
    parsed = hl7.parse(str(message))
    assert str(parsed.segment("MSH")(9)) == "ORU^R01^ORU_R01"
    assert str(parsed.segment("MSH")(12)) == "2.5.1"
    assert parsed["PID.F3.R1.C1"] == stored_study.PatientID
    assert ACCESSION in (parsed["OBR.F2"], parsed["OBR.F3"])
    assert ris.ack_code == "AA"
    text = "\n".join(parsed.unescape(str(obx(5))) for obx in parsed.segments("OBX"))
    assert report_text in text
    assert "no acute abnormality" in text


def view_the_study(page: Page, row) -> None:  # type: ignore[no-untyped-def]
    row.locator("a", has_text="View").click()
    image = page.locator("#viewer-image")
    expect(image).to_be_visible()
    wait_for(
        lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"),
        what="first frame",
    )
    position = page.locator("#overlay-position")
    first_position = position.inner_text()

    image.hover()
    for _ in range(5):
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(150)
    page.keyboard.press("ArrowDown")
    expect(position).not_to_have_text(first_position)

    window = page.locator("#overlay-wl")
    before = window.inner_text()
    box = image.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(
        box["x"] + box["width"] / 2 + 120, box["y"] + box["height"] / 2 + 60, steps=10
    )
    page.mouse.up()
    expect(window).not_to_have_text(before)
    wait_for(
        lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"),
        what="re-windowed frame",
    )


def edit_and_dictate(
    page: Page, stack: Stack, study: pydicom.Dataset, typed: str
) -> None:
    page.goto(f"{stack.base_url}/reports/studies/{study.StudyInstanceUID}/")
    editor = page.locator("#report-text")
    # Read-only until the page holds the report's lock, which a busy machine
    # may take a while to hand over.
    expect(editor).to_be_editable(timeout=30_000)
    editor.click()
    editor.press_sequentially(typed, delay=10)
    wait_for(
        lambda: (
            stack.sql(
                "SELECT r.text FROM reporting_report r JOIN pacs_study s ON s.id = r.study_id "
                "WHERE s.study_instance_uid = %s",
                study.StudyInstanceUID,
            )
            == [(typed,)]
        ),
        what="autosave",
    )

    dictated = "Impression: no acute abnormality."
    status, _ = stack.call(
        "POST",
        f"/api/studies/{study.StudyInstanceUID}/report/dictation",
        {"text": dictated},
        token=stack.token,
    )
    assert status in (200, 201)
    expect(editor).to_have_value(re.compile(r"no acute abnormality"))


def test_typing_while_the_live_connection_is_down_never_loses_a_dictation(
    stack: Stack, page: Page, tmp_path: Path
):
    source = CT_SERIES.parent.parent / "pydicom" / "MR_small.dcm"
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    sent = subprocess.run(
        [
            "storescu",
            "-aec",
            stack.ae_title,
            "127.0.0.1",
            str(stack.dicom_port),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    wait_for(
        lambda: stack.sql(
            "SELECT 1 FROM pacs_study WHERE study_instance_uid = %s",
            ds.StudyInstanceUID,
        ),
        what="the MR study indexed",
    )
    # The editor's websocket never reaches the server: no live updates at all.
    page.route_web_socket(re.compile(r"/ws/"), lambda socket: None)
    page.goto(f"{stack.base_url}/reports/studies/{ds.StudyInstanceUID}/")
    editor = page.locator("#report-text")
    expect(editor).to_be_editable()
    editor.click()
    editor.press_sequentially("Typed first.", delay=5)
    report = f"/api/studies/{ds.StudyInstanceUID}/report"
    wait_for(lambda: _server_text(stack, report) == "Typed first.", what="autosave")

    status, _ = stack.call(
        "POST", report + "/dictation", {"text": "DICTATED."}, stack.token
    )
    assert status == 200
    editor.press("End")
    editor.press_sequentially(" Typed later.", delay=5)

    # The dictation goes after what was typed here (the editor could not know
    # where it was spoken); nothing of either is lost.
    merged = wait_for(
        lambda: (
            (text := _server_text(stack, report)).count("DICTATED.") == 1
            and "Typed later." in text
            and text
        ),
        what="the merged text saved",
    )
    assert merged.startswith("Typed first.")
    expect(editor).to_have_value(merged)


def _server_text(stack: Stack, report_path: str) -> str:
    status, body = stack.get(report_path, token=stack.token)
    assert status == 200, body
    return str(json.loads(body)["text"])
