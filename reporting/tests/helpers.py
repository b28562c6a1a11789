"""Small helpers shared by the reporting workflow tests."""

import json
from typing import Any

from django.test import Client

from pacs.models import Study


def url(study: Study, action: str = "") -> str:
    return f"/api/studies/{study.study_instance_uid}/report{action}"


def put(client: Client, study: Study, action: str, body: dict[str, Any]) -> Any:
    return client.put(url(study, action), json.dumps(body), "application/json")


def post(client: Client, study: Study, action: str, body: Any = None) -> Any:
    return client.post(url(study, action), json.dumps(body or {}), "application/json")
