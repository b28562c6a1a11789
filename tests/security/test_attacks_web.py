"""Attacks on the web application of a running Nimbus: IDOR, hosts, sessions, CSRF.

Every test makes its attempt against the real server (tests/security/
conftest.py starts it once) and checks two things: the refusal the attacker
sees, and the record the attempt left in the audit trail of the tenant it
was made on. tests/security/test_tenant_isolation.py covers the same walls
through Django's test client; here the people are the roles of DESIGN.md
and the traffic goes through Daphne.
"""

import json
import re

from accounts.session_store import tenant_tag
from tests.security.conftest import (
    RIVAL_HOST,
    RIVAL_SCHEMA,
    Attack,
    Browser,
    Persona,
    dicom_copy,
    paths,
    storescu,
    websocket_open,
)
from tests.support.stack import PASSWORD, wait_for

ACCESS_DENIED, LOGIN_FAILED, LOCKED_OUT = 110, 101, 190


def assert_denied(
    attack: Attack, since: int, actor: str, object_type: str, schema: str = "e2e"
) -> None:
    denials = attack.denials(since, actor, schema)
    assert denials, (
        f"no ACCESS_DENIED for {actor} in {schema}: {attack.events(since, schema)}"
    )
    assert object_type in {d[3] for d in denials}, denials


# --- IDOR: each object type, as a referrer, a helpdesk user, the other tenant ----


def test_it_refuses_a_referrer_without_a_share_the_study_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("referrer").get(paths(attack, "unshared")["viewer"])

    assert answer.status_code == 404
    assert_denied(attack, since, "referrer", "study")


def test_it_refuses_a_referrer_without_a_share_the_series_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("referrer").get(paths(attack, "unshared")["series"])

    assert answer.status_code == 404
    assert_denied(attack, since, "referrer", "series")


def test_it_refuses_a_referrer_the_instance_over_wado_rs_and_audits_it(attack):
    since = attack.mark()

    answer = attack.api("referrer", "GET", paths(attack, "unshared")["wado"])

    assert answer.status_code == 404
    assert b"DICM" not in answer.content
    assert_denied(attack, since, "referrer", "instance")


def test_it_refuses_a_referrer_a_frame_of_a_study_not_shared_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("referrer").get(paths(attack, "unshared")["frame"] + ".png")

    assert answer.status_code == 404
    assert not answer.content.startswith(b"\x89PNG")
    assert_denied(attack, since, "referrer", "instance")


def test_it_refuses_a_referrer_the_report_of_a_study_not_shared_and_audits_it(attack):
    since = attack.mark()

    answer = attack.api("referrer", "GET", paths(attack, "unshared")["report"])

    assert answer.status_code == 404
    assert_denied(attack, since, "referrer", "study")


def test_it_refuses_a_referrer_with_a_share_the_draft_versions_and_audits_it(attack):
    since = attack.mark()

    answer = attack.api(
        "referrer", "GET", paths(attack, "xss")["report"] + "/versions/1"
    )

    assert answer.status_code == 404
    assert "First draft" not in answer.text
    assert_denied(attack, since, "referrer", "report_version")


