"""One running Nimbus for the attack tests (tests/security/test_attacks_*.py).

The whole product as real processes (Daphne, the DICOM listener, a Celery
worker), started once for the session, with a second tenant ("rival") and
one person per role: the attacks are made as a hostile user would make them,
over HTTP, websockets and DICOM associations, and each test reads the
tenant's audit table to see that the attempt was recorded.

Each person has a TOTP secret of their own: django-otp refuses a code of a
time step already used by that device, so personas that share no device
sign in without waiting for the next step.
"""

import base64
import http.server
import json
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pydicom
import pytest
import requests
from django_otp.oath import totp
from pydicom.uid import generate_uid

from tests.e2e.test_bad_input import storescu
from tests.support.ris import RisListener
from tests.support.stack import PASSWORD, Stack, running_stack, wait_for

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "dicom"
CT_SMALL = DATA / "pydicom" / "CT_small.dcm"
RIVAL_SCHEMA, RIVAL_HOST, RIVAL_AE = "rival", "rival.localhost", "NIMBUS_RIVAL"
# Instances the listener takes, decoded or inflated: small enough that the
# decompression-bomb test needs only a little CPU to cross it.
MAX_INSTANCE_MB = 64

# Payloads for stored cross-site scripting: a script element, an attribute
# break-out with an event handler, and a break-out of a <textarea>.
XSS_PATIENT = '<script>alert("pn")</script>^"><img src=x onerror=alert(1)>'
XSS_STUDY = '</textarea><script>alert("study")</script>'
XSS_SERIES = '"><img src=x onerror=alert("series")>'
XSS_REPORT = (
    "Findings </textarea><script>alert('report')</script>\n"
    "\"><img src=x onerror=alert('report')> <b onmouseover=alert(1)>x</b>"
)
XSS_ADDENDUM = "Addendum <svg onload=alert('addendum')></svg> </script><script>x()"


@dataclass
class Persona:
    schema: str
    username: str
    role: str
    secret: str
    token: str = ""
    last_step: int = -1

    def otp(self) -> str:
        """A code from a time step this person's device has not used yet."""
        while int(time.time()) // 30 <= self.last_step:
            time.sleep(0.5)
        self.last_step = int(time.time()) // 30
        return f"{totp(base64.b32decode(self.secret)):06d}"


def _secret(number: int) -> str:
    return base64.b32encode(f"nimbus-attack-{number:06d}".encode()).decode()


PERSONAS = {
    "author": Persona("e2e", "author", "radiologist", _secret(1)),
    "reader": Persona("e2e", "reader2", "radiologist", _secret(2)),
    "colleague": Persona("e2e", "colleague", "radiologist", _secret(3)),
    "referrer": Persona("e2e", "referrer", "referrer", _secret(4)),
    "helpdesk": Persona("e2e", "helpdesk", "helpdesk", _secret(5)),
    "victim": Persona("e2e", "victim", "radiologist", _secret(6)),
    "rival": Persona(RIVAL_SCHEMA, "rival", "radiologist", _secret(7)),
    "rival_referrer": Persona(RIVAL_SCHEMA, "rival.ref", "referrer", _secret(8)),
    "fixated": Persona("e2e", "fixated", "radiologist", _secret(9)),
}

SETUP_SCRIPT = """
from django_tenants.utils import schema_context
from accounts.actions import do_create_user, do_issue_api_token
from accounts.models import Role
from tenants.actions import TenantSpec, do_create_tenant
do_create_tenant(TenantSpec({schema!r}, "Rival Hospital", ({host!r},), {ae!r}))
tokens = {{}}
for key, (schema, username, role, secret) in {people!r}.items():
    with schema_context(schema):
        user, _ = do_create_user(username, Role(role), {password!r}, secret)
        tokens[key] = do_issue_api_token(user, "attack tests")
print("TOKENS=" + json.dumps(tokens))
"""


