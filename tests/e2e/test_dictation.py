"""Dictating in the browser: Chromium's fake microphone plays a flite recording.

Chromium reads the WAV file as its microphone; the editor's AudioWorklet
streams it to the server's speech engine, and the recognised text appears in
a second editor window of the same report.
"""

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, expect

from reporting.tests.speech_audio import SAMPLE_RATE, speak, write_wav
from tests.e2e.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    fresh_copies,
    sign_in,
    store_files,
)
from tests.support.stack import Stack, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian's flite"),
]

ROOT = Path(__file__).resolve().parents[2]
CT_SLICE = (
    ROOT.parent
    / "shared"
    / "data"
    / "dicom"
    / "tcia-pancreas-ct"
    / "series-201"
    / "1-030.dcm"
)
SCREENSHOTS = ROOT / "docs" / "screenshots"
SENTENCE = "there is a small left pleural effusion"


@pytest.fixture(scope="module")
def microphone_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sentence, then four seconds of silence (Chromium loops the file)."""
    folder = tmp_path_factory.mktemp("microphone")
    speech = speak(SENTENCE, "slt", folder / "speech.wav")
    silence = b"\0" * (SAMPLE_RATE * 2 * 4)
    wav = folder / "microphone.wav"
    write_wav(wav, b"\0" * SAMPLE_RATE + speech + silence)
    return wav


@pytest.fixture(scope="module")
def browser_with_microphone(
    playwright: Playwright, microphone_wav: Path
) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *CHROMIUM_ARGS,
            "--autoplay-policy=no-user-gesture-required",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav}",
        ],
    )
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def study_uid(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A study of its own (a copy of a real CT slice with new UIDs).

    Other tests read and sign the original study: a dictation into it
    would change the report they expect.
    """
    [copy], uid = fresh_copies(tmp_path_factory.mktemp("dictation"), [CT_SLICE])
    store_files(stack, [copy])
    wait_for(
        lambda: (
            stack.sql(
                "SELECT count(*) FROM pacs_study WHERE study_instance_uid = %s", uid
            )
            == [(1,)]
        ),
        what="the study indexed",
    )
    return uid


def open_editor(page: Page, stack: Stack, study_uid: str) -> None:
    page.goto(f"{stack.base_url}/reports/studies/{study_uid}/")
    expect(page.locator("#report-text")).to_be_visible()


def test_dictated_speech_appears_in_a_second_editor_window(
    browser_with_microphone: Browser, stack: Stack, study_uid: str
) -> None:
    context = browser_with_microphone.new_context(
        viewport={"width": 1280, "height": 900}
    )
    try:
        dictating = context.new_page()
        sign_in(dictating, stack)
        open_editor(dictating, stack, study_uid)
        watching = context.new_page()
        open_editor(watching, stack, study_uid)

        dictating.bring_to_front()
        dictating.keyboard.press("F4")
        expect(dictating.locator("#dictation-button")).to_have_attribute(
            "aria-pressed", "true"
        )
        expect(dictating.locator("#dictation-partial")).to_have_text(
            re.compile(r"pleural"), timeout=15_000
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        dictating.screenshot(path=SCREENSHOTS / "dictation.png")
        dictating.wait_for_timeout(2500)  # into the silence after the sentence
        dictating.keyboard.press("F4")

        spoken = re.compile(r"There is a small left pleural effusion", re.IGNORECASE)
        expect(watching.locator("#report-text")).to_have_value(spoken, timeout=15_000)
        expect(dictating.locator("#report-text")).to_have_value(spoken)
        expect(dictating.locator("#dictation-partial")).to_have_text("")
    finally:
        context.close()