def test_it_shows_a_referrer_the_preliminary_report_as_issued_not_a_later_edit(
    attack, tmp_path
):
    # Security review finding L2: an unsigned edit after "issue as
    # preliminary" reached the referrer at once.
    path, ds = dicom_copy(tmp_path, "prelim", PatientID="ATTACK-PRELIM-4")
    assert storescu(attack.stack, attack.stack.ae_title, path).returncode == 0
    uid = str(ds.StudyInstanceUID)
    wait_for(
        lambda: attack.sql(
            "e2e", "SELECT 1 FROM pacs_study WHERE study_instance_uid = %s", uid
        ),
        what="the preliminary study indexed",
    )
    attack.sql(
        "e2e",
        "INSERT INTO reporting_studyreferral (study_id, referrer_id, created_at)"
        " SELECT s.id, u.id, now() FROM pacs_study s, accounts_user u"
        " WHERE s.study_instance_uid = %s AND u.username = 'referrer'",
        uid,
    )
    report = f"/api/studies/{uid}/report"
    for method, suffix, body in (
        ("PUT", "", {"text": "Issued: small effusion."}),
        ("POST", "/preliminary", None),
        ("PUT", "", {"text": "DRAFT-SECRET-AFTER-PRELIM"}),
    ):
        answer = attack.api("author", method, report + suffix, json=body)
        assert answer.status_code == 200, answer.text[:300]

    read = attack.api("referrer", "GET", report)
    fhir = attack.api("referrer", "GET", f"{report}/fhir")

    assert read.status_code == 200 and read.json()["text"] == "Issued: small effusion."
    assert read.json()["version"] == 2
    assert fhir.status_code == 200
    for answer in (read, fhir):
        assert "DRAFT-SECRET" not in answer.text
    live = attack.api("author", "GET", report).json()
    assert live["text"] == "DRAFT-SECRET-AFTER-PRELIM" and live["unissued_changes"]


def test_it_refuses_the_other_tenants_radiologist_a_report_version_and_audits_it(
    attack,
):
    since, theirs = attack.mark(RIVAL_SCHEMA), attack.mark()

    answer = attack.api(
        "rival", "GET", paths(attack, "xss")["report"] + "/versions/2", host=RIVAL_HOST
    )

    assert answer.status_code == 404
    assert "onerror" not in answer.text
    assert_denied(attack, since, "rival", "study", RIVAL_SCHEMA)
    assert attack.events(theirs) == []


def test_it_refuses_the_other_tenants_radiologist_the_addendum_and_audits_it(attack):
    since = attack.mark(RIVAL_SCHEMA)
    addendum = paths(attack, "xss")["report"] + "/addendum"

    answer = attack.api(
        "rival", "PUT", addendum, host=RIVAL_HOST, json={"text": "rival was here"}
    )

    assert answer.status_code == 404
    texts = attack.sql("e2e", "SELECT text FROM reporting_addendum")
    assert all("rival was here" not in text for (text,) in texts)
    assert_denied(attack, since, "rival", "study", RIVAL_SCHEMA)


def test_it_refuses_a_radiologist_a_colleagues_annotation_and_audits_it(attack):
    since = attack.mark()
    annotation = f"{paths(attack, 'xss')['annotations']}{attack.ids['annotation']}/"

    moved = attack.browser("colleague").write(
        "PATCH", annotation, {"points": [[100, 100], [200, 200]]}
    )
    deleted = attack.browser("colleague").write("DELETE", annotation)

    assert (moved.status_code, deleted.status_code) == (404, 404)
    [(points,)] = attack.sql(
        "e2e",
        "SELECT points FROM viewer_annotation WHERE id = %s",
        attack.ids["annotation"],
    )
    assert points == [[1.0, 1.0], [20.0, 20.0]]
    assert len(attack.denials(since, "colleague")) == 2
    assert_denied(attack, since, "colleague", "annotation")


def test_it_refuses_the_other_tenants_radiologist_an_annotation_and_audits_it(attack):
    since = attack.mark(RIVAL_SCHEMA)
    annotation = f"{paths(attack, 'xss')['annotations']}{attack.ids['annotation']}/"

    answer = attack.browser("rival").write("DELETE", annotation)

    assert answer.status_code == 404
    assert attack.sql(
        "e2e", "SELECT 1 FROM viewer_annotation WHERE id = %s", attack.ids["annotation"]
    )
    assert_denied(attack, since, "rival", "study", RIVAL_SCHEMA)


def test_it_refuses_a_helpdesk_user_the_key_images_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("helpdesk").get(paths(attack, "xss")["key_images"])

    assert answer.status_code == 404
    assert "sop_instance_uid" not in answer.text
    assert_denied(attack, since, "helpdesk", "study")


