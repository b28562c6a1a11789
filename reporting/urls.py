from django.urls import path

from reporting import views

app_name = "reporting"

urlpatterns = [
    path("studies/<str:study_uid>/", views.report_editor, name="editor"),
]
