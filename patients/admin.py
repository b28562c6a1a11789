from django.contrib import admin
from django.http import HttpRequest

from patients.models import PatientAccessSettings


@admin.register(PatientAccessSettings)
class PatientAccessSettingsAdmin(admin.ModelAdmin):
    """One row per tenant: hospital IT sets how long new patient links last."""

    list_display = ("__str__", "link_days")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not PatientAccessSettings.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