def test_it_refuses_a_referrer_to_mark_a_key_image_and_audits_it(attack):
    since = attack.mark()
    before = attack.sql("e2e", "SELECT count(*) FROM viewer_keyimage")

    answer = attack.browser("referrer").write(
        "PUT", paths(attack, "unshared")["frame"] + "/key"
    )

    assert answer.status_code == 404
    assert attack.sql("e2e", "SELECT count(*) FROM viewer_keyimage") == before
    assert_denied(attack, since, "referrer", "instance")


def test_it_refuses_a_referrer_to_acknowledge_a_finding_of_a_study_not_shared_and_audits_it(
    attack,
):
    since = attack.mark()

    answer = attack.api(
        "referrer",
        "POST",
        paths(attack, "unshared")["report"] + "/critical/acknowledge",
    )

    assert answer.status_code == 404
    assert_denied(attack, since, "referrer", "study")


def test_it_refuses_the_other_tenants_referrer_the_acknowledgement_and_audits_it(
    attack,
):
    since = attack.mark(RIVAL_SCHEMA)

    answer = attack.api(
        "rival_referrer",
        "POST",
        paths(attack, "xss")["report"] + "/critical/acknowledge",
        host=RIVAL_HOST,
    )

    assert answer.status_code == 404
    assert attack.sql(
        "e2e",
        "SELECT count(*) FROM reporting_notification WHERE acknowledged_at IS NOT NULL",
    ) == [(0,)]
    assert_denied(attack, since, "rival.ref", "study", RIVAL_SCHEMA)


def test_it_refuses_an_api_token_of_the_other_tenant_on_the_report_api_and_audits_it(
    attack,
):
    since = attack.mark()

    answer = attack.api("rival", "GET", paths(attack, "xss")["report"])

    assert answer.status_code == 401
    assert "onerror" not in answer.text
    denials = [e for e in attack.events(since) if e[0] == ACCESS_DENIED]
    assert [(e[1], e[3]) for e in denials] == [("failure", "api")]


def test_it_refuses_an_api_token_of_the_other_tenant_on_dicomweb_and_audits_it(attack):
    since = attack.mark()

    answer = attack.api("rival", "GET", "/dicomweb/studies?PatientID=ATTACK-XSS-1")

    assert answer.status_code == 401
    assert "ATTACK-XSS-1" not in answer.text
    denials = [e for e in attack.events(since) if e[0] == ACCESS_DENIED]
    assert [(e[1], e[3]) for e in denials] == [("failure", "dicomweb")]


def test_it_keeps_every_raw_data_route_behind_a_fresh_one_time_password(attack):
    # The referrer has a share of this study but has not re-entered a code
    # since signing in: the instance itself is refused, and so is each route
    # that would rebuild it (header, pixel data, any other bulk data).
    wado = paths(attack, "xss")["wado"]
    study = wado.split("/series/")[0]
    routes = [
        wado,
        f"{study}/metadata",
        f"{wado.split('/instances/')[0]}/metadata",
        f"{wado}/metadata",
        f"{wado}/frames/1",
        f"{wado}/bulkdata/7FE00010",
    ]
    since = attack.mark()

    answers = [attack.browser("referrer").get(route) for route in routes]

    assert [a.status_code for a in answers] == [403] * len(routes)
    assert all("/accounts/reauthenticate/" in a.text for a in answers)
    assert {a.headers["Content-Type"].split(";")[0] for a in answers} == {"text/plain"}
    assert all(b"DICM" not in a.content for a in answers)
    exports = attack.sql(
        "e2e",
        "SELECT actor_username, study_instance_uid, detail->>'path' FROM"
        " audit_auditevent WHERE id > %s AND event_type = 110"
        " AND object_type = 'export' ORDER BY id",
        since,
    )
    assert exports == [("referrer", attack.studies["xss"]["study"], r) for r in routes]
    reads = [e for e in attack.events(since) if e[0] == 221]
    assert reads == []


