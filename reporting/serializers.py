"""Request and response shapes of the reports API (documented at /api/schema/)."""

from rest_framework import serializers

from reporting.models import DeliveryState, ReportStatus

MAX_REPORT_CHARACTERS = 100_000


class ReportTextSerializer(serializers.Serializer[None]):
    text = serializers.CharField(
        allow_blank=True, trim_whitespace=False, max_length=MAX_REPORT_CHARACTERS
    )
    version = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text=(
            "The version this text was edited from. If the report has moved on "
            "since, the save is refused with 409 and the current report."
        ),
    )


class DictationSerializer(serializers.Serializer[None]):
    text = serializers.CharField(max_length=MAX_REPORT_CHARACTERS)


class SignSerializer(serializers.Serializer[None]):
    otp = serializers.CharField(max_length=16)


class ReportVersionSerializer(serializers.Serializer[None]):
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ReportStatus.choices)
    saved_by = serializers.CharField()
    saved_at = serializers.DateTimeField()


class DeliverySerializer(serializers.Serializer[None]):
    state = serializers.ChoiceField(choices=DeliveryState.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


class ReportSerializer(serializers.Serializer[None]):
    study_instance_uid = serializers.CharField()
    status = serializers.ChoiceField(choices=ReportStatus.choices)
    text = serializers.CharField(allow_blank=True)
    version = serializers.IntegerField()
    versions = ReportVersionSerializer(many=True)
    signed_by = serializers.CharField(allow_blank=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    delivery = DeliverySerializer(
        allow_null=True, help_text="The latest HL7 message to the RIS, if signed."
    )


class ErrorSerializer(serializers.Serializer[None]):
    detail = serializers.CharField()
