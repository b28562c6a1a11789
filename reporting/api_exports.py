"""The issued report as PDF or FHIR R4 JSON, for people and for integrations."""

from django.http import HttpResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.reauth import RecentlyReauthenticated
from reporting.exports import FHIR_MEDIA_TYPE, ReportNotIssued, do_export_report
from reporting.selectors import get_readable_study
from reporting.serializers import ErrorSerializer

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such study, or no access.")
NOT_ISSUED = OpenApiResponse(
    ErrorSerializer, description="The report is a draft: nothing to export yet."
)


class NotIssued(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The report is not issued yet.")
    default_code = "not_issued"


class ExportView(APIView):
    # A person re-enters a one-time password first; token clients do not.
    permission_classes = [IsAuthenticated, RecentlyReauthenticated]
    media_type = ""
    extension = ""

    def get(self, request: Request, study_uid: str) -> HttpResponse:
        study = get_readable_study(request.user, study_uid)  # type: ignore[arg-type]
        try:
            body = do_export_report(
                request.user,  # type: ignore[arg-type]
                study,
                self.media_type,
                request=request._request,
            )
        except ReportNotIssued as error:
            raise NotIssued from error
        response = HttpResponse(body, content_type=self.media_type)
        # Patient data: never kept by a browser or proxy cache.
        response["Cache-Control"] = "no-store"
        name = f"report-{study.accession_number or study.pk}.{self.extension}"
        response["Content-Disposition"] = f'inline; filename="{name}"'
        return response


class ReportPdfView(ExportView):
    media_type = "application/pdf"
    extension = "pdf"

    @extend_schema(
        operation_id="report_pdf",
        summary="The issued report as a PDF document",
        responses={
            (200, "application/pdf"): OpenApiTypes.BINARY,
            404: NOT_FOUND,
            409: NOT_ISSUED,
        },
    )
    def get(self, request: Request, study_uid: str) -> HttpResponse:
        return super().get(request, study_uid)


class ReportFhirView(ExportView):
    media_type = FHIR_MEDIA_TYPE
    extension = "json"

    @extend_schema(
        operation_id="report_fhir",
        summary="The issued report as a FHIR R4 DiagnosticReport",
        responses={
            (200, FHIR_MEDIA_TYPE): OpenApiTypes.OBJECT,
            404: NOT_FOUND,
            409: NOT_ISSUED,
        },
    )
    def get(self, request: Request, study_uid: str) -> HttpResponse:
        return super().get(request, study_uid)