def test_it_refuses_a_radiologist_the_audit_search_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("reader").get("/helpdesk/audit/?user=author")

    assert answer.status_code == 403
    assert "author" not in answer.text
    assert_denied(attack, since, "reader2", "audit_trail")


def test_it_refuses_a_referrer_the_audit_export_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("referrer").get("/helpdesk/audit/export.csv")

    assert answer.status_code == 403
    assert "occurred_at" not in answer.text
    assert_denied(attack, since, "referrer", "audit_trail")


def test_it_keeps_a_tenant_helpdesk_search_to_its_own_trail_and_audits_it(attack):
    rival_study = attack.studies["rival"]["study"]
    since = attack.mark()

    answer = attack.browser("helpdesk").get(
        f"/helpdesk/audit/?tenant={RIVAL_SCHEMA}&study_instance_uid={rival_study}"
    )
    export = attack.browser("helpdesk").get(
        f"/helpdesk/audit/export.csv?tenant={RIVAL_SCHEMA}&user=rival"
    )

    assert answer.status_code == 200 and export.status_code in (200, 400)
    assert f">{rival_study}<" not in answer.text  # in the search box, in no row
    assert "RIVAL-3" not in answer.text + export.text
    denials = attack.denials(since, "helpdesk")
    assert [(d[3], d[4]) for d in denials] == [("audit_trail", RIVAL_SCHEMA)] * 2
    assert attack.sql(
        RIVAL_SCHEMA,
        "SELECT count(*) FROM audit_auditevent WHERE event_type IN (600, 601)",
    ) == [(0,)]


def test_it_refuses_a_helpdesk_user_the_report_text_and_audits_it(attack):
    since = attack.mark()

    answer = attack.browser("helpdesk").get(paths(attack, "xss")["report"])

    assert answer.status_code == 404
    assert "Findings" not in answer.text
    assert_denied(attack, since, "helpdesk", "study")


def test_it_refuses_a_helpdesk_user_the_report_pdf_and_audits_it(attack):
    since = attack.mark()

    answer = attack.api("helpdesk", "GET", paths(attack, "xss")["report"] + ".pdf")

    assert answer.status_code == 404
    assert not answer.content.startswith(b"%PDF")
    assert_denied(attack, since, "helpdesk", "study")


# --- Host header and schema confusion ------------------------------------------------


def session_cookie(browser: Browser) -> str:
    return f"sessionid={browser.session.cookies['sessionid']}"


def refused_credentials(attack: Attack, since: int, schema: str = "e2e") -> list[tuple]:
    """(reason, source address, actor) of each refused credential after ``since``."""
    return attack.sql(
        schema,
        "SELECT detail->>'reason', host(source_ip), actor_username"
        " FROM audit_auditevent WHERE id > %s AND event_type = 110"
        " AND object_type = 'session' ORDER BY id",
        since,
    )


def test_it_serves_nothing_to_a_host_outside_every_tenant_and_audits_it(attack):
    since, rival_since = attack.mark(), attack.mark(RIVAL_SCHEMA)
    public_since = attack.mark("public")
    # Sent by hand: a cookie jar offers a cookie only to the host it came from.
    stolen = {"Cookie": session_cookie(attack.browser("reader"))}

    answer = Browser(attack.stack, "evil.localhost").get(
        paths(attack, "xss")["report"], headers=stolen
    )
    scanner = Browser(attack.stack, "evil.localhost").get("/")  # no credential

    assert answer.status_code == 404 and scanner.status_code == 404
    assert "Findings" not in answer.text
    assert attack.events(since) == [] and attack.events(rival_since, RIVAL_SCHEMA) == []
    assert refused_credentials(attack, public_since, "public") == [
        ("unknown host", "127.0.0.1", "")
    ]


