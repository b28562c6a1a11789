"""URLs of the bare host (public schema): the platform admin, for onboarding."""

from django.contrib import admin
from django.urls import include, path
from django_otp.admin import OTPAdminSite

admin.site.__class__ = OTPAdminSite

urlpatterns = [
    path("", admin.site.urls),
    path("accounts/", include("accounts.urls")),
]
