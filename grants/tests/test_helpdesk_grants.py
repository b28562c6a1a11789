"""Helpdesk staff and patient data: nothing without a grant, read-only with one.

Without a grant a helpdesk user gets 404 (and an ACCESS_DENIED record) from
the viewer, the report page and API, and DICOMweb; with one, every object
read is audited with the grant's id; when the grant expires or is revoked
the answer is 404 again at once.
"""

import datetime

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.models import Role, User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from conftest import make_user, tenant_client
from grants.actions import do_record_expired_grants
from grants.models import HelpdeskGrant
from pacs.models import Instance, Study
from tenants.models import Tenant
from viewer.fastpath import grant_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def helpdesk(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "help.a", Role.HELPDESK)


@pytest.fixture
def admin(tenant_a: Tenant) -> User:
    return make_user(tenant_a, "it.a", Role.TENANT_ADMIN)


@pytest.fixture
def helpdesk_client(tenant_a: Tenant, helpdesk: User) -> Client:
    # Re-authenticated: the DICOMweb metadata below is an export.
    return mark_reauthenticated(tenant_client(tenant_a, helpdesk), tenant_a)


@pytest.fixture
def admin_client(tenant_a: Tenant, admin: User) -> Client:
    return tenant_client(tenant_a, admin)


def grant(
    admin_client: Client, helpdesk: User, study: str = "", hours: int = 2
) -> None:
    response = admin_client.post(
        "/grants/",
        {
            "helpdesk_user": helpdesk.pk,
            "scope": "study" if study else "tenant",
            "study": study,
            "hours": hours,
            "reason": "Ticket 4711: images do not load",
        },
    )
    assert response.status_code == 302, response.content


def paths(study: Study) -> dict[str, str]:
    uid = study.study_instance_uid
    instance = Instance.objects.select_related("series").get(series__study=study)
    series = instance.series.series_instance_uid
    return {
        "viewer": f"/viewer/studies/{uid}/",
        "series": f"/viewer/studies/{uid}/series/{series}/",
        "frame": f"/viewer/studies/{uid}/series/{series}/instances/"
        f"{instance.sop_instance_uid}/frames/1.png",
        "report page": f"/reports/studies/{uid}/",
        "report api": f"/api/studies/{uid}/report",
        "dicomweb metadata": f"/dicomweb/studies/{uid}/metadata",
        "dicomweb series": f"/dicomweb/studies/{uid}/series/{series}/metadata",
    }


def statuses(client: Client, study: Study) -> dict[str, int]:
    return {name: client.get(path).status_code for name, path in paths(study).items()}


def used(grant_id: int) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            event_type=EventType.HELPDESK_GRANT_USED, detail__grant=grant_id
        )
    )


def test_without_a_grant_helpdesk_reads_nothing_and_each_try_is_audited(
    study: Study, helpdesk_client: Client
) -> None:
    answers = statuses(helpdesk_client, study)
    assert set(answers.values()) == {404}, answers
    denied = AuditEvent.objects.filter(
        event_type=EventType.ACCESS_DENIED, actor_username="help.a"
    )
    assert denied.count() == len(answers)
    assert set(denied.values_list("study_instance_uid", flat=True)) == {
        study.study_instance_uid
    }
    search = helpdesk_client.get("/dicomweb/studies")
    assert search.status_code in (200, 204)
    assert study.study_instance_uid not in search.content.decode()


def test_with_a_study_grant_helpdesk_reads_it_and_each_read_names_the_grant(
    study: Study, other_study: Study, helpdesk: User, helpdesk_client: Client,
    admin_client: Client,
) -> None:  # fmt: skip
    grant(admin_client, helpdesk, study.study_instance_uid)
    given = HelpdeskGrant.objects.get()
    assert given.study == study
    [record] = AuditEvent.objects.filter(event_type=EventType.HELPDESK_GRANT_GIVEN)
    assert record.actor_username == "it.a"
    assert record.detail["grant"] == given.pk

    answers = statuses(helpdesk_client, study)
    assert set(answers.values()) == {200}, answers
    reads = used(given.pk)
    assert len(reads) >= len(answers)
    assert {r.actor_username for r in reads} == {"help.a"}
    assert {r.patient_id for r in reads} == {study.patient.patient_id}

    assert helpdesk_client.get(paths(study)["viewer"].replace(
        study.study_instance_uid, other_study.study_instance_uid
    )).status_code == 404  # fmt: skip


