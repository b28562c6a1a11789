from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "event_type",
        "outcome",
        "actor_username",
        "object_type",
        "object_id",
    )
    list_filter = ("event_type", "outcome")
    search_fields = ("actor_username", "patient_id", "study_instance_uid", "object_id")
    date_hierarchy = "occurred_at"

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
