"""The reports API used by the editor, dictation clients and integrations."""

from functools import partial
from typing import Any

from django.utils import translation
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Role
from pacs.access import denied, get_instance_for_user, get_study_for_user
from pacs.models import Study
from reporting import actions, selectors
from reporting.models import Report
from reporting.selectors import report_state
from reporting.serializers import (
    DictationSerializer,
    ErrorSerializer,
    KeyImageReferenceInSerializer,
    MacroSerializer,
    ReportSerializer,
    ReportTextSerializer,
    SignSerializer,
    TemplateSerializer,
    VersionTextSerializer,
)

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such study, or no access.")
LOCKED = OpenApiResponse(
    ErrorSerializer, description="Signed, or another user holds the lock."
)
NOT_ALLOWED = OpenApiResponse(ErrorSerializer, description="Only radiologists write.")
SIGNED = OpenApiResponse(ErrorSerializer, description="The report is signed.")
# DRF answers a body it cannot validate with each field's errors, not {detail}.
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT,
    description="The body is not valid: a list of errors per field, or detail.",
)


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
        state = selectors.state_for(self.request.user, report_state(report))
        return Response(ReportSerializer(state).data)


class ReportView(ReportAPIView):
    @extend_schema(
        operation_id="report_retrieve",
        summary="The study's report: status, text, versions, delivery state",
        responses={200: ReportSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, study_uid: str) -> Response:
        # Referrers read preliminary and signed reports of studies referred
        # to them; a draft is a 404 to them, like a study they do not have.
        study = selectors.get_readable_study(request.user, study_uid)
        report = actions.do_read_report(request.user, study, request=request._request)
        return self.answer(report)

    @extend_schema(
        operation_id="report_save_draft",
        summary="Save the draft text",
        request=ReportTextSerializer,
        responses={
            200: ReportSerializer,
            400: INVALID,
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
        except (actions.ReportIsSigned, actions.ReportLocked) as error:
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
            400: INVALID,
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
        except (actions.ReportIsSigned, actions.ReportLocked) as error:
            raise Conflict(error.message) from error
        return self.answer(report)


class SignView(ReportAPIView):
    @extend_schema(
        operation_id="report_sign",
        summary="Sign with a fresh one-time password, then queue HL7 delivery",
        request=SignSerializer,
        responses={
            200: ReportSerializer,
            400: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description="The report is empty, or the body is not valid.",
            ),
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
        except (actions.ReportIsSigned, actions.ReportLocked) as error:
            raise Conflict(error.message) from error
        except actions.EmptyReport as error:
            raise Refused(error.message) from error
        except actions.OneTimePasswordRefused as error:
            raise exceptions.PermissionDenied(error.message) from error
        return self.answer(report)


def run(call: Any) -> Any:
    """Run an action, turning its refusals into HTTP answers."""
    try:
        return call()
    except (
        actions.ReportIsSigned,
        actions.ReportLocked,
        actions.ReportNotSigned,
        actions.NoDraftAddendum,
        actions.NothingToAcknowledge,
    ) as error:
        raise Conflict(error.message) from error
    except (actions.EmptyReport, actions.ReportNotIssued) as error:
        raise Refused(error.message) from error
    except actions.OneTimePasswordRefused as error:
        raise exceptions.PermissionDenied(error.message) from error


WRITE_RESPONSES = {200: ReportSerializer, 403: NOT_ALLOWED, 404: NOT_FOUND, 409: LOCKED}


class LockView(ReportAPIView):
    @extend_schema(
        operation_id="report_lock",
        summary="Take or renew the editing lock (an expired one is taken over)",
        request=None,
        responses=WRITE_RESPONSES,
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        report = run(
            partial(
                actions.do_acquire_report_lock,
                request.user,
                study,
                request=request._request,
            )
        )
        return self.answer(report)

    @extend_schema(
        operation_id="report_unlock",
        summary="Release the editing lock",
        request=None,
        responses=WRITE_RESPONSES,
    )
    def delete(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        report = actions.do_release_report_lock(
            request.user, study, request=request._request
        )
        return self.answer(report)


class PreliminaryView(ReportAPIView):
    @extend_schema(
        operation_id="report_preliminary",
        summary="Issue the draft as preliminary: the referrer sees it, marked so",
        request=None,
        responses={**WRITE_RESPONSES, 400: NOT_ALLOWED},
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        report = run(
            partial(
                actions.do_issue_preliminary_report,
                request.user,
                study,
                request=request._request,
            )
        )
        return self.answer(report)


class AddendumView(ReportAPIView):
    @extend_schema(
        operation_id="report_addendum_save",
        summary="Save the draft addendum of a signed report",
        request=DictationSerializer,
        responses={**WRITE_RESPONSES, 400: INVALID},
    )
    def put(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        body = DictationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        addendum = run(
            partial(
                actions.do_save_addendum,
                request.user,
                study,
                body.validated_data["text"],
                request=request._request,
            )
        )
        return self.answer(addendum.report)


class AddendumSignView(ReportAPIView):
    @extend_schema(
        operation_id="report_addendum_sign",
        summary="Sign the draft addendum with a fresh one-time password",
        request=SignSerializer,
        responses={**WRITE_RESPONSES, 400: INVALID},
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        body = SignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        addendum = run(
            partial(
                actions.do_sign_addendum,
                request.user,
                study,
                body.validated_data["otp"],
                request=request._request,
            )
        )
        return self.answer(addendum.report)


class CriticalView(ReportAPIView):
    @extend_schema(
        operation_id="report_flag_critical",
        summary="Flag a critical finding; the study's referrers are notified",
        request=None,
        responses={**WRITE_RESPONSES, 400: NOT_ALLOWED},
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        report = run(
            partial(
                actions.do_flag_critical_finding,
                request.user,
                study,
                request=request._request,
            )
        )
        return self.answer(report)


class AcknowledgeView(ReportAPIView):
    @extend_schema(
        operation_id="report_acknowledge_critical",
        summary="A referrer acknowledges the critical finding (who and when kept)",
        request=None,
        responses={
            200: ReportSerializer,
            403: OpenApiResponse(ErrorSerializer, description="Only referrers."),
            404: NOT_FOUND,
            409: LOCKED,
        },
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = selectors.get_readable_study(request.user, study_uid)
        if getattr(request.user, "role", None) != Role.REFERRER:
            raise exceptions.PermissionDenied(
                _("Critical findings are acknowledged by the referring clinician.")
            )
        report = run(
            partial(
                actions.do_acknowledge_critical_finding,
                request.user,
                study,
                request=request._request,
            )
        )
        return self.answer(report)


class ImageReferenceView(ReportAPIView):
    @extend_schema(
        operation_id="report_reference_image",
        summary="Cite a key image (frame and window) in the report",
        request=KeyImageReferenceInSerializer,
        responses={**WRITE_RESPONSES, 400: INVALID},
    )
    def post(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        body = KeyImageReferenceInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instance = get_instance_for_user(
            request.user,
            study_uid,
            data["series_instance_uid"],
            data["sop_instance_uid"],
        )
        if data["frame"] > max(instance.number_of_frames, 1):
            raise exceptions.NotFound(_("No such frame."))
        reference = run(
            partial(
                actions.do_reference_key_image,
                request.user,
                study,
                series_instance_uid=data["series_instance_uid"],
                sop_instance_uid=data["sop_instance_uid"],
                frame_number=data["frame"],
                window_center=data.get("window_center"),
                window_width=data.get("window_width"),
                request=request._request,
            )
        )
        return self.answer(reference.report)


class VersionView(ReportAPIView):
    @extend_schema(
        operation_id="report_version",
        summary="The text of one saved version",
        parameters=[
            OpenApiParameter(
                "number", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH
            )
        ],
        responses={200: VersionTextSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, study_uid: str, number: int) -> Response:
        study = selectors.get_readable_study(request.user, study_uid)
        if getattr(request.user, "role", None) != Role.RADIOLOGIST:
            # Earlier drafts are the radiologists' working notes.
            raise denied(
                request.user,  # type: ignore[arg-type]
                "report_version",
                f"{study_uid}/{number}",
                _("No such version."),
            )
        report = actions.do_read_report(
            request.user, study, request=request._request, via="version"
        )
        version = selectors.get_version(report, number)
        return Response(
            VersionTextSerializer(
                {"version": version.version, "kind": version.kind, "text": version.text}
            ).data
        )


class TemplatesView(ReportAPIView):
    @extend_schema(
        operation_id="report_templates",
        summary="The tenant's templates that fit the study, as report text",
        responses={200: TemplateSerializer(many=True), 404: NOT_FOUND},
    )
    def get(self, request: Request, study_uid: str) -> Response:
        study = self.writable_study(request, study_uid)
        templates = [
            {
                "id": template.pk,
                "name": template.name,
                "modality": template.modality,
                "body_part": template.body_part,
                "language": template.language,
                "text": selectors.render_template(template),
            }
            for template in selectors.templates_for_study(
                study, translation.get_language()
            )
        ]
        return Response(TemplateSerializer(templates, many=True).data)


class MacroView(APIView):
    @extend_schema(
        operation_id="report_macro",
        summary="The text of the tenant's macro of that name",
        responses={200: MacroSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, name: str) -> Response:
        if getattr(request.user, "role", None) != Role.RADIOLOGIST:
            raise exceptions.NotFound(_("No such macro."))
        text = selectors.expand_macro(request.tenant, name)  # type: ignore[attr-defined]
        if text is None:
            raise exceptions.NotFound(_("No such macro."))
        return Response(MacroSerializer({"name": name, "text": text}).data)
