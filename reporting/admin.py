from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.models import Role, User
from reading.admin import TenantQueueAdmin
from referrals.actions import do_end_referral, do_share_study_with_referrer
from reporting.models import PickList, ReportMacro, ReportTemplate, StudyReferral


@admin.register(ReportTemplate)
class ReportTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "modality", "body_part", "language", "active", "updated_at")
    list_filter = ("modality", "language", "active")
    search_fields = ("name", "body_part")
    fieldsets = (
        (None, {"fields": ("name", "modality", "body_part", "language", "active")}),
        (
            _("Sections"),
            {
                "fields": (
                    "clinical_information",
                    "technique",
                    "comparison",
                    "findings",
                    "impression",
                ),
                "description": _(
                    "[[name]] marks a field; a pick-list of that name offers its "
                    "choices there."
                ),
            },
        ),
    )


@admin.register(PickList)
class PickListAdmin(admin.ModelAdmin):
    list_display = ("name",)


@admin.register(ReportMacro)
class ReportMacroAdmin(admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name", "text")


@admin.register(StudyReferral)
class StudyReferralAdmin(TenantQueueAdmin):
    """Hospital IT shares a study with a referrer or ends it; both audited.

    A referral is given or ended, never edited into another study's.
    """

    list_display = ("study", "referrer", "created_at")
    raw_id_fields = ("study", "referrer")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> Any:
        if db_field.name == "referrer":
            kwargs["queryset"] = User.objects.filter(role=Role.REFERRER, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(
        self,
        request: HttpRequest,
        obj: StudyReferral,
        form: ModelForm,  # type: ignore[type-arg]
        change: bool,
    ) -> None:
        shared = do_share_study_with_referrer(
            request, obj.study, obj.referrer, via="admin"
        )
        obj.pk = shared.pk

    def delete_model(self, request: HttpRequest, obj: StudyReferral) -> None:
        do_end_referral(request, obj, via="admin")

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[StudyReferral]
    ) -> None:
        for referral in queryset.select_related("study__patient", "referrer"):
            do_end_referral(request, referral, via="admin")
