from django.urls import path

from referrals.consumers import NoticeConsumer

websocket_urlpatterns = [
    path("ws/referrals/notices/", NoticeConsumer.as_asgi()),
]
