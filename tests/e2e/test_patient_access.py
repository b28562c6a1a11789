"""A patient's link in Debian's Chromium, against the real processes.

The radiologist signs a report and makes a link on the study's patient
access page; the patient opens the link in another browser, asks for the
code (the web process's console mail backend prints the e-mail into its
log), enters it, reads the report, scrolls the images with a window preset
and downloads them as a DICOM ZIP with a DICOMDIR. Screenshots go to
docs/screenshots/patient-*.png.
"""

import io
import re
import zipfile
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import store_small_ct_study, wait_in_page
from tests.support.stack import Stack, wait_for

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SLICES = 6


@pytest.fixture
def signed_study(stack: Stack, tmp_path: Path) -> str:
    """A small CT study of its own whose report the radiologist has signed."""
    study_uid = store_small_ct_study(
        stack,
        tmp_path,
        SLICES,
        PatientID="E2E-PATIENT-7",
        PatientName="Peeters^Anna",
        StudyDescription="CT abdomen",
    )
    report = f"/api/studies/{study_uid}/report"
    text = "Findings: a 12 mm simple cyst in the liver.\n\nImpression: benign."
    status, _ = stack.call("PUT", report, {"text": text}, token=stack.token)
    assert status == 200
    status, body = stack.call(
        "POST", f"{report}/sign", {"otp": stack.fresh_otp()}, token=stack.token
    )
    assert status == 200, body
    return study_uid


def mailed_code(stack: Stack) -> str:
    assert stack.logs is not None
    log = stack.logs / "web.log"
    codes = wait_for(
        lambda: re.findall(r"Your code is: (\d{6})", log.read_text(errors="replace")),
        what="the code e-mail in the web process's console",
    )
    return str(codes[-1])


def test_a_patient_opens_the_link_with_the_code_reads_views_and_downloads(
    stack: Stack, signed_study: str, page: Page, browser: Browser
) -> None:
    page.goto(f"{stack.base_url}/patient-access/studies/{signed_study}/")
    page.fill("#id_email", "anna.peeters@example.org")
    page.click(".access-form button.primary")
    link = page.locator("[data-new-link]").input_value()
    assert re.fullmatch(r"http://[^/]+/p/[A-Za-z0-9_-]{43}/", link)

    patient = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    patient.goto(link)
    patient.click("button[value=send]")
    expect(patient.locator("p.notice")).to_be_visible()
    patient.fill("#id_code", mailed_code(stack))
    patient.screenshot(path=str(SCREENSHOTS / "patient-code.png"))
    patient.click("button[value=verify]")

    expect(patient.locator("table.patient-studies")).to_contain_text("CT abdomen")
    patient.click("text=Report and images")
    expect(patient.locator(".report-body")).to_contain_text("simple cyst")
    patient.screenshot(path=str(SCREENSHOTS / "patient-report.png"))

    with patient.expect_download() as download_info:
        patient.click("a[download]")
    archive = zipfile.ZipFile(download_info.value.path())
    assert archive.namelist()[0] == "DICOMDIR"
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    images = [
        r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"
    ]
    assert len(images) == SLICES == len(archive.namelist()) - 1

    patient.click("text=View the images")
    image = patient.locator("[data-image]")
    expect(image).to_have_attribute("src", re.compile(r"/frames/1\.png$"))
    patient.locator(".pv-stage").focus()
    patient.keyboard.press("ArrowDown")
    patient.click("button[data-preset='2']")  # soft tissue
    expect(image).to_have_attribute("src", re.compile(r"ww=400"))
    wait_in_page(patient, "document.querySelector('[data-image]').naturalWidth > 0")
    expect(patient.locator("[data-position]")).to_contain_text(f"of {SLICES}")
    patient.screenshot(path=str(SCREENSHOTS / "patient-viewer.png"))

    # The patient's session opens no staff page.
    patient.goto(f"{stack.base_url}/viewer/studies/{signed_study}/")
    expect(patient.locator("#id_username")).to_be_visible()

    recorded = {
        row[0]
        for row in stack.sql(
            "SELECT event_type FROM audit_auditevent WHERE study_instance_uid = %s",
            signed_study,
        )
    }
    # created, code sent, opened, report read, study opened, frames, download
    assert {170, 172, 175, 210, 201, 202, 410} <= recorded
    patient.context.close()
