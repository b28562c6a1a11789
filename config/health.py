"""Liveness and readiness probes for load balancers and orchestrators."""

from django.http import HttpRequest, JsonResponse

from ops.readiness import checks


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every dependency answers (ops/readiness.py), else 503 naming them."""
    found = checks()
    ready = all(found.values())
    return JsonResponse({"ready": ready, "checks": found}, status=200 if ready else 503)
