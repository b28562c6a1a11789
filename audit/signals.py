"""Configuration changes made through the Django admin become audit records.

The admin writes a ``LogEntry`` for each addition, change and deletion, in
the schema and transaction of the change; the record is written beside it.
"""

import json
from typing import Any

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save
from django.dispatch import receiver

from audit.actions import do_record_event
from audit.models import EventType

ACTIONS = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}
# Users, their second factors and tokens; everything else a tenant configures
# (remote AEs, templates, presets, referrals) is a tenant change.
USER_APPS = frozenset({"accounts", "auth", "otp_totp", "otp_static", "axes"})
# tenants/admin.py records additions and changes of a tenant itself, with the
# fields that changed; only its deletion is left to this hook.
RECORDED_BY_THEIR_ADMIN = frozenset({"tenants.tenant"})


def changed_fields(entry: LogEntry) -> list[str]:
    """The field names of a change message, never their values."""
    try:
        messages = json.loads(entry.change_message or "[]")
    except ValueError:
        return []
    fields: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        fields += message.get("changed", {}).get("fields", [])
    return fields


@receiver(post_save, sender=LogEntry, dispatch_uid="audit-admin-log-entry")
def record_admin_change(
    sender: type[LogEntry], instance: LogEntry, created: bool, **kwargs: Any
) -> None:
    content_type = instance.content_type
    if not created or content_type is None or content_type.app_label == "audit":
        return
    label = f"{content_type.app_label}.{content_type.model}"
    if label in RECORDED_BY_THEIR_ADMIN and instance.action_flag != DELETION:
        return
    user_change = content_type.app_label in USER_APPS
    do_record_event(
        EventType.USER_CHANGED if user_change else EventType.TENANT_CHANGED,
        actor=instance.user,
        object_type=label,
        object_id=instance.object_id or "",
        detail={
            "action": ACTIONS.get(instance.action_flag, "changed"),
            "changed": changed_fields(instance),
        },
    )
