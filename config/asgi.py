"""ASGI entry point: Django for HTTP, Channels consumers for /ws/."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from reporting.routing import websocket_urlpatterns  # noqa: E402
from tenants.channels import TenantAuthMiddleware  # noqa: E402
from tenants.consumers import NoSuchServiceConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": TenantAuthMiddleware(
            URLRouter(
                [*websocket_urlpatterns, re_path(r"", NoSuchServiceConsumer.as_asgi())]
            )
        ),
    }
)
