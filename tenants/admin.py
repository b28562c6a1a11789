from django.contrib import admin
from django.utils.translation import gettext_lazy as _
from django_tenants.admin import TenantAdminMixin

from audit.actions import do_record_event
from audit.models import EventType
from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 1
    min_num = 1


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "schema_name",
        "ae_title",
        "ris_host",
        "ris_port",
        "is_active",
    )
    search_fields = ("name", "schema_name", "ae_title")
    list_filter = ("is_active",)
    inlines = [DomainInline]
    fieldsets = (
        (None, {"fields": ("name", "schema_name", "is_active")}),
        (_("Sessions"), {"fields": ("idle_timeout_minutes",)}),
        ("DICOM", {"fields": ("ae_title", "only_known_peers_may_store")}),
        (
            "RIS (HL7 v2 over MLLP)",
            {
                "fields": (
                    "ris_host",
                    "ris_port",
                    "ris_receiving_application",
                    "ris_receiving_facility",
                    "ris_tls",
                    "ris_tls_ca_file",
                    "ris_tls_cert_file",
                    "ris_tls_key_file",
                )
            },
        ),
    )

    def get_queryset(self, request):  # type: ignore[no-untyped-def]
        return super().get_queryset(request).exclude(schema_name="public")

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        super().save_model(request, obj, form, change)
        # Recorded in the public schema, where platform staff work.
        do_record_event(
            EventType.TENANT_CHANGED,
            request=request,
            object_type="tenant",
            object_id=obj.schema_name,
            detail={"created": not change, "changed": sorted(form.changed_data)},
        )

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        # A schema cannot be renamed once its tables exist.
        return ("schema_name",) if obj else ()
