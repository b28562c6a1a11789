"""The tenant host's part: a tenant administrator's MFA reset approvals."""

from django.urls import path

from helpdesk import views

app_name = "helpdesk_approvals"

urlpatterns = [
    path("", views.approvals, name="list"),
    path("<int:reset_id>/approve/", views.decide, {"approve": True}, name="approve"),
    path("<int:reset_id>/refuse/", views.decide, {"approve": False}, name="refuse"),
]
