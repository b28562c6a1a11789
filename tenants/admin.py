from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_tenants.admin import TenantAdminMixin

from accounts.models import Role
from audit.actions import do_record_event
from audit.models import EventType
from tenants import selectors
from tenants.actions import (
    PUBLIC_SCHEMA,
    TenantNotDeletable,
    deletion_refusal,
    do_check_tenant,
    do_delete_tenant,
    do_export_tenant,
    do_onboard_tenant,
    do_reactivate_tenant,
    do_suspend_tenant,
)
from tenants.forms import OnboardingForm
from tenants.models import Domain, Tenant, TenantExport


def is_platform_admin(request: HttpRequest) -> bool:
    """The tenant registry is the platform's: never on a tenant's own host."""
    return (
        connection.schema_name == PUBLIC_SCHEMA
        and request.user.is_active
        and getattr(request.user, "role", "") == Role.PLATFORM_ADMIN
    )


class PlatformOnlyAdmin(admin.ModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_platform_admin(request) and super().has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_platform_admin(request) and super().has_change_permission(
            request, obj
        )


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 1
    min_num = 1


class DeleteTenantForm(forms.Form):
    confirm_schema = forms.CharField(
        label=gettext_lazy("Type the schema name to confirm"), max_length=63
    )
    custody_handed_over = forms.BooleanField(
        label=gettext_lazy(
            "The hospital has taken over the export (needed while studies are "
            "within the retention period)"
        ),
        required=False,
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_confirm_schema(self) -> str:
        value = self.cleaned_data["confirm_schema"].strip()
        if value != self.tenant.schema_name:
            raise ValidationError(_("This is not the tenant's schema name."))
        return value


@admin.register(Tenant)
class TenantAdmin(TenantAdminMixin, PlatformOnlyAdmin):
    change_form_template = "admin/tenants/tenant/change_form.html"
    change_list_template = "admin/tenants/tenant/change_list.html"
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
    actions = ["suspend_tenants", "reactivate_tenants"]
    fieldsets = (
        (None, {"fields": ("name", "schema_name", "is_active")}),
        (
            gettext_lazy("Sessions and languages"),
            {"fields": ("idle_timeout_minutes", "languages")},
        ),
        (gettext_lazy("Retention"), {"fields": ("retention_days",)}),
        ("DICOM", {"fields": ("ae_title", "only_known_peers_may_store")}),
        (
            gettext_lazy("RIS (HL7 v2 over MLLP)"),
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).exclude(schema_name=PUBLIC_SCHEMA)

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
        # A schema cannot be renamed once its tables exist; suspension goes
        # through its action, which is audited as such.
        return ("schema_name", "is_active") if obj else ()

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A tenant is created with its first administrator: by onboarding.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting takes an export first: see delete_after_export_view.
        return False

    # --- Actions on the list -------------------------------------------------

    @admin.action(description=gettext_lazy("Suspend the selected tenants"))
    def suspend_tenants(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        changed = sum(do_suspend_tenant(tenant, request=request) for tenant in queryset)
        self.message_user(
            request, _("Suspended tenants: %(count)d.") % {"count": changed}
        )

    @admin.action(description=gettext_lazy("Reactivate the selected tenants"))
    def reactivate_tenants(
        self, request: HttpRequest, queryset: QuerySet[Tenant]
    ) -> None:
        changed = sum(
            do_reactivate_tenant(tenant, request=request) for tenant in queryset
        )
        self.message_user(
            request, _("Reactivated tenants: %(count)d.") % {"count": changed}
        )

    # --- Pages of their own --------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        own = [
            path("onboard/", self._view(self.onboard_view), name="tenants_onboard"),
            path(
                "<int:tenant_id>/checklist/",
                self._view(self.checklist_view),
                name="tenants_checklist",
            ),
            path(
                "<int:tenant_id>/export/",
                self._view(self.export_view),
                name="tenants_export",
            ),
            path(
                "<int:tenant_id>/delete-after-export/",
                self._view(self.delete_after_export_view),
                name="tenants_delete",
            ),
        ]
        return own + super().get_urls()

    def _view(self, view: Any) -> Any:
        methods = require_http_methods(["GET", "POST"])(view)
        return self.admin_site.admin_view(never_cache(methods))

    def _tenant(self, request: HttpRequest, tenant_id: int) -> Tenant:
        if not self.has_change_permission(request):
            raise PermissionDenied
        return get_object_or_404(self.get_queryset(request), pk=tenant_id)

    def _render(
        self, request: HttpRequest, template: str, title: str, **context: Any
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            # The admin's breadcrumbs and object tools call it "original".
            "original": context.get("tenant"),
            **context,
        }
        return TemplateResponse(request, f"admin/tenants/tenant/{template}", context)

    def onboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = OnboardingForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                onboarded = do_onboard_tenant(form.spec(), request=request)
            except ValidationError as error:
                form.add_action_errors(error)
            else:
                return self._render(
                    request,
                    "onboarded.html",
                    _("Hospital onboarded"),
                    onboarded=onboarded,
                    sign_in_url=_sign_in_url(request, onboarded.tenant),
                )
        return self._render(request, "onboard.html", _("Onboard a hospital"), form=form)

    def checklist_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        tenant = self._tenant(request, tenant_id)
        results = None
        if request.method == "POST":
            results = do_check_tenant(tenant, request=request)
        return self._render(
            request,
            "checklist.html",
            _("Onboarding checklist of %(tenant)s") % {"tenant": tenant.name},
            tenant=tenant,
            results=results,
            passed=results is not None and all(result.ok for result in results),
        )

    def export_view(self, request: HttpRequest, tenant_id: int) -> HttpResponse:
        tenant = self._tenant(request, tenant_id)
        if request.method == "POST":
            export = do_export_tenant(tenant, request=request)
            messages.success(
                request,
                _("Exported to %(path)s (SHA-256 %(sha256)s).")
                % {"path": export.path, "sha256": export.sha256},
            )
            return HttpResponseRedirect(request.path)
        return self._render(
            request,
            "export.html",
            _("Export %(tenant)s") % {"tenant": tenant.name},
            tenant=tenant,
            exports=TenantExport.objects.filter(tenant=tenant),
            last_change=selectors.last_change(tenant),
        )

    def delete_after_export_view(
        self, request: HttpRequest, tenant_id: int
    ) -> HttpResponse:
        tenant = self._tenant(request, tenant_id)
        form = DeleteTenantForm(request.POST or None, tenant=tenant)
        if request.method == "POST" and form.is_valid():
            try:
                do_delete_tenant(
                    tenant,
                    request=request,
                    custody_handed_over=form.cleaned_data["custody_handed_over"],
                )
            except TenantNotDeletable as refusal:
                form.add_error(None, str(refusal))
            else:
                messages.success(
                    request,
                    _("Tenant %(schema)s deleted; its export stays.")
                    % {"schema": tenant.schema_name},
                )
                return HttpResponseRedirect(reverse("admin:tenants_tenant_changelist"))
        return self._render(
            request,
            "delete.html",
            _("Delete %(tenant)s") % {"tenant": tenant.name},
            tenant=tenant,
            form=form,
            export=selectors.latest_export(tenant),
            retention_ends_at=selectors.retention_ends_at(tenant),
            # Shown before the form is sent; the action checks again.
            refusal=deletion_refusal(tenant, custody_handed_over=True),
        )


@admin.register(TenantExport)
class TenantExportAdmin(PlatformOnlyAdmin):
    list_display = (
        "schema_name",
        "created_at",
        "created_by",
        "study_count",
        "instance_count",
        "size",
        "sha256",
    )
    readonly_fields = list_display + ("path", "covers_until", "tenant")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The record of what was handed over outlives the tenant.
        return False


def _sign_in_url(request: HttpRequest, tenant: Tenant) -> str:
    domain = tenant.get_primary_domain()
    port = request.get_port()
    default = "443" if request.is_secure() else "80"
    host = domain.domain if port == default else f"{domain.domain}:{port}"
    scheme = "https" if request.is_secure() else "http"
    return f"{scheme}://{host}{reverse('accounts:login', urlconf='config.urls')}"
