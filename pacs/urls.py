from django.urls import path

from pacs import views

app_name = "pacs"

urlpatterns = [
    path("", views.worklist_view, name="worklist"),
]
