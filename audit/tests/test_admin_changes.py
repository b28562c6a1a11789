import pytest
from django.test import Client

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from conftest import make_user, tenant_client
from pacs.models import RemoteApplicationEntity
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def it_client(tenant_a: Tenant) -> Client:
    # A superuser: the admin's own permissions are not what is tested here.
    return tenant_client(tenant_a, make_user(tenant_a, "it.a", Role.PLATFORM_ADMIN))


def remote_ae_form(**changes: object) -> dict[str, object]:
    return {"ae_title": "CT_ROOM_1", "host": "10.0.0.5", "port": 104, **changes}


def test_adding_a_remote_ae_in_the_admin_is_a_tenant_change(it_client: Client) -> None:
    response = it_client.post(
        "/admin/pacs/remoteapplicationentity/add/", remote_ae_form()
    )

    assert response.status_code == 302
    remote = RemoteApplicationEntity.objects.get(ae_title="CT_ROOM_1")
    event = AuditEvent.objects.get(event_type=EventType.TENANT_CHANGED)
    assert (event.actor_username, event.object_type, event.object_id) == (
        "it.a",
        "pacs.remoteapplicationentity",
        str(remote.pk),
    )
    assert event.detail["action"] == "added"


def test_a_change_records_the_fields_not_their_values(it_client: Client) -> None:
    remote = RemoteApplicationEntity.objects.create(
        ae_title="CT_ROOM_1", host="10.0.0.5", port=104
    )

    it_client.post(
        f"/admin/pacs/remoteapplicationentity/{remote.pk}/change/",
        remote_ae_form(host="10.0.0.99"),
    )

    event = AuditEvent.objects.get(event_type=EventType.TENANT_CHANGED)
    assert event.detail["action"] == "changed"
    assert event.detail["changed"] == ["Host"]
    assert "10.0.0.99" not in str(event.detail)


def test_deleting_a_user_in_the_admin_is_a_user_change(
    it_client: Client, referrer: User
) -> None:
    it_client.post(f"/admin/accounts/user/{referrer.pk}/delete/", {"post": "yes"})

    event = AuditEvent.objects.get(
        event_type=EventType.USER_CHANGED, object_type="accounts.user"
    )
    assert (event.actor_username, event.object_id, event.detail["action"]) == (
        "it.a",
        str(referrer.pk),
        "deleted",
    )
