"""Hospital IT configures the queue: turnaround times, reading groups, rules."""

from typing import Any

from django.contrib import admin
from django.db import connection
from django.db.models import Model
from django.forms import ModelForm
from django.http import HttpRequest
from django_tenants.utils import get_public_schema_name

from accounts.models import Role
from audit.actions import do_record_event
from audit.models import EventType
from reading.models import AssignmentRule, ReadingGroup, ReadingSettings


class TenantQueueAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Open to the tenant's administrators; each change is audited."""

    def _allowed(self, request: HttpRequest) -> bool:
        # A tenant's tables: the public schema (platform admin) has none.
        if connection.schema_name == get_public_schema_name():
            return False
        user = request.user
        return bool(
            user.is_active
            and user.is_staff
            and (user.is_superuser or getattr(user, "role", "") == Role.TENANT_ADMIN)
        )

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request)

    def save_model(
        self,
        request: HttpRequest,
        obj: Model,
        form: ModelForm,
        change: bool,  # type: ignore[type-arg]
    ) -> None:
        super().save_model(request, obj, form, change)
        self._audit(request, obj, "changed" if change else "added", form.changed_data)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        self._audit(request, obj, "deleted", [])
        super().delete_model(request, obj)

    def _audit(
        self, request: HttpRequest, obj: Model, action: str, fields: list[str]
    ) -> None:
        do_record_event(
            EventType.TENANT_CHANGED,
            request=request,
            object_type=obj._meta.model_name or "",
            object_id=str(obj.pk),
            detail={"action": action, "fields": fields},
        )


@admin.register(ReadingSettings)
class ReadingSettingsAdmin(TenantQueueAdmin):
    list_display = ("__str__", "stat_minutes", "urgent_minutes", "routine_minutes")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request) and not ReadingSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReadingGroup)
class ReadingGroupAdmin(TenantQueueAdmin):
    list_display = ("name",)
    search_fields = ("name",)
    filter_horizontal = ("members",)


@admin.register(AssignmentRule)
class AssignmentRuleAdmin(TenantQueueAdmin):
    list_display = (
        "position",
        "name",
        "active",
        "modality",
        "body_part_examined",
        "institution_name",
        "station_name",
        "calling_ae_title",
        "radiologist",
        "group",
    )
    list_display_links = ("name",)
    list_editable = ("position", "active")
    list_filter = ("active", "group")
