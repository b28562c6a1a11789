"""Searching the audit trail across tenants' schemas, for the helpdesk."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection

from audit.models import EventType, Outcome
from tenants.models import Tenant

# Detail keys that carry counts, codes and states, never report text, names
# or free text from DICOM headers; anything else in ``detail`` stays hidden.
SAFE_DETAIL_KEYS = frozenset(
    {
        "action",
        "attempts",
        "broken_links",
        "called_ae_title",
        "calling_ae_title",
        "changed",
        "count",
        "created",
        "failed",
        "failures",
        "frame",
        "instances",
        "limit",
        "media_type",
        "message_control_id",
        "minutes",
        "offset",
        "order_control",
        "page",
        "pixel_status",
        "reason",
        "rendered",
        "result_status",
        "results",
        "role",
        "rows",
        "size",
        "sort",
        "state_from",
        "status",
        "stored",
        "thumbnail",
        "via",
        "window",
    }
)
SAFE_VALUE_LENGTH = 80
COLUMNS = (
    "id",
    "occurred_at",
    "event_type",
    "outcome",
    "actor_username",
    "source_ip",
    "object_type",
    "object_id",
    "patient_id",
    "study_instance_uid",
    "detail",
)


@dataclass(frozen=True)
class AuditQuery:
    schemas: tuple[str, ...]
    username: str = ""
    patient_id: str = ""
    study_instance_uid: str = ""
    # Either one event type or a range [low, high).
    event_types: tuple[int, int] | None = None
    outcome: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def as_detail(self) -> dict[str, str]:
        """The filters as an audit record's detail (ids go in their own fields)."""
        detail = {
            "username": self.username,
            "outcome": self.outcome,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "tenants": ",".join(self.schemas),
        }
        if self.event_types:
            detail["event_types"] = f"{self.event_types[0]}-{self.event_types[1] - 1}"
        return {key: value for key, value in detail.items() if value}


@dataclass(frozen=True)
class AuditRow:
    schema: str
    id: int
    occurred_at: datetime
    event_type: int
    outcome: str
    actor_username: str
    source_ip: str | None
    object_type: str
    object_id: str
    patient_id: str
    study_instance_uid: str
    detail: list[tuple[str, str]] = field(default_factory=list)

    @property
    def event_label(self) -> str:
        try:
            return str(EventType(self.event_type).label)
        except ValueError:
            return str(self.event_type)

    @property
    def outcome_label(self) -> str:
        try:
            return str(Outcome(self.outcome).label)
        except ValueError:
            return self.outcome


def helpdesk_schemas() -> list[str]:
    """Every schema with an audit trail: each tenant's and public (platform)."""
    return list(
        Tenant.objects.order_by("schema_name").values_list("schema_name", flat=True)
    )


def safe_detail(detail: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for key in sorted(detail):
        value = detail[key]
        if key not in SAFE_DETAIL_KEYS:
            continue
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        if isinstance(value, bool | int | float | str):
            text = str(value)
            if len(text) <= SAFE_VALUE_LENGTH:
                shown.append((key, text))
    return shown


def _where(query: AuditQuery) -> tuple[str, list[Any]]:
    low, high = query.event_types or (None, None)
    filters = [
        ("lower(actor_username) = lower(%s)", query.username),
        ("patient_id = %s", query.patient_id),
        ("study_instance_uid = %s", query.study_instance_uid),
        ("event_type >= %s", low),
        ("event_type < %s", high),
        ("outcome = %s", query.outcome),
        ("occurred_at >= %s", query.since),
        ("occurred_at < %s", query.until),
    ]
    used = [(clause, value) for clause, value in filters if value]
    if not used:
        return "", []
    where = " WHERE " + " AND ".join(clause for clause, _value in used)
    return where, [value for _clause, value in used]


def search_audit_events(query: AuditQuery, offset: int, limit: int) -> list[AuditRow]:
    """Newest first across the query's schemas, one page of rows."""
    if not query.schemas:
        return []
    where, params = _where(query)
    columns = ", ".join(COLUMNS)
    # Each schema's part is limited on its own, so every part reads only the
    # newest offset+limit rows of its occurred_at index.
    parts = []
    for schema in query.schemas:
        table = f"{connection.ops.quote_name(schema)}.audit_auditevent"
        parts.append(
            # Schema names come from the tenant registry (and are quoted);
            # every value is a parameter.
            f"(SELECT %s AS schema_name, {columns} FROM {table}{where}"  # noqa: S608
            " ORDER BY occurred_at DESC, id DESC LIMIT %s)"
        )
    union = " UNION ALL ".join(parts)
    sql = (
        f"SELECT * FROM ({union}) AS found"  # noqa: S608 - see above
        " ORDER BY occurred_at DESC, schema_name, id DESC LIMIT %s OFFSET %s"
    )
    all_params: list[Any] = []
    for schema in query.schemas:
        all_params += [schema, *params, offset + limit]
    all_params += [limit, offset]
    with connection.cursor() as cursor:
        cursor.execute(sql, all_params)
        return [_row(record) for record in cursor.fetchall()]


def _row(record: tuple[Any, ...]) -> AuditRow:
    schema, *values = record
    fields = dict(zip(COLUMNS, values, strict=True))
    detail = fields["detail"]
    # Django has psycopg load jsonb as text, for JSONField to decode.
    fields["detail"] = safe_detail(
        json.loads(detail) if isinstance(detail, str) else detail or {}
    )
    fields["source_ip"] = str(fields["source_ip"]) if fields["source_ip"] else None
    return AuditRow(schema=schema, **fields)


def iter_audit_events(
    query: AuditQuery, max_rows: int, page: int = 1000
) -> Iterator[AuditRow]:
    """Matching rows, newest first, up to ``max_rows``, read a page at a time."""
    offset = 0
    while offset < max_rows:
        rows = search_audit_events(query, offset, min(page, max_rows - offset))
        yield from rows
        if len(rows) < page:
            return
        offset += len(rows)
