import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from pydicom.uid import generate_uid

from tests.support.ris import RisListener
from tests.support.stack import PASSWORD, Stack, running_stack, wait_for


@pytest.fixture(scope="session")
def ris() -> Iterator[RisListener]:
    server = RisListener().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, ris: RisListener
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), ris.port) as running:
        yield running


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# Debian's Chromium, headless, with none of its calls to the outside world.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """One Playwright for the session: a second one in the same thread fails."""
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


def wait_in_page(page: Page, expression: str, timeout: float = 20.0) -> None:
    """Wait until ``expression`` is true in the page.

    Not page.wait_for_function: it polls by evaluating its predicate inside
    the page, which the strict CSP (no 'unsafe-eval') refuses.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


def sign_in(page: Page, stack: Stack, username: str = "") -> None:
    page.goto(f"{stack.base_url}/accounts/login/")
    page.fill("#id_username", username or stack.username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", stack.fresh_otp())
    page.click("form.login button[type=submit]")
    expect(page.locator("table.studies")).to_be_visible()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A new browser context, signed in as the stack's radiologist."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    signed_in = context.new_page()
    sign_in(signed_in, stack)
    yield signed_in
    context.close()


CT_SERIES = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "dicom"
    / "tcia-pancreas-ct"
    / "series-201"
)
# The last slices of the series: a contiguous stack, quick to send.
SLICES = 24


@pytest.fixture(scope="session")
def ct_study(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The last slices of the real CT as a study of their own (new UIDs).

    Other tests send the original series; a study of its own keeps this
    one's slice count whatever ran before.
    """
    files, study_uid = fresh_copies(
        tmp_path_factory.mktemp("ct"), sorted(CT_SERIES.glob("*.dcm"))[-SLICES:]
    )
    store_files(stack, files)
    wait_for(
        lambda: (
            stack.sql(
                "SELECT count(*) FROM pacs_instance i JOIN pacs_series s ON i.series_id = s.id"
                " JOIN pacs_study t ON s.study_id = t.id WHERE t.study_instance_uid = %s",
                study_uid,
            )
            == [(SLICES,)]
        ),
        what="the CT slices indexed",
    )
    return study_uid


def store_files(stack: Stack, files: list[Path]) -> None:
    """Send ``files`` to the stack's DICOM listener with dcmtk's storescu."""
    result = subprocess.run(
        ["storescu", "-aec", stack.ae_title, "127.0.0.1", str(stack.dicom_port)]
        + [str(f) for f in files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr


def fresh_copies(
    folder: Path, sources: list[Path], **attributes: str
) -> tuple[list[Path], str]:
    """Copies of ``sources`` as a new study and series, with ``attributes`` set."""
    study_uid, series_uid = generate_uid(), generate_uid()
    copies = []
    for source in sources:
        ds = pydicom.dcmread(source)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        target = folder / source.name
        ds.save_as(target)
        copies.append(target)
    return copies, study_uid


def store_small_ct_study(
    stack: Stack, folder: Path, slices: int, **attributes: str
) -> str:
    """The first ``slices`` CT slices as a new study, sent and indexed; its UID."""
    files, study_uid = fresh_copies(
        folder, sorted(CT_SERIES.glob("*.dcm"))[:slices], **attributes
    )
    store_files(stack, files)
    wait_for(
        lambda: (
            stack.sql(
                "SELECT number_of_study_related_instances FROM pacs_study"
                " WHERE study_instance_uid = %s",
                study_uid,
            )
            == [(slices,)]
        ),
        what="the study indexed",
    )
    return study_uid
