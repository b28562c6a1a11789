from django.urls import path

from helpdesk import views

app_name = "helpdesk"

urlpatterns = [
    path("", views.console, name="console"),
    path("tenants/<slug:schema>/", views.tenant, name="tenant"),
    path("tenants/<slug:schema>/users/<int:user_id>/", views.user, name="user"),
    path(
        "tenants/<slug:schema>/users/<int:user_id>/mfa-reset/",
        views.request_mfa_reset,
        name="request_mfa_reset",
    ),
    path(
        "tenants/<slug:schema>/remote-aes/<int:ae_id>/echo/",
        views.echo_remote_ae,
        name="echo_remote_ae",
    ),
]
