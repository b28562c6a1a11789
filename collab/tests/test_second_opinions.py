"""Second opinions across tenants: exactly the shared study, for the group only,
until revoked or expired, with every step in both tenants' audit trails."""

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from collab.actions import do_record_expired_second_opinions
from collab.models import CollaborationGroup, SecondOpinion, ShareState
from collab.tests.conftest import expire, ingest_twin, request_form
from conftest import make_user, tenant_client
from pacs.models import Instance, Study
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def viewer_url(share: SecondOpinion, uid: str = "") -> str:
    return f"/second-opinions/viewer/{share.key}/studies/{uid or share.study_instance_uid}/"


def frame_url(share: SecondOpinion, study: Study) -> str:
    with tenant_context(study_tenant(study)):
        instance = Instance.objects.select_related("series").get(series__study=study)
        series = instance.series.series_instance_uid
    return (
        f"{viewer_url(share, study.study_instance_uid)}series/{series}/instances/"
        f"{instance.sop_instance_uid}/frames/1.png"
    )


def study_tenant(study: Study) -> Tenant:
    return Tenant.objects.get(schema_name="hospital_a")


def events(
    tenant: Tenant, event_type: EventType, **filters: object
) -> list[AuditEvent]:
    with tenant_context(tenant):
        return list(AuditEvent.objects.filter(event_type=event_type, **filters))


def denied_in(tenant: Tenant, username: str) -> int:
    return len(events(tenant, EventType.ACCESS_DENIED, actor_username=username))


# --- Requesting -------------------------------------------------------------------


