"""Request and response shapes of the reports API (documented at /api/schema/)."""

from rest_framework import serializers

from reporting.models import AddendumStatus, DeliveryState, ReportStatus, VersionKind

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
    # Line breaks are dictation ("new paragraph"); the action trims spaces.
    # min_length: blank is refused anyway; the schema says so (schemathesis).
    text = serializers.CharField(
        min_length=1, max_length=MAX_REPORT_CHARACTERS, trim_whitespace=False
    )


class SignSerializer(serializers.Serializer[None]):
    otp = serializers.CharField(min_length=1, max_length=16)


class KeyImageReferenceInSerializer(serializers.Serializer[None]):
    series_instance_uid = serializers.CharField(min_length=1, max_length=64)
    sop_instance_uid = serializers.CharField(min_length=1, max_length=64)
    frame = serializers.IntegerField(min_value=1, default=1)
    window_center = serializers.FloatField(required=False, allow_null=True)
    window_width = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0
    )


class ReportVersionSerializer(serializers.Serializer[None]):
    version = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ReportStatus.choices)
    kind = serializers.ChoiceField(choices=VersionKind.choices)
    addendum = serializers.IntegerField(
        allow_null=True, help_text="The addendum's number when kind is addendum."
    )
    saved_by = serializers.CharField()
    saved_at = serializers.DateTimeField()


class DeliverySerializer(serializers.Serializer[None]):
    state = serializers.ChoiceField(choices=DeliveryState.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField(allow_blank=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


class LockSerializer(serializers.Serializer[None]):
    holder = serializers.CharField(
        allow_blank=True, help_text="Who edits the report now; empty when free."
    )
    expires_at = serializers.DateTimeField(allow_null=True)
    as_of = serializers.FloatField(
        help_text="When the server read the lock (Unix time): keep the newest."
    )


class AddendumSerializer(serializers.Serializer[None]):
    number = serializers.IntegerField()
    status = serializers.ChoiceField(choices=AddendumStatus.choices)
    text = serializers.CharField(allow_blank=True)
    signed_by = serializers.CharField(allow_blank=True)
    signed_at = serializers.DateTimeField(allow_null=True)


class CriticalFindingSerializer(serializers.Serializer[None]):
    flagged = serializers.BooleanField()
    flagged_by = serializers.CharField(allow_blank=True)
    flagged_at = serializers.DateTimeField(allow_null=True)
    notified = serializers.ListField(child=serializers.CharField())
    acknowledged_by = serializers.CharField(allow_blank=True)
    acknowledged_at = serializers.DateTimeField(allow_null=True)


class KeyImageReferenceSerializer(serializers.Serializer[None]):
    number = serializers.IntegerField()
    series_instance_uid = serializers.CharField()
    sop_instance_uid = serializers.CharField()
    frame = serializers.IntegerField()
    window_center = serializers.FloatField(allow_null=True)
    window_width = serializers.FloatField(allow_null=True)
    viewer_url = serializers.CharField()


class ReportSerializer(serializers.Serializer[None]):
    study_instance_uid = serializers.CharField()
    status = serializers.ChoiceField(choices=ReportStatus.choices)
    text = serializers.CharField(
        allow_blank=True,
        help_text=(
            "Radiologists: the live text. Anyone else: the text as last issued "
            "(preliminary or signed), never a later unsigned edit."
        ),
    )
    version = serializers.IntegerField(
        help_text="The version of that text (for a referrer, the issued one)."
    )
    issued_version = serializers.IntegerField(
        allow_null=True,
        help_text="The version last issued as preliminary or signed; null for a draft.",
    )
    unissued_changes = serializers.BooleanField(
        help_text="Preliminary and edited since issued: the referrer does not see it."
    )
    versions = ReportVersionSerializer(many=True)
    signed_by = serializers.CharField(allow_blank=True)
    signed_at = serializers.DateTimeField(allow_null=True)
    delivery = DeliverySerializer(
        allow_null=True, help_text="The latest HL7 message to the RIS, if signed."
    )
    preliminary_at = serializers.DateTimeField(allow_null=True)
    result_status = serializers.CharField(
        allow_blank=True, help_text="HL7 result status: P, F or C; empty for a draft."
    )
    lock = LockSerializer()
    addenda = AddendumSerializer(many=True)
    critical = CriticalFindingSerializer()
    image_references = KeyImageReferenceSerializer(many=True)


class VersionTextSerializer(serializers.Serializer[None]):
    version = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=VersionKind.choices)
    text = serializers.CharField(allow_blank=True)


class TemplateSerializer(serializers.Serializer[None]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    modality = serializers.CharField(allow_blank=True)
    body_part = serializers.CharField(allow_blank=True)
    language = serializers.CharField(
        allow_blank=True, help_text="Language code of the text; empty: any."
    )
    text = serializers.CharField(help_text="Sections with [[field]] placeholders.")


class MacroSerializer(serializers.Serializer[None]):
    name = serializers.CharField()
    text = serializers.CharField()


class ErrorSerializer(serializers.Serializer[None]):
    detail = serializers.CharField()