@dataclass
class Attack:
    """The running stack, its people, and what the session stored."""

    stack: Stack
    people: dict[str, Persona]
    studies: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    browsers: dict[str, "Browser"] = field(default_factory=dict)
    probe: "Probe | None" = None
    report_text: str = ""

    def sql(self, schema: str, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.stack.env["DATABASE_URL"], autocommit=True) as conn:
            conn.execute(f"SET search_path TO {schema}, public")
            cursor = conn.execute(query, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def mark(self, schema: str = "e2e") -> int:
        """The newest audit record's id: records after it are the attempt's."""
        return int(
            self.sql(schema, "SELECT coalesce(max(id), 0) FROM audit_auditevent")[0][0]
        )

    def events(
        self, since: int, schema: str = "e2e", *, wait: float = 0
    ) -> list[tuple[int, str, str, str, str]]:
        """(event_type, outcome, actor, object_type, object_id) recorded after ``since``."""
        query = (
            "SELECT event_type, outcome, actor_username, object_type, object_id"
            " FROM audit_auditevent WHERE id > %s ORDER BY id"
        )
        if wait:
            return wait_for(lambda: self.sql(schema, query, since), wait, "audit")
        return self.sql(schema, query, since)

    def denials(self, since: int, actor: str, schema: str = "e2e") -> list[tuple]:
        return [
            e
            for e in self.events(since, schema)
            if e[0] == 110 and e[1] == "failure" and e[2] == actor
        ]

    def browser(self, key: str) -> "Browser":
        """A signed-in browser session of the persona ``key`` (made once)."""
        if key not in self.browsers:
            person = self.people[key]
            host = RIVAL_HOST if person.schema == RIVAL_SCHEMA else self.stack.host
            browser = Browser(self.stack, host)
            browser.sign_in(person)
            self.browsers[key] = browser
        return self.browsers[key]

    def api(
        self,
        key: str,
        method: str,
        path: str,
        *,
        host: str | None = None,
        **kwargs: object,
    ) -> requests.Response:
        """A bearer-token request as the persona ``key``."""
        headers = {"Authorization": f"Bearer {self.people[key].token}"}
        headers.update(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        return Browser(self.stack, host or self.stack.host).request(
            method, path, headers=headers, **kwargs
        )


class Probe(http.server.ThreadingHTTPServer):
    """A web server on loopback that notes every request a renderer makes to it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        probe = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                probe.requests.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/report-probe.png"


class Browser:
    """A cookie-keeping HTTP client that talks to 127.0.0.1 with a tenant's Host."""

    def __init__(self, stack: Stack, host: str) -> None:
        self.stack = stack
        self.host = host
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.stack.web_port}{path}"

    def request(self, method: str, path: str, **kwargs: object) -> requests.Response:
        headers = {"Host": f"{self.host}:{self.stack.web_port}"}
        headers.update(kwargs.pop("headers", {}) or {})  # type: ignore[arg-type]
        return self.session.request(
            method,
            self.url(path),
            headers=headers,
            allow_redirects=False,
            timeout=60,
            **kwargs,  # type: ignore[arg-type]
        )

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.request("GET", path, **kwargs)

    @property
    def csrf(self) -> str:
        return self.session.cookies.get("csrftoken", "")

    def write(self, method: str, path: str, body: object = None) -> requests.Response:
        """A JSON write the way the pages' scripts send it: with the CSRF header."""
        return self.request(
            method,
            path,
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", "X-CSRFToken": self.csrf},
        )

    def sign_in(
        self, person: Persona, password: str = PASSWORD, otp: str = ""
    ) -> requests.Response:
        form = self.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:300]
        return self.request(
            "POST",
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": person.username,
                "password": password,
                "otp_token": otp or person.otp(),
            },
        )


@pytest.fixture(scope="session")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    ris, probe = RisListener().start(), Probe()
    previous = os.environ.get("NIMBUS_DICOM_MAX_INSTANCE_MB")
    os.environ["NIMBUS_DICOM_MAX_INSTANCE_MB"] = str(MAX_INSTANCE_MB)
    try:
        with running_stack(tmp_path_factory.mktemp("attack"), ris.port) as stack:
            people = {k: Persona(**vars(p)) for k, p in PERSONAS.items()}
            _create_people(stack, people)
            attack = Attack(stack, people, probe=probe)
            _store_studies(attack, tmp_path_factory.mktemp("studies"))
            _write_reports(attack)
            yield attack
    finally:
        if previous is None:
            os.environ.pop("NIMBUS_DICOM_MAX_INSTANCE_MB", None)
        else:
            os.environ["NIMBUS_DICOM_MAX_INSTANCE_MB"] = previous
        ris.stop()
        probe.shutdown()


def _create_people(stack: Stack, people: dict[str, Persona]) -> None:
    """The rival tenant and every persona, in one manage.py process (fast)."""
    script = SETUP_SCRIPT.format(
        schema=RIVAL_SCHEMA,
        host=RIVAL_HOST,
        ae=RIVAL_AE,
        password=PASSWORD,
        people={k: (p.schema, p.username, p.role, p.secret) for k, p in people.items()},
    )
    output = stack.manage("shell", "-c", "import json\n" + script)
    tokens = json.loads(output.rsplit("TOKENS=", 1)[1])
    for key, token in tokens.items():
        people[key].token = token


def dicom_copy(
    folder: Path, name: str, **attributes: object
) -> tuple[Path, pydicom.Dataset]:
    """CT_small as a new study, series and instance, with ``attributes`` set."""
    ds = pydicom.dcmread(CT_SMALL)
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, ds


