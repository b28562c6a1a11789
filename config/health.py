"""Liveness and readiness probes for load balancers and orchestrators."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from redis import Redis
from redis.exceptions import RedisError

from config.celery import app as celery_app


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "redis": _redis_ok(), "worker": _worker_ok()}
    ready = all(checks.values())
    return JsonResponse(
        {"ready": ready, "checks": checks}, status=200 if ready else 503
    )


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means not ready
        return False


def _redis_ok() -> bool:
    try:
        return bool(Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping())
    except RedisError:
        return False


def _worker_ok() -> bool:
    try:
        return bool(celery_app.control.ping(timeout=1.0))
    except Exception:  # noqa: BLE001 - broker down or no worker
        return False