def test_it_refuses_the_other_tenants_session_on_our_host_and_audits_it(attack):
    # The rival's own cookie, however our host name is written.
    stolen = {"Cookie": session_cookie(attack.browser("rival"))}
    since, rival_since = attack.mark(), attack.mark(RIVAL_SCHEMA)
    answers = []
    for host in (attack.stack.host, attack.stack.host.upper(), attack.stack.host + "."):
        forged = Browser(attack.stack, host)
        answers.append(forged.get(paths(attack, "xss")["report"], headers=stolen))
        answers.append(forged.get("/", headers=stolen))

    assert [a.status_code for a in answers] == [404] * len(answers)
    assert all("Findings" not in a.text and "ATTACK-" not in a.text for a in answers)
    # One record for the one cookie tried six times within the minute.
    assert refused_credentials(attack, since) == [
        ("session of another host", "127.0.0.1", "")
    ]
    assert attack.events(rival_since, RIVAL_SCHEMA) == []
    # Our own cookie, signed out or expired, is no attack: no record.
    expired = {"Cookie": f"sessionid={tenant_tag('e2e')}{'0' * 32}"}
    assert (
        Browser(attack.stack, attack.stack.host).get("/", headers=expired).status_code
        == 302
    )
    assert len(refused_credentials(attack, since)) == 1


def test_a_host_with_a_trailing_dot_is_its_tenant_and_needs_its_own_sign_in(attack):
    # "e2e.localhost." is "e2e.localhost" (DNS): the same tenant, never
    # another one. The session cookie belongs to the host without the dot,
    # so the request arrives signed out and gets no report.
    dotted = Browser(attack.stack, attack.stack.host + ".")
    dotted.session.cookies = attack.browser("reader").session.cookies

    answer = dotted.get(paths(attack, "xss")["report"])

    assert answer.status_code in (302, 401, 403)
    assert "Findings" not in answer.text


def test_it_reads_an_uppercase_host_as_its_own_tenant_and_refuses_the_others_study(
    attack,
):
    since, rival_since = attack.mark(), attack.mark(RIVAL_SCHEMA)
    shouting = Browser(attack.stack, attack.stack.host.upper())
    shouting.session.cookies = attack.browser("reader").session.cookies

    answer = shouting.get(paths(attack, "rival")["report"])

    assert answer.status_code == 404
    assert_denied(attack, since, "reader2", "study")
    assert attack.events(rival_since, RIVAL_SCHEMA) == []


def test_it_ignores_x_forwarded_host_when_it_picks_the_tenant(attack):
    since, rival_since = attack.mark(), attack.mark(RIVAL_SCHEMA)

    answer = attack.browser("reader").get(
        paths(attack, "rival")["viewer"],
        headers={"X-Forwarded-Host": RIVAL_HOST, "Forwarded": f"host={RIVAL_HOST}"},
    )

    assert answer.status_code == 404
    assert "RIVAL-3" not in answer.text
    assert_denied(attack, since, "reader2", "study")
    assert attack.events(rival_since, RIVAL_SCHEMA) == []


# --- Sessions and sign-in -------------------------------------------------------------


def test_it_replaces_a_planted_session_id_at_sign_in(attack):
    # The attacker sets the victim's session cookie first (a shared computer,
    # a cookie written by a sibling host), hoping to share the session after.
    planted = "fixated" + "0123456789abcdefghijklmnopqrstu"
    victim = Browser(attack.stack, attack.stack.host)
    victim.session.cookies.set("sessionid", planted, domain="127.0.0.1")
    since = attack.mark()

    signed_in = victim.sign_in(attack.people["fixated"])

    assert signed_in.status_code == 302
    assert signed_in.cookies.get("sessionid") not in ("", None, planted)
    replay = Browser(attack.stack, attack.stack.host)
    replay.session.cookies.set("sessionid", planted, domain="127.0.0.1")
    assert replay.get("/").status_code == 302  # the planted id opens nothing
    assert (100, "success", "fixated") in [e[:3] for e in attack.events(since)]


