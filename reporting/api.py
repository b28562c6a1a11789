"""The reports API used by the editor, dictation clients and integrations."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from pacs.access import get_study_for_user
from pacs.models import Study
from reporting import actions
from reporting.models import Report
from reporting.selectors import report_state
from reporting.serializers import (
    DictationSerializer,
    ErrorSerializer,
    ReportSerializer,
    ReportTextSerializer,
    SignSerializer,
)

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such study, or no access.")
NOT_ALLOWED = OpenApiResponse(ErrorSerializer, description="Only radiologists write.")
SIGNED = OpenApiResponse(ErrorSerializer, description="The report is signed.")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("The report cannot be changed in its current state.")
    default_code = "conflict"


class Refused(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = _("The report cannot be signed in its current state.")
    default_code = "refused"


class ReportAPIView(APIView):
    def writable_study(self, request: Request, study_uid: str) -> Study:
        """The study, for a user who may write its report.

        Outsiders get 404 before anything else, so a refusal never tells them
        that the study exists.
        """
        study = get_study_for_user(request.user, study_uid)
        if getattr(request.user, "role", None) != Role.RADIOLOGIST:
            raise exceptions.PermissionDenied(
                _("Only radiologists may write or sign reports.")
            )
        return study

    def answer(self, report: Report) -> Response:
        return Response(ReportSerializer(report_state(report)).data)


class ReportView(ReportAPIView):
    @extend_schema(
        operation_id="report_retrieve",
        summary="The study's report: status, text, versions, delivery state",
        responses={200: ReportSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, study_uid: str) -> Response:
        study = get_study_for_user(request.user, study_uid)
        report = actions.do_read_report(request.user, study, request=request._request)
        return self.answer(report)

    @extend_schema(
        operation_id="report_save_draft",
        summary="Save the draft text",
        request=ReportTextSerializer,
        responses={
            200: ReportSerializer,
            403: NOT_ALLOWED,
            404: NOT_FOUND,
            409: SIGNED,
        },
    )
    def put(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        body = ReportTextSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            report = actions.do_save_report_draft(
                request.user,
                study,
                body.validated_data["text"],
                base_version=body.validated_data.get("version"),
                request=request._request,
            )
        except actions.ReportIsSigned as error:
            raise Conflict(error.message) from error
        except actions.ReportChangedMeanwhile as error:
            # The current report comes back with the refusal, to merge from.
            current = ReportSerializer(report_state(error.report)).data
            return Response(
                {**current, "detail": error.message}, status=status.HTTP_409_CONFLICT
            )
        return self.answer(report)


class DictationView(ReportAPIView):
    @extend_schema(
        operation_id="report_dictate",
        summary="Append dictated text; every open editor shows it live",
        request=DictationSerializer,
        responses={
            200: ReportSerializer,
            403: NOT_ALLOWED,
            404: NOT_FOUND,
            409: SIGNED,
        },
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        body = DictationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            report = actions.do_append_report_dictation(
                request.user,
                study,
                body.validated_data["text"],
                request=request._request,
            )
        except actions.ReportIsSigned as error:
            raise Conflict(error.message) from error
        return self.answer(report)


class SignView(ReportAPIView):
    @extend_schema(
        operation_id="report_sign",
        summary="Sign with a fresh one-time password, then queue HL7 delivery",
        request=SignSerializer,
        responses={
            200: ReportSerializer,
            400: OpenApiResponse(ErrorSerializer, description="The report is empty."),
            403: OpenApiResponse(
                ErrorSerializer,
                description="Wrong or reused one-time password, or not a radiologist.",
            ),
            404: NOT_FOUND,
            409: SIGNED,
        },
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        body = SignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            report = actions.do_sign_report(
                request.user,
                study,
                body.validated_data["otp"],
                request=request._request,
            )
        except actions.ReportIsSigned as error:
            raise Conflict(error.message) from error
        except actions.EmptyReport as error:
            raise Refused(error.message) from error
        except actions.OneTimePasswordRefused as error:
            raise exceptions.PermissionDenied(error.message) from error
        return self.answer(report)
