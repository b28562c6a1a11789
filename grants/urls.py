from django.urls import path

from grants import views

app_name = "grants"

urlpatterns = [
    path("", views.manage, name="manage"),
    path("<int:grant_id>/revoke/", views.revoke, name="revoke"),
    path("held/", views.held, name="held"),
]
