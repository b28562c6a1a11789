"""Small helpers shared by the reporting workflow tests."""

import json
from typing import Any

from django.test import Client
from django.utils import timezone

from pacs.models import Study
from reporting.models import OutboundMessage


def url(study: Study, action: str = "") -> str:
    return f"/api/studies/{study.study_instance_uid}/report{action}"


def put(client: Client, study: Study, action: str, body: dict[str, Any]) -> Any:
    return client.put(url(study, action), json.dumps(body), "application/json")


def post(client: Client, study: Study, action: str, body: Any = None) -> Any:
    return client.post(url(study, action), json.dumps(body or {}), "application/json")


def back_off_elapses(*messages: OutboundMessage) -> None:
    """The retries' countdowns run out: the next task of each is due.

    Delivery leaves a message alone to a task that comes before its next
    try (a requeued copy), so a test that runs tasks back to back moves the
    next try to now first, as the countdown would.
    """
    OutboundMessage.objects.filter(pk__in=[m.pk for m in messages]).update(
        next_attempt_at=timezone.now()
    )
