from django.urls import path

from reporting import api

urlpatterns = [
    path("studies/<str:study_uid>/report", api.ReportView.as_view(), name="report"),
    path(
        "studies/<str:study_uid>/report/dictation",
        api.DictationView.as_view(),
        name="report-dictation",
    ),
    path(
        "studies/<str:study_uid>/report/sign",
        api.SignView.as_view(),
        name="report-sign",
    ),
]
