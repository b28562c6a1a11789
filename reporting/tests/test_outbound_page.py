"""The outbound queue page: what the RIS refused, and sending it again."""

import json

import pytest
import redis
from django.conf import settings
from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import Role, User
from audit.models import AuditEvent, EventType
from config.celery import DELIVERY_QUEUE
from conftest import current_totp, make_user, tenant_client
from pacs.models import Study
from reporting.actions import (
    do_deliver_message,
    do_requeue_stalled_messages,
    do_save_report_draft,
    do_sign_report,
)
from reporting.models import DeliveryState, OutboundMessage
from reporting.tests.conftest import point_ris_at
from tenants.models import Tenant
from tests.support.ris import RisListener

pytestmark = pytest.mark.django_db

PAGE = "/reports/outbound/"
RIS_ERROR = "Unknown accession ACC-2024-001 | order not found"


def refused_message(tenant: Tenant, user: User, study: Study) -> OutboundMessage:
    """A signed report that the test RIS refused with AE and a reason."""
    do_save_report_draft(user, study, "Impression: normal.")
    message = do_sign_report(user, study, current_totp()).messages.get()
    with RisListener(ack_code="AE", error_text=RIS_ERROR) as ris:
        point_ris_at(tenant, ris.port)
        do_deliver_message(message.pk)
    message.refresh_from_db()
    return message


