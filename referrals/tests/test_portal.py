"""The referrer portal: exactly the shared studies, issued reports only, audited."""

import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from conftest import current_totp, tenant_client
from pacs.access import studies_for
from pacs.models import Study
from referrals.tests.conftest import MakeStudy, first_instance
from reporting.models import Notification, NotificationKind, StudyReferral
from reporting.tests.helpers import post, put
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def gp(tenant_a: Tenant, referrer: User, shared: Study) -> Client:
    return tenant_client(tenant_a, referrer)


def listed(response: Any) -> list[str]:
    return re.findall(r'<tr data-study-uid="([^"]+)"', response.content.decode())


def issue(client: Client, study: Study, text: str = "Small nodule, left apex.") -> None:
    assert put(client, study, "", {"text": text}).status_code == 200
    assert post(client, study, "/preliminary").status_code == 200


def cite_first_frame(client: Client, study: Study) -> None:
    instance = first_instance(study)
    body = {
        "series_instance_uid": instance.series.series_instance_uid,
        "sop_instance_uid": instance.sop_instance_uid,
        "frame": 1,
        "window_center": 40,
        "window_width": 400,
    }
    assert post(client, study, "/images", body).status_code == 200


def denials(user: User, object_type: str) -> int:
    return AuditEvent.objects.filter(
        event_type=EventType.ACCESS_DENIED,
        actor_username=user.username,
        object_type=object_type,
    ).count()


# --- The list ------------------------------------------------------------------


def test_it_lists_exactly_the_studies_shared_with_the_referrer(
    gp: Client, referrer: User, shared: Study, unshared: Study
) -> None:
    response = gp.get("/referrals/")

    assert response.status_code == 200
    assert listed(response) == [shared.study_instance_uid]
    assert list(studies_for(referrer)) == [shared]
    assert "Stranger" not in response.content.decode()
    assert AuditEvent.objects.filter(
        event_type=EventType.WORKLIST_SEARCHED, actor_username=referrer.username
    ).exists()


def test_it_sends_the_referrer_from_the_home_page_to_the_portal(gp: Client) -> None:
    response = gp.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/referrals/"


def test_it_puts_an_unacknowledged_critical_finding_first(
    gp: Client, client_a: Client, referrer: User, make_study: MakeStudy, shared: Study
) -> None:
    newer = make_study("GP-3", "Peters^Bob", "CT head")
    newer.study_date = shared.study_date.replace(year=shared.study_date.year + 1)
    newer.save()
    StudyReferral.objects.create(study=newer, referrer=referrer)
    issue(client_a, shared)
    post(client_a, shared, "/critical")

    response = gp.get("/referrals/")

    assert listed(response) == [shared.study_instance_uid, newer.study_instance_uid]
    assert "Critical finding" in response.content.decode()


def test_it_finds_a_study_by_patient_name_or_id(
    gp: Client, referrer: User, make_study: MakeStudy, shared: Study
) -> None:
    other = make_study("GP-4", "Peters^Bob", "CT head")
    StudyReferral.objects.create(study=other, referrer=referrer)

    by_name = gp.get("/referrals/", {"q": "eva jansen"})
    by_id = gp.get("/referrals/", {"q": "GP-4"})

    assert listed(by_name) == [shared.study_instance_uid]
    assert listed(by_id) == [other.study_instance_uid]


def test_it_refuses_the_portal_to_a_radiologist(client_a: Client) -> None:
    assert client_a.get("/referrals/").status_code == 404


# --- A study: the report as issued, never a draft ----------------------------------


