from django.urls import path

from reporting.consumers import ReportConsumer
from reporting.dictation_consumer import DictationConsumer

websocket_urlpatterns = [
    path("ws/studies/<str:study_uid>/report/", ReportConsumer.as_asgi()),
    path("ws/studies/<str:study_uid>/dictation/", DictationConsumer.as_asgi()),
]
