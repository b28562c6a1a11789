"""``/metrics`` for Prometheus: from this machine, or with the metrics token."""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus.exports import ExportToDjangoView

from ops.metrics import register_collector


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format; 404 to anyone not allowed (no hint it exists).

    With ``NIMBUS_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>``
    is let in. Without it, only a direct client on the loopback address: a
    request that came through the reverse proxy carries X-Forwarded-For
    (and deploy/nginx refuses /metrics anyway).
    """
    if not _allowed(request):
        return HttpResponse(status=404)
    register_collector()
    response: HttpResponse = ExportToDjangoView(request)
    response["Cache-Control"] = "no-store"
    return response


def _allowed(request: HttpRequest) -> bool:
    token = settings.NIMBUS_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    if "X-Forwarded-For" in request.headers:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False