def login_error(page: str) -> str:
    match = re.search(r'class="error"[^>]*>([^<]+)<', page)
    return match.group(1).strip() if match else page[:200]


def test_it_locks_out_a_brute_force_with_the_same_words_and_audits_it(attack):
    since = attack.mark()
    intruder = Browser(attack.stack, attack.stack.host)
    victim = attack.people["victim"]

    wrong = [intruder.sign_in(victim, f"guess-{n}", "000000") for n in range(6)]
    right = intruder.sign_in(victim, PASSWORD)
    nobody = Persona("e2e", "nobody-here", "radiologist", victim.secret)
    unknown = intruder.sign_in(nobody, "guess", "000000")

    assert {w.status_code for w in wrong} == {200}
    assert right.status_code == 200  # still the sign-in page, not a redirect
    assert (
        login_error(right.text)
        == login_error(wrong[0].text)
        == login_error(unknown.text)
    )
    assert intruder.get("/").status_code == 302
    events = [(e[0], e[1]) for e in attack.events(since) if e[2] in ("victim", "")]
    assert events.count((LOGIN_FAILED, "failure")) >= 5
    assert (LOCKED_OUT, "failure") in events


# --- CSRF: a signed-in browser made to post by another site ----------------------------


def csrf_denials(attack: Attack, since: int) -> list[tuple]:
    return [e for e in attack.denials(since, "reader2") if e[3] == "csrf"]


def test_it_refuses_a_report_save_without_a_csrf_token_and_audits_it(attack):
    reader = attack.browser("reader")
    since = attack.mark()

    answer = reader.request(
        "PUT",
        paths(attack, "unshared")["report"],
        json={"text": "forged by another site"},
    )

    assert answer.status_code == 403
    assert attack.sql(
        "e2e", "SELECT count(*) FROM reporting_report WHERE text LIKE %s", "%forged%"
    ) == [(0,)]
    assert csrf_denials(attack, since)


def test_it_refuses_a_report_sign_with_a_wrong_csrf_token_and_audits_it(attack):
    reader = attack.browser("reader")
    since = attack.mark()

    answer = reader.request(
        "POST",
        paths(attack, "unshared")["report"] + "/sign",
        json={"otp": "123456"},
        headers={"X-CSRFToken": "x" * 32},
    )

    assert answer.status_code == 403
    assert 312 not in [e[0] for e in attack.events(since)]
    assert csrf_denials(attack, since)


