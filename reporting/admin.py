from django.contrib import admin
from django.utils.translation import gettext_lazy as _

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
class StudyReferralAdmin(admin.ModelAdmin):
    list_display = ("study", "referrer", "created_at")
    raw_id_fields = ("study", "referrer")
