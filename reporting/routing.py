from django.urls import path

from reporting.consumers import ReportConsumer

websocket_urlpatterns = [
    path("ws/studies/<str:study_uid>/report/", ReportConsumer.as_asgi()),
]