def take_queued_tasks() -> list[dict[str, object]]:
    """Remove this test's delivery tasks from the broker, so no worker runs them."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    tasks = []
    for raw in broker.lrange(DELIVERY_QUEUE, 0, -1):
        task = json.loads(raw)
        if task["headers"]["task"] == "reporting.deliver_message":
            tasks.append(task)
            broker.lrem(DELIVERY_QUEUE, 1, raw)
    return tasks


def test_a_refused_message_shows_as_refused_with_the_ris_error(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    message = refused_message(tenant_a, radiologist, study)

    response = client_a.get(PAGE)

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    [row] = response.context["rows"]
    assert row["message"] == message and row["result_status"] == "F"
    html = response.content.decode()
    assert "Refused by the RIS (AE)" in html
    assert "Unknown accession ACC-2024-001 | order not found" in html
    assert "ACC-2024-001" in html
    assert f"/reports/outbound/{message.pk}/resend" in html


def test_the_page_filters_by_state(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    refused_message(tenant_a, radiologist, study)

    assert client_a.get(PAGE, {"state": "delivered"}).context["rows"] == []
    assert len(client_a.get(PAGE, {"state": "rejected"}).context["rows"]) == 1


def test_resending_a_refused_message_queues_it_again_and_audits_it(
    tenant_a: Tenant,
    radiologist: User,
    study: Study,
    client_a: Client,
    django_capture_on_commit_callbacks: object,
) -> None:
    message = refused_message(tenant_a, radiologist, study)
    take_queued_tasks()

    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = client_a.post(f"{PAGE}{message.pk}/resend")

    assert response.status_code == 302
    message.refresh_from_db()
    assert message.state == DeliveryState.PENDING
    [task] = take_queued_tasks()
    assert task["headers"]["argsrepr"] == f"[{message.pk}]"  # type: ignore[index]
    event = AuditEvent.objects.get(event_type=EventType.HL7_RESEND_REQUESTED)
    assert event.actor_username == radiologist.username
    assert event.detail["error"] == RIS_ERROR

    with RisListener() as ris:
        point_ris_at(tenant_a, ris.port)
        do_deliver_message(message.pk)
    message.refresh_from_db()
    assert message.state == DeliveryState.DELIVERED
    [received] = ris.received
    assert str(received.segment("MSH")(10)) == message.message_control_id


def test_a_delivered_message_is_not_sent_again(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    message = refused_message(tenant_a, radiologist, study)
    OutboundMessage.objects.filter(pk=message.pk).update(state=DeliveryState.DELIVERED)

    client_a.post(f"{PAGE}{message.pk}/resend")

    message.refresh_from_db()
    assert message.state == DeliveryState.DELIVERED
    assert not AuditEvent.objects.filter(
        event_type=EventType.HL7_RESEND_REQUESTED
    ).exists()


def test_a_refused_message_is_not_sent_after_a_later_one_was_delivered(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    refused = refused_message(tenant_a, radiologist, study)
    later = OutboundMessage.objects.create(
        report=refused.report,
        payload=refused.payload,
        message_control_id="LATER-1",
        state=DeliveryState.DELIVERED,
    )

    page = client_a.get(PAGE).content.decode()
    client_a.post(f"{PAGE}{refused.pk}/resend")

    refused.refresh_from_db()
    assert refused.state == DeliveryState.REJECTED
    assert f"{PAGE}{refused.pk}/resend" not in page
    assert later.pk > refused.pk


def test_resending_needs_a_post(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    message = refused_message(tenant_a, radiologist, study)

    assert client_a.get(f"{PAGE}{message.pk}/resend").status_code == 405


def test_resending_needs_the_csrf_token(
    tenant_a: Tenant, radiologist: User, study: Study, client_a: Client
) -> None:
    message = refused_message(tenant_a, radiologist, study)
    client_a.handler.enforce_csrf_checks = True  # type: ignore[attr-defined]

    assert client_a.post(f"{PAGE}{message.pk}/resend").status_code == 403
    message.refresh_from_db()
    assert message.state == DeliveryState.REJECTED


def test_a_tenant_admin_sees_the_queue(
    tenant_a: Tenant, radiologist: User, study: Study
) -> None:
    refused_message(tenant_a, radiologist, study)
    admin = make_user(tenant_a, "admin.a", Role.TENANT_ADMIN)

    response = tenant_client(tenant_a, admin).get(PAGE)

    assert response.status_code == 200
    assert len(response.context["rows"]) == 1


@pytest.mark.parametrize("role", [Role.REFERRER, Role.HELPDESK])
def test_other_roles_neither_see_nor_resend_the_queue(
    tenant_a: Tenant, radiologist: User, study: Study, role: Role
) -> None:
    message = refused_message(tenant_a, radiologist, study)
    client = tenant_client(tenant_a, make_user(tenant_a, f"{role}.a", role))

    assert client.get(PAGE).status_code == 404
    # Helpdesk users are refused every write up front (grants/middleware.py).
    refused = 403 if role == Role.HELPDESK else 404
    assert client.post(f"{PAGE}{message.pk}/resend").status_code == refused
    message.refresh_from_db()
    assert message.state == DeliveryState.REJECTED


def test_a_radiologist_of_another_tenant_does_not_see_this_tenants_messages(
    tenant_a: Tenant, radiologist: User, study: Study, tenant_b: Tenant
) -> None:
    with tenant_context(tenant_a):  # the tenant_b fixture left the public schema
        message = refused_message(tenant_a, radiologist, study)
    client = tenant_client(tenant_b, make_user(tenant_b, "rad.b", Role.RADIOLOGIST))

    assert client.get(PAGE).context["rows"] == []
    assert client.post(f"{PAGE}{message.pk}/resend").status_code == 404


def test_a_message_held_after_a_restore_is_left_alone_until_resent_by_hand(
    tenant_a: Tenant,
    radiologist: User,
    study: Study,
    client_a: Client,
    django_capture_on_commit_callbacks: object,
) -> None:
    do_save_report_draft(radiologist, study, "Impression: normal.")
    message = do_sign_report(radiologist, study, current_totp()).messages.get()
    OutboundMessage.objects.filter(pk=message.pk).update(state=DeliveryState.HELD)

    with RisListener() as ris:
        point_ris_at(tenant_a, ris.port)
        assert do_deliver_message(message.pk) is None  # a task left from before
        assert do_requeue_stalled_messages() == 0
        assert ris.received == []
        page = client_a.get(PAGE, {"state": "held"})
        [row] = page.context["rows"]
        assert row["message"].pk == message.pk and row["may_resend"]
        assert "Held after a restore" in page.content.decode()
        take_queued_tasks()

        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            client_a.post(f"{PAGE}{message.pk}/resend")
        [task] = take_queued_tasks()
        do_deliver_message(message.pk)

    message.refresh_from_db()
    assert task["headers"]["argsrepr"] == f"[{message.pk}]"  # type: ignore[index]
    assert message.state == DeliveryState.DELIVERED
    assert len(ris.received) == 1
    event = AuditEvent.objects.get(event_type=EventType.HL7_RESEND_REQUESTED)
    assert event.detail["state_from"] == DeliveryState.HELD