def test_it_marks_a_preliminary_report_as_preliminary(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    issue(client_a, shared)

    page = gp.get(f"/referrals/studies/{shared.study_instance_uid}/").content.decode()

    assert "Small nodule, left apex." in page
    assert 'id="preliminary-note"' in page
    assert "not yet signed" in page
    events = AuditEvent.objects.filter(actor_username=referrer.username)
    assert events.filter(event_type=EventType.STUDY_OPENED).exists()
    assert events.filter(event_type=EventType.REPORT_READ).exists()


def test_it_shows_the_preliminary_text_as_issued_until_issued_again(
    gp: Client, client_a: Client, shared: Study
) -> None:
    path = f"/referrals/studies/{shared.study_instance_uid}/"
    issue(client_a, shared)
    put(client_a, shared, "", {"text": "DRAFT-SECRET-AFTER-PRELIM"})

    edited = gp.get(path).content.decode()
    issue(client_a, shared, "Small nodule, left apex, 4 mm.")
    reissued = gp.get(path).content.decode()

    assert "Small nodule, left apex." in edited
    assert "DRAFT-SECRET" not in edited
    assert "Small nodule, left apex, 4 mm." in reissued


def test_it_never_shows_a_draft(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    put(client_a, shared, "", {"text": "Draft: maybe a nodule?"})

    page = gp.get(f"/referrals/studies/{shared.study_instance_uid}/").content.decode()
    api = gp.get(f"/api/studies/{shared.study_instance_uid}/report")

    assert "maybe a nodule" not in page
    assert "Not reported yet" in page
    assert api.status_code == 404
    assert not AuditEvent.objects.filter(
        event_type=EventType.REPORT_READ, actor_username=referrer.username
    ).exists()


def test_it_shows_a_signed_report_without_its_draft_addendum(
    gp: Client, client_a: Client, shared: Study
) -> None:
    put(client_a, shared, "", {"text": "No acute abnormality."})
    assert post(client_a, shared, "/sign", {"otp": current_totp()}).status_code == 200
    assert (
        put(
            client_a, shared, "/addendum", {"text": "Unsigned second look."}
        ).status_code
        == 200
    )

    page = gp.get(f"/referrals/studies/{shared.study_instance_uid}/").content.decode()

    assert "No acute abnormality." in page
    assert "Signed by" in page
    assert "Unsigned second look." not in page
    assert 'id="preliminary-note"' not in page


def test_it_renders_a_cited_key_image_at_its_window_and_links_the_viewer(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    put(client_a, shared, "", {"text": "See image 1."})
    cite_first_frame(client_a, shared)
    post(client_a, shared, "/preliminary")
    base = f"/referrals/studies/{shared.study_instance_uid}/"

    page = gp.get(base).content.decode()
    image = gp.get(f"{base}key-images/1.png")

    assert f'src="{base}key-images/1.png"' in page
    assert "wc=40&amp;ww=400" in page
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert image["X-Window-Center"] == "40" and image["X-Window-Width"] == "400"
    assert AuditEvent.objects.filter(
        event_type=EventType.FRAMES_VIEWED, actor_username=referrer.username
    ).exists()


def test_it_hides_the_key_images_of_a_draft(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    put(client_a, shared, "", {"text": "See image 1."})
    cite_first_frame(client_a, shared)

    response = gp.get(
        f"/referrals/studies/{shared.study_instance_uid}/key-images/1.png"
    )

    assert response.status_code == 404
    assert denials(referrer, "key_image") == 1


def test_it_shows_a_key_image_cited_after_issuing_only_once_issued_again(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    base = f"/referrals/studies/{shared.study_instance_uid}/"
    issue(client_a, shared)
    put(client_a, shared, "", {"text": "Small nodule, left apex (image 1)."})
    cite_first_frame(client_a, shared)

    before = gp.get(base).content.decode()
    hidden = gp.get(f"{base}key-images/1.png")
    post(client_a, shared, "/preliminary")
    after = gp.get(base).content.decode()

    assert "key-images/1.png" not in before and hidden.status_code == 404
    assert denials(referrer, "key_image") == 1
    assert f'src="{base}key-images/1.png"' in after
    assert gp.get(f"{base}key-images/1.png").status_code == 200


# --- An unshared study: 404 and an audit record, whatever is asked for -------------


def unshared_urls(study: Study) -> dict[str, str]:
    instance = first_instance(study)
    uid, series = study.study_instance_uid, instance.series.series_instance_uid
    sop = instance.sop_instance_uid
    return {
        "study": f"/referrals/studies/{uid}/",
        "key_image": f"/referrals/studies/{uid}/key-images/1.png",
        "report": f"/api/studies/{uid}/report",
        "viewer": f"/viewer/studies/{uid}/",
        "series": f"/viewer/studies/{uid}/series/{series}/",
        "frame": f"/viewer/studies/{uid}/series/{series}/instances/{sop}/frames/1.png",
        "wado": f"/dicomweb/studies/{uid}/series/{series}/instances/{sop}/metadata",
    }


@pytest.mark.parametrize(
    ("what", "object_type"),
    [
        ("study", "study"),
        ("key_image", "study"),
        ("report", "study"),
        ("viewer", "study"),
        ("series", "series"),
        ("frame", "instance"),
        ("wado", "instance"),
    ],
)
def test_it_answers_404_and_audits_an_unshared_studys(
    tenant_a: Tenant,
    gp: Client,
    client_a: Client,
    referrer: User,
    unshared: Study,
    what: str,
    object_type: str,
) -> None:
    put(client_a, unshared, "", {"text": "See image 1."})
    cite_first_frame(client_a, unshared)
    post(client_a, unshared, "/preliminary")
    client = mark_reauthenticated(gp, tenant_a) if what == "wado" else gp

    response = client.get(unshared_urls(unshared)[what])

    assert response.status_code == 404
    assert denials(referrer, object_type) == 1


# --- The shared study's images: the viewer, simplified, and WADO -------------------


def test_it_opens_the_viewer_in_the_simplified_mode(gp: Client, shared: Study) -> None:
    page = gp.get(f"/viewer/studies/{shared.study_instance_uid}/").content.decode()

    assert 'data-mode="simple"' in page
    assert 'data-tool="scroll"' in page and 'data-tool="zoom"' in page
    assert 'data-preset="auto"' in page
    for absent in ('data-tool="length"', 'data-tool="ellipse"', 'id="key-toggle"'):
        assert absent not in page
    assert f"/referrals/studies/{shared.study_instance_uid}/" in page


def test_it_serves_the_shared_studys_frames_and_wado(
    tenant_a: Tenant, gp: Client, referrer: User, shared: Study
) -> None:
    urls = unshared_urls(shared)

    assert gp.get(urls["series"]).status_code == 200
    assert gp.get(urls["frame"]).status_code == 200
    assert mark_reauthenticated(gp, tenant_a).get(urls["wado"]).status_code == 200
    assert AuditEvent.objects.filter(
        event_type=EventType.FRAMES_VIEWED, actor_username=referrer.username
    ).exists()


def test_it_refuses_a_referrers_measurement_and_key_image_mark(
    gp: Client, referrer: User, shared: Study
) -> None:
    frame = unshared_urls(shared)["frame"].removesuffix(".png")
    body = {"kind": "length", "points": [[1, 1], [20, 20]]}

    measured = gp.post(f"{frame}/annotations/", body, content_type="application/json")
    marked = gp.put(f"{frame}/key")

    assert measured.status_code == 403 and marked.status_code == 403
    assert (
        AuditEvent.objects.filter(
            event_type=EventType.ACCESS_DENIED,
            actor_username=referrer.username,
            detail__reason="read-only",
        ).count()
        == 2
    )


# --- Notices --------------------------------------------------------------------


def test_it_notifies_the_referrer_of_a_preliminary_and_a_signed_report(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    issue(client_a, shared)
    assert post(client_a, shared, "/sign", {"otp": current_totp()}).status_code == 200

    kinds = list(
        Notification.objects.filter(recipient=referrer).values_list("kind", flat=True)
    )
    notices = gp.get("/referrals/notifications/").content.decode()

    assert sorted(kinds) == [
        NotificationKind.REPORT_PRELIMINARY,
        NotificationKind.REPORT_SIGNED,
    ]
    assert "Preliminary report" in notices and "Signed report" in notices
    assert 'data-count="2"' in notices


def test_it_clears_the_unread_badge_when_the_study_is_opened(
    gp: Client, client_a: Client, shared: Study
) -> None:
    issue(client_a, shared)

    gp.get(f"/referrals/studies/{shared.study_instance_uid}/")

    assert 'data-count="0"' in gp.get("/referrals/").content.decode()


def test_it_acknowledges_a_critical_finding_and_comes_back_to_the_study(
    gp: Client, client_a: Client, referrer: User, shared: Study
) -> None:
    issue(client_a, shared)
    post(client_a, shared, "/critical")
    study_page = f"/referrals/studies/{shared.study_instance_uid}/"
    assert 'id="acknowledge"' in gp.get(study_page).content.decode()

    response = gp.post(
        f"/reports/studies/{shared.study_instance_uid}/acknowledge/",
        {"next": study_page},
    )

    assert response.status_code == 302 and response["Location"] == study_page
    critical = Notification.objects.get(kind=NotificationKind.CRITICAL_FINDING)
    assert critical.acknowledged_by == referrer
    assert "acknowledged by" in gp.get(study_page).content.decode()


def test_it_never_sends_the_acknowledgement_elsewhere(
    gp: Client, client_a: Client, shared: Study
) -> None:
    issue(client_a, shared)
    post(client_a, shared, "/critical")

    response = gp.post(
        f"/reports/studies/{shared.study_instance_uid}/acknowledge/",
        {"next": "https://evil.example/"},
    )

    assert response["Location"] == "/reports/notifications/"
