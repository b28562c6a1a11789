from django.urls import path

from reporting import views

app_name = "reporting"

urlpatterns = [
    path("studies/<str:study_uid>/", views.report_editor, name="editor"),
    path("studies/<str:study_uid>/versions/", views.report_versions, name="versions"),
    path("studies/<str:study_uid>/acknowledge/", views.acknowledge, name="acknowledge"),
    path("notifications/", views.notifications, name="notifications"),
]
