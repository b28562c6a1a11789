"""ASGI entry point: Django for HTTP, Channels consumers for /ws/."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402
from asgiref.sync import sync_to_async  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.base import BaseHandler  # noqa: E402
from django.http import HttpRequest, HttpResponseBase  # noqa: E402


class SyncViewsASGIHandler(ASGIHandler):
    """Django over ASGI, each request's middleware and view in one thread hop.

    Every Nimbus view and middleware is synchronous. Django's own ASGI path
    hops from the event loop into a thread for the middleware, back to the
    loop for its async view layer, and into a thread again for the view:
    three context switches that cost more than a QIDO-RS search. Here the
    whole synchronous stack runs in one call to a worker thread.
    """

    def __init__(self) -> None:
        BaseHandler.__init__(self)
        self.load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


django.setup(set_prefix=False)
django_asgi_app = SyncViewsASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from referrals.routing import websocket_urlpatterns as referral_sockets  # noqa: E402
from reporting.routing import websocket_urlpatterns  # noqa: E402
from tenants.channels import TenantAuthMiddleware  # noqa: E402
from tenants.consumers import NoSuchServiceConsumer  # noqa: E402
from viewer.fastpath import FastFrames, fast_path_possible  # noqa: E402

# Cached viewer frames are answered before Django (viewer/fastpath.py).
http_application = (
    FastFrames(django_asgi_app) if fast_path_possible() else django_asgi_app
)

application = ProtocolTypeRouter(
    {
        "http": http_application,
        "websocket": TenantAuthMiddleware(
            URLRouter(
                [
                    *websocket_urlpatterns,
                    *referral_sockets,
                    re_path(r"", NoSuchServiceConsumer.as_asgi()),
                ]
            )
        ),
    }
)
