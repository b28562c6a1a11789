"""URLs of a tenant host (<tenant>.localhost): the reading application."""

from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView

admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("", include("pacs.urls")),
    path("accounts/", include("accounts.urls")),
    path("viewer/", include("viewer.urls")),
    path("reports/", include("reporting.urls")),
    path("referrals/", include("referrals.urls")),
    path("api/", include("reporting.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("dicomweb/", include("pacs.dicomweb.urls")),
    path("helpdesk/audit/", include("audit.urls")),
    path("helpdesk/approvals/", include("helpdesk.urls_tenant")),
    path("grants/", include("grants.urls")),
    path("second-opinions/", include("collab.urls")),
    path(
        "second-opinions/viewer/",
        include("collab.urls_viewer", namespace="collab_viewer"),
    ),
    path("reading/", include("reading.urls")),
    path("", include("patients.urls")),
    path("admin/", admin.site.urls),
]
