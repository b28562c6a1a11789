"""An issued report as a PDF document and as a FHIR R4 DiagnosticReport.

Both carry the same text that the RIS receives (the signed text, then each
signed addendum) and the same result status: preliminary, final, or, after a
signed addendum, ``appended`` in FHIR (R4 value set
``diagnostic-report-status``: new content added to a final report) and
"Corrected" in the PDF's heading, matching HL7 v2 result status ``C``.
A draft is never exported.
"""

import base64
import datetime
import json
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape
from django.utils.translation import gettext as _

from accounts.models import User
from audit.actions import do_record_event
from audit.models import EventType
from pacs.dicom import display_person_name
from pacs.models import Study
from reporting.models import Report
from reporting.selectors import report_text_with_addenda

FHIR_MEDIA_TYPE = "application/fhir+json"
# HL7 v2 result status (table 0123) -> FHIR R4 DiagnosticReport.status.
_FHIR_STATUS = {"P": "preliminary", "F": "final", "C": "appended"}
_LOINC_NARRATIVE = {
    "system": "http://loinc.org",
    "code": "18782-3",
    "display": "Radiology Study observation (narrative)",
}


class ReportNotIssued(Exception):
    """Only a preliminary or signed report leaves Nimbus."""


def do_export_report(
    user: User, study: Study, media_type: str, *, request: HttpRequest | None = None
) -> bytes:
    """The study's report as PDF or FHIR JSON bytes; the read is audited."""
    report = (
        Report.objects.select_related("study__patient", "signed_by")
        .filter(study=study)
        .first()
    )
    if report is None or not report.result_status:
        raise ReportNotIssued
    body = report_pdf(report) if media_type == "application/pdf" else fhir_json(report)
    with transaction.atomic():
        do_record_event(
            EventType.REPORT_READ,
            request=request,
            actor=user,
            object_type="report",
            object_id=str(report.pk),
            patient_id=study.patient.patient_id,
            study_instance_uid=study.study_instance_uid,
            detail={"via": media_type, "result_status": report.result_status},
        )
    return body


def report_pdf(report: Report) -> bytes:
    """The report's HTML rendered as PDF by WeasyPrint."""
    # Imported here: WeasyPrint loads Pango and fonts, which most processes
    # (the DICOM listener, the worker) never need.
    from weasyprint import HTML

    return bytes(HTML(string=report_html(report)).write_pdf())


def report_html(report: Report) -> str:
    """The printable report, from templates/reporting/report_pdf.html."""
    return render_to_string(
        "reporting/report_pdf.html",
        {
            "report": report,
            "study": report.study,
            "patient": report.study.patient,
            "status": _status_label(report.result_status),
            "text": report_text_with_addenda(report),
            "printed_at": timezone.now(),
        },
    )


def fhir_json(report: Report) -> bytes:
    """The report as one FHIR R4 DiagnosticReport resource, UTF-8 JSON."""
    return json.dumps(diagnostic_report(report), ensure_ascii=False, indent=2).encode(
        "utf-8"
    )


def diagnostic_report(report: Report) -> dict[str, Any]:
    """A FHIR R4 DiagnosticReport with the patient and study as logical references."""
    study = report.study
    patient = study.patient
    text = report_text_with_addenda(report)
    resource: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": f"report-{report.pk}",
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><pre>'
            f"{escape(text)}</pre></div>",
        },
        "identifier": _accession_identifiers(study),
        "status": _FHIR_STATUS[report.result_status],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                        "code": "RAD",
                        "display": "Radiology",
                    }
                ]
            }
        ],
        "code": {"coding": [_LOINC_NARRATIVE], "text": study.study_description},
        "subject": {
            "identifier": _patient_identifier(
                patient.patient_id, patient.issuer_of_patient_id
            ),
            "display": display_person_name(patient.patient_name),
        },
        "imagingStudy": [
            {
                "identifier": {
                    "system": "urn:dicom:uid",
                    "value": f"urn:oid:{study.study_instance_uid}",
                }
            }
        ],
        "presentedForm": [
            {
                "contentType": "text/plain; charset=utf-8",
                "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                "title": study.study_description or _("Radiology report"),
            }
        ],
    }
    effective = _effective(study)
    if effective:
        resource["effectiveDateTime"] = effective
    issued = report.signed_at or report.preliminary_at
    if issued:
        resource["issued"] = issued.isoformat()
    if report.signed_by:
        resource["resultsInterpreter"] = [
            {
                "identifier": {"value": report.signed_by.username},
                "display": report.signed_by.get_full_name()
                or report.signed_by.username,
            }
        ]
    return resource


def _accession_identifiers(study: Study) -> list[dict[str, Any]]:
    if not study.accession_number:
        return []
    return [
        {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                        "code": "ACSN",
                    }
                ]
            },
            "value": study.accession_number,
        }
    ]


def _patient_identifier(patient_id: str, issuer: str) -> dict[str, Any]:
    identifier: dict[str, Any] = {"value": patient_id}
    if issuer:
        identifier["assigner"] = {"display": issuer}
    return identifier


def _effective(study: Study) -> str:
    if study.study_date is None:
        return ""
    if study.study_time is None:
        return study.study_date.isoformat()
    moment = datetime.datetime.combine(study.study_date, study.study_time)
    return timezone.make_aware(moment).isoformat()


def _status_label(result_status: str) -> str:
    labels = {
        "P": _("Preliminary report"),
        "F": _("Final report"),
        "C": _("Corrected report (addendum)"),
    }
    return labels[result_status]
