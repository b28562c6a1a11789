"""Stored cross-site scripting through DICOM text and report text, on a running Nimbus.

The session's hostile study (tests/security/conftest.py) was sent with
storescu with a script in its Patient Name, Study and Series Description;
its report and addendum hold more. Every page that shows them must carry
them as escaped text, every JSON answer and websocket message as data, the
PDF as printed text (WeasyPrint fetches nothing the text names), and the
Content-Security-Policy would block an inline script anyway. Each read is
itself audited.
"""

import io
import json
import re

import pypdf

from tests.security.conftest import (
    XSS_SERIES,
    XSS_STUDY,
    Attack,
    live_markup,
    paths,
    websocket_open,
)

STUDY_OPENED, REPORT_READ, WORKLIST_SEARCHED, AUDIT_SEARCHED = 201, 210, 200, 600


def read_page(attack: Attack, who: str, path: str) -> str:
    answer = attack.browser(who).get(path)
    assert answer.status_code == 200, (path, answer.status_code)
    assert answer.headers["Content-Type"].startswith("text/html")
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    return answer.text


def assert_inert(page: str) -> None:
    assert live_markup(page) == []
    # The payload is there, as text: the test would pass on a page without it.
    assert "&lt;script&gt;" in page or "&lt;img" in page or "&lt;svg" in page


def event_types(attack: Attack, since: int, actor: str) -> list[int]:
    return [e[0] for e in attack.events(since) if e[2] == actor]


def test_it_shows_hostile_dicom_text_inert_on_the_worklist(attack):
    since = attack.mark()

    page = read_page(attack, "reader", "/?q=ATTACK")

    assert_inert(page)
    assert WORKLIST_SEARCHED in event_types(attack, since, "reader2")


def test_it_shows_hostile_dicom_text_inert_in_the_viewer(attack):
    since = attack.mark()

    page = read_page(attack, "reader", paths(attack, "xss")["viewer"])
    series = attack.browser("reader").get(paths(attack, "xss")["series"])

    assert_inert(page)
    assert live_markup(series.text) == []
    assert STUDY_OPENED in event_types(attack, since, "reader2")


def test_it_shows_hostile_report_text_inert_in_the_report_editor(attack):
    since = attack.mark()

    page = read_page(attack, "reader", paths(attack, "xss")["editor"])

    assert_inert(page)
    assert page.count("</textarea>") == page.count("<textarea")
    assert REPORT_READ in event_types(attack, since, "reader2")


def test_it_shows_hostile_report_text_inert_in_the_versions_and_their_diff(attack):
    since = attack.mark()

    page = read_page(attack, "reader", paths(attack, "xss")["editor"] + "versions/")

    assert_inert(page)
    assert REPORT_READ in event_types(attack, since, "reader2")


def test_it_shows_hostile_text_inert_on_the_referrers_pages(attack):
    since = attack.mark()

    editor = read_page(attack, "referrer", paths(attack, "xss")["editor"])
    notifications = read_page(attack, "referrer", "/reports/notifications/")

    assert_inert(editor)
    assert live_markup(notifications) == []
    assert REPORT_READ in event_types(attack, since, "referrer")


def test_it_shows_hostile_names_and_paths_inert_on_the_helpdesk_audit_page(attack):
    # The trail itself stores what attackers type: a user name at sign-in,
    # a "UID" in a URL. The helpdesk page must not run either.
    attack.browser("referrer").get("/viewer/studies/<img src=x onerror=alert('uid')>/")
    since = attack.mark()

    page = read_page(attack, "helpdesk", "/helpdesk/audit/?event_type=110")

    assert "<img src=x onerror=alert('uid')>" not in page
    assert "&lt;img src=x onerror=alert(&#x27;uid&#x27;)&gt;" in page
    assert AUDIT_SEARCHED in event_types(attack, since, "helpdesk")


def test_it_sends_hostile_text_as_json_data_from_the_api_and_dicomweb(attack):
    since = attack.mark()
    xss = attack.studies["xss"]

    report = attack.api("author", "GET", paths(attack, "xss")["report"])
    metadata = attack.api(
        "author",
        "GET",
        f"/dicomweb/studies/{xss['study']}/series/{xss['series']}/metadata",
    )

    assert report.headers["Content-Type"].startswith("application/json")
    assert metadata.headers["Content-Type"].startswith("application/dicom+json")
    for answer in (report, metadata):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert report.json()["text"] == attack.report_text  # data, exactly as written
    described = json.dumps(metadata.json())
    assert json.dumps(XSS_STUDY)[1:-1] in described
    assert json.dumps(XSS_SERIES)[1:-1] in described
    assert {REPORT_READ, 221} <= set(event_types(attack, since, "author"))


def test_it_sends_hostile_text_over_the_websocket_as_json_data(attack):
    since = attack.mark()

    code, message = websocket_open(
        attack,
        f"/ws/studies/{attack.studies['xss']['study']}/report/",
        {"Authorization": f"Bearer {attack.people['author'].token}"},
    )

    assert code == 0
    state = json.loads(message)
    assert state["type"] == "report"
    assert state["text"] == attack.report_text
    assert REPORT_READ in event_types(attack, since, "author")


def test_it_prints_hostile_report_text_in_the_pdf_and_fetches_nothing(attack):
    since = attack.mark()

    answer = attack.api("author", "GET", paths(attack, "xss")["report"] + ".pdf")

    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/pdf"
    assert answer.content.startswith(b"%PDF")
    for action in (b"/JavaScript", b"/JS ", b"/Launch", b"/URI"):
        assert action not in answer.content
    assert attack.probe.requests == []  # the <img> in the text was not loaded
    pages = pypdf.PdfReader(io.BytesIO(answer.content)).pages
    text = "".join(page.extract_text() for page in pages).replace("\n", "")
    assert "<script>alert('report')</script>" in text
    assert REPORT_READ in event_types(attack, since, "author")


def test_it_would_block_an_inline_script_on_every_page_that_shows_hostile_text(attack):
    pages = [
        "/",
        paths(attack, "xss")["viewer"],
        paths(attack, "xss")["editor"],
        paths(attack, "xss")["editor"] + "versions/",
    ]
    since = attack.mark()

    policies = [
        attack.browser("reader").get(p).headers["Content-Security-Policy"]
        for p in pages
    ]

    for policy in policies:
        script_src = re.search(r"script-src ([^;]*)", policy)
        assert script_src is not None, policy
        assert script_src.group(1).split() == ["'self'"]
        assert "frame-ancestors 'none'" in policy
        assert "object-src 'none'" in policy
    assert STUDY_OPENED in event_types(attack, since, "reader2")