def test_it_refuses_an_annotation_without_a_csrf_token_and_audits_it(attack):
    reader = attack.browser("reader")
    before = attack.sql("e2e", "SELECT count(*) FROM viewer_annotation")
    since = attack.mark()

    answer = reader.request(
        "POST",
        paths(attack, "xss")["frame"] + "/annotations/",
        data=json.dumps({"kind": "probe", "points": [[3, 3]]}),
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 403
    assert attack.sql("e2e", "SELECT count(*) FROM viewer_annotation") == before
    assert csrf_denials(attack, since)


def test_it_refuses_sign_out_everywhere_without_a_csrf_token_and_audits_it(attack):
    reader = attack.browser("reader")
    since = attack.mark()

    answer = reader.request("POST", "/accounts/sign-out-everywhere/")

    assert answer.status_code == 403
    assert reader.get("/").status_code == 200  # still signed in
    assert 194 not in [e[0] for e in attack.events(since)]
    assert csrf_denials(attack, since)


def test_it_refuses_a_post_from_a_foreign_origin_even_with_the_token_and_audits_it(
    attack,
):
    reader = attack.browser("reader")
    since = attack.mark()

    answer = reader.request(
        "POST",
        paths(attack, "xss")["frame"] + "/annotations/",
        data=json.dumps({"kind": "probe", "points": [[4, 4]]}),
        headers={
            "Content-Type": "application/json",
            "X-CSRFToken": reader.csrf,
            "Origin": "http://evil.example",
        },
    )

    assert answer.status_code == 403
    assert 320 not in [e[0] for e in attack.events(since)]
    assert csrf_denials(attack, since)


# --- Websockets through Daphne ------------------------------------------------------------


def test_it_closes_a_websocket_to_the_other_tenants_report_and_audits_it(attack):
    reader = attack.browser("reader")
    since, rival_since = attack.mark(), attack.mark(RIVAL_SCHEMA)
    cookie = "; ".join(f"{c.name}={c.value}" for c in reader.session.cookies)

    outcome, _ = websocket_open(
        attack,
        f"/ws/studies/{attack.studies['rival']['study']}/report/",
        {
            "Cookie": cookie,
            "Origin": f"http://{attack.stack.host}:{attack.stack.web_port}",
        },
    )

    assert outcome in (403, 4404)
    assert_denied(attack, since, "reader2", "study")
    assert attack.events(rival_since, RIVAL_SCHEMA) == []


def test_it_refuses_our_session_on_the_other_tenants_socket_and_audits_it(attack):
    reader = attack.browser("reader")
    cookie = "; ".join(f"{c.name}={c.value}" for c in reader.session.cookies)
    rival_since = attack.mark(RIVAL_SCHEMA)

    outcome, _ = websocket_open(
        attack,
        f"/ws/studies/{attack.studies['rival']['study']}/report/",
        {"Cookie": cookie, "Origin": f"http://{RIVAL_HOST}:{attack.stack.web_port}"},
        host=RIVAL_HOST,
    )

    assert outcome == 403
    assert refused_credentials(attack, rival_since, RIVAL_SCHEMA) == [
        ("session of another host", "127.0.0.1", "")
    ]


def test_it_refuses_a_socket_from_a_foreign_or_null_origin_and_audits_it(attack):
    reader = attack.browser("reader")
    cookie = "; ".join(f"{c.name}={c.value}" for c in reader.session.cookies)
    report = f"/ws/studies/{attack.studies['xss']['study']}/report/"
    bearer = f"Bearer {attack.people['referrer'].token}"
    since = attack.mark()

    foreign, _ = websocket_open(
        attack, report, {"Cookie": cookie, "Origin": "http://evil.example"}
    )
    null, _ = websocket_open(
        attack, report, {"Authorization": bearer, "Origin": "null"}
    )

    assert (foreign, null) == (403, 403)
    assert (
        refused_credentials(attack, since)
        == [("websocket origin refused", "127.0.0.1", "")] * 2
    )
    assert 210 not in [e[0] for e in attack.events(since)]  # no report read


def test_it_refuses_a_referrer_dictation_on_a_shared_study_and_audits_it(attack):
    # The referrer may read this study and its report, never write to it.
    study = attack.studies["xss"]["study"]
    since = attack.mark()

    outcome, _ = websocket_open(
        attack,
        f"/ws/studies/{study}/dictation/",
        {"Authorization": f"Bearer {attack.people['referrer'].token}"},
    )

    assert outcome in (403, 4403)
    denials = attack.denials(since, "referrer")
    assert [(d[3], d[4]) for d in denials] == [("report", study)]
    assert 311 not in [e[0] for e in attack.events(since)]  # nothing dictated


def test_it_closes_a_referrers_websocket_to_a_report_not_shared_and_audits_it(attack):
    since = attack.mark()

    outcome, _ = websocket_open(
        attack,
        f"/ws/studies/{attack.studies['unshared']['study']}/report/",
        {"Authorization": f"Bearer {attack.people['referrer'].token}"},
    )

    assert outcome in (403, 4404)
    assert_denied(attack, since, "referrer", "study")