def test_it_offers_only_other_tenants_groups(
    client_a: Client, study: Study, neuro: CollaborationGroup, tenant_a: Tenant
) -> None:
    own = CollaborationGroup.objects.create(tenant=tenant_a, name="Our own group")
    response = client_a.get(
        f"/second-opinions/studies/{study.study_instance_uid}/request/"
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "Neuroradiology" in page
    assert own.name not in page


def test_it_records_the_request_in_both_tenants(
    share: SecondOpinion, tenant_a: Tenant, tenant_b: Tenant, study: Study
) -> None:
    assert share.state == ShareState.ACTIVE
    assert share.note == "Subtle bleed?"
    [requested] = events(tenant_a, EventType.SECOND_OPINION_REQUESTED)
    [received] = events(tenant_b, EventType.SECOND_OPINION_RECEIVED)
    assert requested.actor_username == "rad.a"
    assert received.actor_username == "rad.a@hospital_a"
    assert received.actor_id is None
    assert received.study_instance_uid == study.study_instance_uid
    assert received.detail["share"] == share.pk


def test_it_keeps_the_note_and_explains_a_missing_one(
    client_a: Client, study: Study, neuro: CollaborationGroup
) -> None:
    response = client_a.post(
        f"/second-opinions/studies/{study.study_instance_uid}/request/",
        {"group": neuro.pk, "note": "   ", "days": 99},
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Write a note" in page
    assert "Give at most 30 days." in page
    assert not SecondOpinion.objects.exists()


def test_it_refuses_a_request_for_another_tenants_study(
    tenant_b: Tenant, radiologist_b: User, study: Study, neuro: CollaborationGroup
) -> None:
    client = tenant_client(tenant_b, radiologist_b)
    response = client.get(
        f"/second-opinions/studies/{study.study_instance_uid}/request/"
    )

    assert response.status_code == 404
    assert denied_in(tenant_b, "rad.b") == 1


def test_it_refuses_a_referrer_the_request_form(
    tenant_a: Tenant, referrer: User, study: Study
) -> None:
    client = tenant_client(tenant_a, referrer)
    response = client.get(
        f"/second-opinions/studies/{study.study_instance_uid}/request/"
    )

    assert response.status_code == 404
    assert denied_in(tenant_a, "ref.a") == 1


# --- Reading on the receiving side ----------------------------------------------


def test_the_group_sees_the_shared_study_on_its_worklist(
    share: SecondOpinion, reader_b: Client, study: Study
) -> None:
    response = reader_b.get("/")

    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-share="{share.pk}"' in page
    assert "Dupont" in page


def test_the_group_reads_the_study_in_the_viewer(
    share: SecondOpinion,
    reader_b: Client,
    study: Study,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    page = reader_b.get(viewer_url(share))
    frame = reader_b.get(frame_url(share, study))

    assert page.status_code == 200
    assert (
        page["Cache-Control"].startswith("no-store")
        or "no-store" in page["Cache-Control"]
    )
    shared_prefix = f"/second-opinions/viewer/{share.key}/studies/"
    assert shared_prefix in page.content.decode()
    assert (
        "/viewer/studies/" + study.study_instance_uid
        not in page.content.decode().replace(shared_prefix, "")
    )
    assert frame.status_code == 200
    assert frame["Content-Type"] == "image/png"
    assert "no-store" in frame["Cache-Control"]
    for tenant, actor in ((tenant_b, "rad.b"), (tenant_a, "rad.b@hospital_b")):
        assert events(tenant, EventType.STUDY_OPENED, actor_username=actor)
        assert events(tenant, EventType.FRAMES_VIEWED, actor_username=actor)


def test_the_share_opens_the_shared_study_and_nothing_more(
    share: SecondOpinion, reader_b: Client, other_study: Study, tenant_b: Tenant
) -> None:
    response = reader_b.get(viewer_url(share, other_study.study_instance_uid))
    own_viewer = reader_b.get(f"/viewer/studies/{share.study_instance_uid}/")

    assert response.status_code == 404
    assert own_viewer.status_code == 404  # the study is not in B's archive
    with tenant_context(tenant_b):
        assert not Study.objects.filter(
            study_instance_uid=share.study_instance_uid
        ).exists()
    assert denied_in(tenant_b, "rad.b") == 2


@pytest.mark.parametrize("who", ["outsider_b", "referrer_b", "reader_c"])
def test_nobody_outside_the_group_reads_the_shared_study(
    request: pytest.FixtureRequest,
    who: str,
    share: SecondOpinion,
    study: Study,
    tenant_a: Tenant,
) -> None:
    client: Client = request.getfixturevalue(who)

    answers = [
        client.get(viewer_url(share)).status_code,
        client.get(frame_url(share, study)).status_code,
        client.get(f"/second-opinions/{share.key}/").status_code,
        client.post(
            f"/second-opinions/{share.key}/comments/", {"body": "x"}
        ).status_code,
    ]

    assert answers == [404, 404, 404, 404]
    tenant = client.get("/").wsgi_request.tenant  # type: ignore[attr-defined]
    username = client.get("/").wsgi_request.user.username  # type: ignore[attr-defined]
    assert denied_in(tenant, username) == 4
    assert not share.comments.exists()


def test_two_owners_sharing_one_study_uid_each_show_their_own_study(
    share: SecondOpinion,
    reader_b: Client,
    reader_c: Client,
    study: Study,
    neuro: CollaborationGroup,
    tenant_a: Tenant,
    tenant_c: Tenant,
) -> None:
    ingest_twin(tenant_c, study, "Twin^Tom")
    asked = reader_c.post(
        f"/second-opinions/studies/{study.study_instance_uid}/request/",
        request_form(neuro),
    )
    share_c = SecondOpinion.objects.get(owner_tenant=tenant_c)

    page_a = reader_b.get(viewer_url(share)).content.decode()
    page_c = reader_b.get(viewer_url(share_c)).content.decode()

    assert asked.status_code == 302
    assert "Dupont" in page_a and "Twin" not in page_a
    assert f"/second-opinions/{share.key}/" in page_a
    assert "Twin" in page_c and "Dupont" not in page_c
    assert f"/second-opinions/{share_c.key}/" in page_c
    for tenant in (tenant_a, tenant_c):
        opened = events(
            tenant, EventType.STUDY_OPENED, actor_username="rad.b@hospital_b"
        )
        assert len(opened) == 1


def test_a_share_key_does_not_open_another_study_of_the_owner(
    share: SecondOpinion, reader_b: Client, other_study: Study
) -> None:
    with tenant_context(study_tenant(other_study)):
        instance = Instance.objects.select_related("series").get(
            series__study=other_study
        )
    series = instance.series.series_instance_uid
    base = viewer_url(share, other_study.study_instance_uid)

    answers = [
        reader_b.get(f"{base}series/{series}/").status_code,
        reader_b.get(f"{base}series/{series}/thumbnail.png").status_code,
        reader_b.get(
            f"{base}series/{series}/instances/{instance.sop_instance_uid}/frames/1.png"
        ).status_code,
        reader_b.get(f"{base}key-images/").status_code,
    ]

    assert answers == [404, 404, 404, 404]


def test_the_shared_worklist_stays_empty_for_others_in_the_receiving_tenant(
    share: SecondOpinion, outsider_b: Client
) -> None:
    page = outsider_b.get("/").content.decode()

    assert f'data-share="{share.pk}"' not in page
    assert "Dupont" not in page


def test_a_signed_out_visitor_is_sent_to_sign_in(share: SecondOpinion) -> None:
    anonymous = Client(HTTP_HOST="b.localhost")

    response = anonymous.get(viewer_url(share))

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


# --- The thread -------------------------------------------------------------------


def test_an_answer_reaches_the_owner_with_a_notice_and_both_trails(
    share: SecondOpinion,
    reader_b: Client,
    client_a: Client,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    posted = reader_b.post(
        f"/second-opinions/{share.key}/comments/",
        {"body": "No bleed; a beam-hardening artefact."},
    )
    worklist_a = client_a.get("/").content.decode()
    thread_a = client_a.get(f"/second-opinions/{share.key}/").content.decode()

    assert posted.status_code == 302
    assert "1 new answer" in worklist_a
    assert "beam-hardening artefact" in thread_a
    share.refresh_from_db()
    assert share.unread_by_owner == 0
    assert events(tenant_b, EventType.SECOND_OPINION_COMMENTED, actor_username="rad.b")
    assert events(
        tenant_a, EventType.SECOND_OPINION_COMMENTED, actor_username="rad.b@hospital_b"
    )
    assert events(tenant_a, EventType.SECOND_OPINION_READ, actor_username="rad.a")
    assert events(
        tenant_b, EventType.SECOND_OPINION_READ, actor_username="rad.a@hospital_a"
    )


def test_an_empty_comment_is_refused_with_a_reason(
    share: SecondOpinion, reader_b: Client
) -> None:
    response = reader_b.post(f"/second-opinions/{share.key}/comments/", {"body": "  "})

    assert response.status_code == 400
    assert "The comment is empty." in response.content.decode()
    assert not share.comments.exists()


# --- Revoking and expiry -------------------------------------------------------


def test_revoking_ends_access_at_once_and_is_recorded_on_both_sides(
    share: SecondOpinion,
    reader_b: Client,
    client_a: Client,
    study: Study,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    assert reader_b.get(frame_url(share, study)).status_code == 200

    revoked = client_a.post(f"/second-opinions/{share.key}/revoke/")

    assert revoked.status_code == 302
    assert reader_b.get(frame_url(share, study)).status_code == 404
    assert reader_b.get(viewer_url(share)).status_code == 404
    assert reader_b.get(f"/second-opinions/{share.key}/").status_code == 404
    assert f'data-share="{share.pk}"' not in reader_b.get("/").content.decode()
    share.refresh_from_db()
    assert share.state == ShareState.REVOKED
    assert events(tenant_a, EventType.SECOND_OPINION_REVOKED, actor_username="rad.a")
    assert events(
        tenant_b, EventType.SECOND_OPINION_REVOKED, actor_username="rad.a@hospital_a"
    )


def test_expiry_ends_access_at_once_and_beat_records_it_on_both_sides(
    share: SecondOpinion,
    reader_b: Client,
    study: Study,
    tenant_a: Tenant,
    tenant_b: Tenant,
) -> None:
    assert reader_b.get(frame_url(share, study)).status_code == 200

    expire(share)

    assert reader_b.get(frame_url(share, study)).status_code == 404
    assert do_record_expired_second_opinions() == 1
    assert do_record_expired_second_opinions() == 0
    share.refresh_from_db()
    assert share.state == ShareState.EXPIRED
    assert events(tenant_a, EventType.SECOND_OPINION_EXPIRED, actor_username="nimbus")
    assert events(tenant_b, EventType.SECOND_OPINION_EXPIRED, actor_username="nimbus")


def test_suspending_the_owner_ends_the_groups_access(
    share: SecondOpinion, reader_b: Client, study: Study, tenant_a: Tenant
) -> None:
    assert reader_b.get(frame_url(share, study)).status_code == 200

    Tenant.objects.filter(pk=tenant_a.pk).update(is_active=False)

    assert reader_b.get(viewer_url(share)).status_code == 404
    assert reader_b.get(frame_url(share, study)).status_code == 404
    assert reader_b.get(f"/second-opinions/{share.key}/").status_code == 404
    assert f'data-share="{share.pk}"' not in reader_b.get("/").content.decode()


def test_suspending_the_receiving_tenant_closes_the_share_to_it(
    share: SecondOpinion, tenant_b: Tenant
) -> None:
    Tenant.objects.filter(pk=tenant_b.pk).update(is_active=False)

    assert not SecondOpinion.objects.open(timezone.now()).filter(pk=share.pk).exists()


def test_the_owner_cannot_comment_on_an_ended_share(
    share: SecondOpinion, client_a: Client
) -> None:
    client_a.post(f"/second-opinions/{share.key}/revoke/")

    response = client_a.post(f"/second-opinions/{share.key}/comments/", {"body": "Hi"})

    assert response.status_code == 409
    assert not share.comments.exists()


# --- Who sees second opinions at all --------------------------------------------


@pytest.mark.parametrize("role", [Role.REFERRER, Role.HELPDESK, Role.TENANT_ADMIN])
def test_roles_outside_reading_get_no_second_opinion_page(
    role: Role, share: SecondOpinion, tenant_a: Tenant
) -> None:
    client = tenant_client(tenant_a, make_user(tenant_a, f"{role}.a", role))

    response = client.get("/second-opinions/")

    assert response.status_code == 404
    assert denied_in(tenant_a, f"{role}.a") == 1


def test_the_second_opinions_link_is_for_readers_only(
    client_a: Client, tenant_a: Tenant
) -> None:
    helpdesk = tenant_client(tenant_a, make_user(tenant_a, "help.a", Role.HELPDESK))

    worklists = [client_a.get("/"), helpdesk.get("/")]

    assert [w.status_code for w in worklists] == [200, 200]
    assert 'href="/second-opinions/"' in worklists[0].content.decode()
    assert 'href="/second-opinions/"' not in worklists[1].content.decode()