def _store_studies(attack: Attack, folder: Path) -> None:
    """The hostile study (script in its text), an unshared one, and the rival's."""
    made = {
        "xss": dicom_copy(
            folder,
            "xss",
            PatientName=XSS_PATIENT,
            PatientID="ATTACK-XSS-1",
            StudyDescription=XSS_STUDY,
            SeriesDescription=XSS_SERIES,
            AccessionNumber="ACC-XSS",
        ),
        "unshared": dicom_copy(folder, "unshared", PatientID="ATTACK-PLAIN-2"),
        "rival": dicom_copy(folder, "rival", PatientID="RIVAL-3"),
    }
    for key, (path, _ds) in made.items():
        title = RIVAL_AE if key == "rival" else attack.stack.ae_title
        result = storescu(attack.stack, title, path)
        assert result.returncode == 0, result.stderr
    for key, (_path, ds) in made.items():
        schema = RIVAL_SCHEMA if key == "rival" else "e2e"
        wait_for(
            lambda schema=schema, sop=str(ds.SOPInstanceUID): attack.sql(
                schema, "SELECT 1 FROM pacs_instance WHERE sop_instance_uid = %s", sop
            ),
            what=f"the {key} study indexed",
        )
        attack.studies[key] = {
            "study": str(ds.StudyInstanceUID),
            "series": str(ds.SeriesInstanceUID),
            "sop": str(ds.SOPInstanceUID),
        }


def _write_reports(attack: Attack) -> None:
    """The hostile study's report: signed, with an addendum, a critical finding,
    a key image and an annotation; shared with the referrer."""
    xss = attack.studies["xss"]
    report = f"/api/studies/{xss['study']}/report"
    referrer_id = attack.sql(
        "e2e", "SELECT id FROM accounts_user WHERE username = 'referrer'"
    )
    study_id = attack.sql(
        "e2e", "SELECT id FROM pacs_study WHERE study_instance_uid = %s", xss["study"]
    )
    attack.sql(
        "e2e",
        "INSERT INTO reporting_studyreferral (study_id, referrer_id, created_at)"
        " VALUES (%s, %s, now())",
        study_id[0][0],
        referrer_id[0][0],
    )
    # WeasyPrint would fetch this image if the report's text became markup.
    attack.report_text = f'{XSS_REPORT}\n<img src="{attack.probe.url}">'
    for method, path, body in (
        ("PUT", report, {"text": "First draft"}),
        ("PUT", report, {"text": attack.report_text}),
        ("POST", f"{report}/sign", {"otp": attack.people["author"].otp()}),
        ("POST", f"{report}/critical", None),
        ("PUT", f"{report}/addendum", {"text": XSS_ADDENDUM}),
    ):
        answer = attack.api("author", method, path, json=body)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])

    reader = attack.browser("reader")
    frame = (
        f"/viewer/studies/{xss['study']}/series/{xss['series']}"
        f"/instances/{xss['sop']}/frames/1"
    )
    marked = reader.write("PUT", f"{frame}/key")
    assert marked.status_code in (200, 201), marked.text[:300]
    drawn = reader.write(
        "POST",
        f"{frame}/annotations/",
        {"kind": "length", "points": [[1, 1], [20, 20]]},
    )
    assert drawn.status_code == 201, drawn.text[:300]
    attack.ids["annotation"] = int(drawn.json()["id"])


# The pieces of the payloads that would run if a page let them through as markup.
LIVE_MARKUP = (
    '<script>alert("pn")',
    "<img src=x onerror=alert(1)>",
    '</textarea><script>alert("study")',
    '<img src=x onerror=alert("series")>',
    "</textarea><script>alert('report')",
    "<img src=x onerror=alert('report')>",
    "<b onmouseover=alert(1)>",
    "<svg onload=alert('addendum')>",
    "</script><script>x()",
)


def live_markup(page: str) -> list[str]:
    """The payload pieces found in ``page`` as markup, not as escaped text."""
    return [piece for piece in LIVE_MARKUP if piece in page]


def paths(attack: Attack, key: str) -> dict[str, str]:
    """The per-object routes of one stored study."""
    s = attack.studies[key]
    instance = f"studies/{s['study']}/series/{s['series']}/instances/{s['sop']}"
    return {
        "viewer": f"/viewer/studies/{s['study']}/",
        "series": f"/viewer/studies/{s['study']}/series/{s['series']}/",
        "frame": f"/viewer/{instance}/frames/1",
        "wado": f"/dicomweb/{instance}",
        "report": f"/api/studies/{s['study']}/report",
        "editor": f"/reports/studies/{s['study']}/",
        "key_images": f"/viewer/studies/{s['study']}/key-images/",
        "annotations": f"/viewer/studies/{s['study']}/annotations/",
    }


def websocket_open(
    attack: Attack, path: str, headers: dict[str, str], host: str = ""
) -> tuple[int, bytes]:
    """Open a websocket through Daphne (RFC 6455 handshake, then one frame).

    Returns the HTTP status and body of a refused handshake; after a 101,
    the close code of a first close frame, or 0 and the first text message.
    """
    with socket.create_connection(
        ("127.0.0.1", attack.stack.web_port), timeout=15
    ) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host or attack.stack.host}:{attack.stack.web_port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            return status, data

        def need(size: int) -> None:
            nonlocal data
            while len(data) < size and (more := sock.recv(65536)):
                data += more

        need(2)
        opcode, length, start = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            need(4)
            length, start = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            need(10)
            length, start = struct.unpack("!Q", data[2:10])[0], 10
        need(start + length)
        payload = data[start : start + length]
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0]), b""
        return 0, payload