def test_a_tenant_grant_covers_every_study(
    study: Study, other_study: Study, helpdesk: User, helpdesk_client: Client,
    admin_client: Client,
) -> None:  # fmt: skip
    grant(admin_client, helpdesk)
    for uid in (study.study_instance_uid, other_study.study_instance_uid):
        assert helpdesk_client.get(f"/viewer/studies/{uid}/").status_code == 200
    search = helpdesk_client.get("/dicomweb/studies").content.decode()
    assert study.study_instance_uid in search


def test_after_expiry_it_is_404_again_and_the_expiry_is_recorded_once(
    study: Study, helpdesk: User, helpdesk_client: Client, admin_client: Client
) -> None:
    grant(admin_client, helpdesk, study.study_instance_uid)
    assert helpdesk_client.get(paths(study)["frame"]).status_code == 200
    HelpdeskGrant.objects.update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    answers = statuses(helpdesk_client, study)
    assert set(answers.values()) == {404}, answers
    assert do_record_expired_grants() == 1
    assert do_record_expired_grants() == 0
    [expired] = AuditEvent.objects.filter(event_type=EventType.HELPDESK_GRANT_EXPIRED)
    assert expired.detail["helpdesk_user"] == "help.a"


def test_revoking_ends_access_at_once(
    study: Study, helpdesk: User, helpdesk_client: Client, admin_client: Client
) -> None:
    grant(admin_client, helpdesk, study.study_instance_uid)
    given = HelpdeskGrant.objects.get()
    assert helpdesk_client.get(paths(study)["viewer"]).status_code == 200

    admin_client.post(f"/grants/{given.pk}/revoke/")
    assert helpdesk_client.get(paths(study)["viewer"]).status_code == 404
    [revoked] = AuditEvent.objects.filter(event_type=EventType.HELPDESK_GRANT_REVOKED)
    assert revoked.actor_username == "it.a"
    assert do_record_expired_grants() == 0


def test_frames_read_under_a_grant_never_take_the_fast_path(
    study: Study, helpdesk: User, helpdesk_client: Client, admin_client: Client
) -> None:
    grant(admin_client, helpdesk, study.study_instance_uid)
    helpdesk_client.get(paths(study)["frame"])
    instance = Instance.objects.select_related("series").get(series__study=study)
    key = grant_key(
        helpdesk_client.session.session_key,  # type: ignore[arg-type]
        study.study_instance_uid,
        instance.series.series_instance_uid,
    )
    assert cache.get(key) is None


def test_a_grant_is_read_only(
    study: Study, helpdesk: User, helpdesk_client: Client, admin_client: Client
) -> None:
    grant(admin_client, helpdesk, study.study_instance_uid)
    frame = paths(study)["frame"].removesuffix(".png")
    refused = [
        helpdesk_client.post(f"{frame}/annotations/", "{}", "application/json"),
        helpdesk_client.put(f"{frame}/key"),
        helpdesk_client.put(
            paths(study)["report api"], '{"text": "x"}', "application/json"
        ),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert (
        AuditEvent.objects.filter(
            event_type=EventType.ACCESS_DENIED, detail__reason="helpdesk read-only"
        ).count()
        == 3
    )


@pytest.mark.parametrize("role", [Role.RADIOLOGIST, Role.HELPDESK, Role.REFERRER])
def test_only_the_tenant_admin_grants(
    tenant_a: Tenant, study: Study, role: Role
) -> None:
    user = make_user(tenant_a, f"{role}.y", role)
    client = tenant_client(tenant_a, user)
    assert client.get("/grants/").status_code == 403
    response = client.post(
        "/grants/",
        {"helpdesk_user": user.pk, "scope": "tenant", "hours": 1, "reason": "x"},
    )
    assert response.status_code == 403
    assert not HelpdeskGrant.objects.exists()


def test_grants_are_limited_in_time_and_need_a_reason(
    study: Study, helpdesk: User, admin_client: Client
) -> None:
    for hours, reason in ((73, "too long"), (2, "")):
        response = admin_client.post(
            "/grants/",
            {
                "helpdesk_user": helpdesk.pk,
                "scope": "tenant",
                "hours": hours,
                "reason": reason,
            },
        )
        assert response.status_code == 200
    assert not HelpdeskGrant.objects.exists()


def test_the_helpdesk_page_lists_the_grants_held(
    study: Study, helpdesk: User, helpdesk_client: Client, admin_client: Client
) -> None:
    grant(admin_client, helpdesk, study.study_instance_uid)
    page = helpdesk_client.get("/grants/held/").content.decode()
    assert "Ticket 4711" in page
    assert f"/viewer/studies/{study.study_instance_uid}/" in page
