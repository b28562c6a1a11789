from django.urls import path

from reporting import api, api_exports

urlpatterns = [
    path("studies/<str:study_uid>/report", api.ReportView.as_view(), name="report"),
    path(
        "studies/<str:study_uid>/report/dictation",
        api.DictationView.as_view(),
        name="report-dictation",
    ),
    path(
        "studies/<str:study_uid>/report/sign",
        api.SignView.as_view(),
        name="report-sign",
    ),
]

REPORT = "studies/<str:study_uid>/report"

urlpatterns += [
    path(f"{REPORT}/lock", api.LockView.as_view(), name="report-lock"),
    path(
        f"{REPORT}/preliminary",
        api.PreliminaryView.as_view(),
        name="report-preliminary",
    ),
    path(f"{REPORT}/addendum", api.AddendumView.as_view(), name="report-addendum"),
    path(
        f"{REPORT}/addendum/sign",
        api.AddendumSignView.as_view(),
        name="report-addendum-sign",
    ),
    path(f"{REPORT}/critical", api.CriticalView.as_view(), name="report-critical"),
    path(
        f"{REPORT}/critical/acknowledge",
        api.AcknowledgeView.as_view(),
        name="report-critical-acknowledge",
    ),
    path(f"{REPORT}/images", api.ImageReferenceView.as_view(), name="report-images"),
    path(
        f"{REPORT}/versions/<int:number>",
        api.VersionView.as_view(),
        name="report-version",
    ),
    path(f"{REPORT}/templates", api.TemplatesView.as_view(), name="report-templates"),
    path("report-macros/<str:name>", api.MacroView.as_view(), name="report-macro"),
]

# The issued report as PDF and FHIR R4 (reporting/api_exports.py).
urlpatterns += [
    path(f"{REPORT}.pdf", api_exports.ReportPdfView.as_view(), name="report-pdf"),
    path(f"{REPORT}/fhir", api_exports.ReportFhirView.as_view(), name="report-fhir"),
]
