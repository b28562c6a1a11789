"""The helpdesk's audit page: search across tenants, and the same as CSV."""

import csv
from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.models import Role
from accounts.reauth import reauthenticated_for_export
from audit.actions import do_export_audit_trail, do_record_event, do_search_audit_trail
from audit.forms import AuditSearchForm
from audit.models import EventType, Outcome
from audit.selectors import AuditRow, helpdesk_schemas

PAGE_SIZE = 50
CSV_COLUMNS = (
    "tenant",
    "id",
    "occurred_at",
    "event_type",
    "event",
    "outcome",
    "user",
    "source_ip",
    "object_type",
    "object_id",
    "patient_id",
    "study_instance_uid",
    "detail",
)


def readable_schemas(request: HttpRequest) -> list[str]:
    """The schemas whose trail this user may read; refuses (audited) everyone else.

    Platform helpdesk staff (public schema) read every tenant's trail; a
    helpdesk user of one tenant reads that tenant's only.
    """
    if getattr(request.user, "role", None) != Role.HELPDESK:
        do_record_event(
            EventType.ACCESS_DENIED,
            request=request,
            outcome=Outcome.FAILURE,
            object_type="audit_trail",
            detail={"reason": "not helpdesk"},
        )
        raise PermissionDenied
    if connection.schema_name == "public":
        return helpdesk_schemas()
    return [connection.schema_name]


def note_other_tenant(request: HttpRequest, form: AuditSearchForm) -> None:
    """Audit a search for a tenant's trail this user may not read.

    The form refuses the tenant (it is not among its choices), which alone
    would leave a tenant's helpdesk reaching for another's trail unrecorded.
    """
    if "tenant" not in form.errors:
        return
    do_record_event(
        EventType.ACCESS_DENIED,
        request=request,
        outcome=Outcome.FAILURE,
        object_type="audit_trail",
        object_id=str(request.GET.get("tenant", ""))[:128],
        detail={"reason": "tenant not readable"},
    )


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    form = AuditSearchForm(request.GET, schemas=readable_schemas(request))
    note_other_tenant(request, form)
    rows: list[AuditRow] = []
    page = 1
    if form.is_valid():
        page = form.cleaned_data["page"] or 1
        offset = (page - 1) * PAGE_SIZE
        rows = do_search_audit_trail(request, form.to_query(), offset, PAGE_SIZE + 1)

    pages = {}
    for name, number in (("previous", page - 1), ("next", page + 1)):
        params = request.GET.copy()
        params["page"] = str(number)
        pages[name] = params.urlencode()
    return render(
        request,
        "audit/search.html",
        {
            "form": form,
            "rows": rows[:PAGE_SIZE],
            "page": page,
            "has_previous": page > 1,
            "has_next": len(rows) > PAGE_SIZE,
            "pages": pages,
            "export_query": request.GET.urlencode(),
            "max_rows": settings.NIMBUS_AUDIT_CSV_MAX_ROWS,
        },
    )


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell that starts like a formula.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_lines(rows: Iterator[AuditRow]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for row in rows:
        detail = "; ".join(f"{key}={value}" for key, value in row.detail)
        yield writer.writerow(
            [
                _cell(value)
                for value in (
                    row.schema,
                    row.id,
                    row.occurred_at.isoformat(),
                    row.event_type,
                    row.event_label,
                    row.outcome,
                    row.actor_username,
                    row.source_ip,
                    row.object_type,
                    row.object_id,
                    row.patient_id,
                    row.study_instance_uid,
                    detail,
                )
            ]
        )


@login_required
@require_GET
def export_csv(request: HttpRequest) -> HttpResponse:
    form = AuditSearchForm(request.GET, schemas=readable_schemas(request))
    note_other_tenant(request, form)
    if not form.is_valid():
        return HttpResponseBadRequest()
    return _export_csv(request, form)


@reauthenticated_for_export  # the trail names patients: this is an export
def _export_csv(request: HttpRequest, form: AuditSearchForm) -> HttpResponse:
    rows = do_export_audit_trail(
        request, form.to_query(), settings.NIMBUS_AUDIT_CSV_MAX_ROWS
    )
    response = StreamingHttpResponse(_csv_lines(rows), content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
