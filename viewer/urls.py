from django.urls import path

from viewer import views

app_name = "viewer"

urlpatterns = [
    path("studies/<str:study_uid>/", views.study_viewer, name="study"),
]
