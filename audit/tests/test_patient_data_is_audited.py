"""Every path that shows or changes patient data leaves an audit record.

The list below is the audit coverage check of issue 6: a new patient-data
URL belongs here, and fails the test until it records its access.
"""

import json

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.models import User
from accounts.testing import mark_reauthenticated
from audit.models import AuditEvent, EventType
from conftest import current_totp
from pacs.models import Instance, Study
from reporting.actions import do_save_report_draft, do_sign_report
from reporting.tests.conftest import study  # noqa: F401 - the fixture
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

# (method, path, body, event type); {study}, {series}, {sop} are filled in.
# The exports (PDF, FHIR) are of an issued report: the study is signed first.
PATIENT_DATA = [
    ("get", "/?patient_id={patient}", None, EventType.WORKLIST_SEARCHED),
    ("get", "/viewer/studies/{study}/", None, EventType.STUDY_OPENED),
    (
        "get",
        "/viewer/studies/{study}/series/{series}/instances/{sop}/frames/1.png",
        None,
        EventType.FRAMES_VIEWED,
    ),
    ("get", "/reports/studies/{study}/", None, EventType.REPORT_READ),
    ("get", "/api/studies/{study}/report", None, EventType.REPORT_READ),
    (
        "put",
        "/api/studies/{study}/report",
        {"text": "No acute findings."},
        EventType.REPORT_EDITED,
    ),
    ("get", "/api/studies/{study}/report.pdf", None, EventType.REPORT_READ),
    ("get", "/api/studies/{study}/report/fhir", None, EventType.REPORT_READ),
    ("get", "/dicomweb/studies?PatientID={patient}", None, EventType.DICOMWEB_QUERY),
    ("get", "/dicomweb/studies/{study}/series", None, EventType.DICOMWEB_QUERY),
    ("get", "/dicomweb/studies/{study}/metadata", None, EventType.DICOMWEB_RETRIEVE),
    (
        "get",
        "/dicomweb/studies/{study}/series/{series}/instances/{sop}",
        None,
        EventType.DICOMWEB_RETRIEVE,
    ),
    (
        "get",
        "/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered",
        None,
        EventType.DICOMWEB_RETRIEVE,
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "event_type"),
    PATIENT_DATA,
    ids=[f"{method} {path}" for method, path, _body, _type in PATIENT_DATA],
)
def test_each_patient_data_path_writes_an_audit_record(
    client_a: Client,
    tenant_a: Tenant,
    radiologist: User,
    study: Study,  # noqa: F811
    method: str,
    path: str,
    body: dict[str, str] | None,
    event_type: EventType,
) -> None:
    instance = (
        Instance.objects.select_related("series").filter(series__study=study).first()
    )
    assert instance is not None
    url = path.format(
        study=study.study_instance_uid,
        series=instance.series.series_instance_uid,
        sop=instance.sop_instance_uid,
        patient=study.patient.patient_id,
    )
    # Frames are audited once per user and series in five minutes.
    cache.delete(
        f"viewer:frames-viewed:{client_a.session['_auth_user_id']}:"
        f"{instance.series.series_instance_uid}"
    )
    if path.endswith(("report.pdf", "report/fhir")):
        do_save_report_draft(radiologist, study, "No acute findings.")
        do_sign_report(radiologist, study, current_totp())
    # Exports (PDF, FHIR, WADO instances) need a fresh one-time password.
    mark_reauthenticated(client_a, tenant_a)
    before = set(AuditEvent.objects.values_list("pk", flat=True))

    kwargs = (
        {"data": json.dumps(body), "content_type": "application/json"} if body else {}
    )
    response = getattr(client_a, method)(url, **kwargs)

    assert response.status_code == 200, response.content[:200]
    new = AuditEvent.objects.exclude(pk__in=before)
    assert [e.event_type for e in new if e.event_type == event_type] == [event_type]
    assert all(e.actor_username == "rad.a" for e in new)
