"""URLs of the bare host (public schema): the platform admin, for onboarding."""

from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

admin.site.__class__ = OTPAdminSite

urlpatterns = [
    # Before the admin, which answers every other path of the bare host:
    # platform helpdesk staff sign in here, and they are not admin staff.
    path("helpdesk/audit/", include("audit.urls")),
    path("helpdesk/", include("helpdesk.urls")),
    path("accounts/", include("accounts.urls")),
    path("", admin.site.urls),
]
