from django.contrib import admin
from django.db import connection
from django.http import HttpRequest
from django_tenants.utils import get_public_schema_name

from patients.models import PatientAccessSettings


@admin.register(PatientAccessSettings)
class PatientAccessSettingsAdmin(admin.ModelAdmin):
    """One row per tenant: hospital IT sets how long new patient links last."""

    list_display = ("__str__", "link_days")

    def has_module_permission(self, request: HttpRequest) -> bool:
        # A tenant's setting: the platform admin (public schema) has no table.
        return connection.schema_name != get_public_schema_name()

    def has_add_permission(self, request: HttpRequest) -> bool:
        if not self.has_module_permission(request):
            return False
        return not PatientAccessSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
