import copy
import threading
import time
from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import translation
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import get_public_schema_name

from accounts.language import language_for
from accounts.wrong_host import UNKNOWN_HOST, record_wrong_host
from tenants.models import Domain, Tenant, normalise_host

# How long a process trusts its copy of a host's tenant. A change made in
# this process (suspension, new domain) applies at once; other processes
# see it within this many seconds.
TENANT_CACHE_SECONDS = 10.0

_tenants_by_host: dict[str, tuple[Tenant, float]] = {}
_lock = threading.Lock()


class TenantByHostMiddleware(TenantMainMiddleware):
    """Selects the tenant's schema from the host name, ignoring its case.

    Host names are case-insensitive (RFC 4343): DEMO.localhost is demo.localhost.
    The tenant of each host is remembered for a few seconds: looking it up
    was a database round trip on every request, every viewer frame included.
    """

    @staticmethod
    def hostname_from_request(request: HttpRequest) -> str:
        # Domains are stored the same way (tenants.models.normalise_host).
        return normalise_host(TenantMainMiddleware.hostname_from_request(request))

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        refused = super().process_request(request)
        if refused is not None:
            return refused
        tenant = request.tenant  # type: ignore[attr-defined]
        if tenant.is_active or tenant.schema_name == get_public_schema_name():
            return None
        return suspended_response(request, tenant)

    def no_tenant_found(self, request: HttpRequest, hostname: str) -> Any:
        # A credential sent to a host no tenant has: someone trying hosts
        # with a cookie or token of one of them. Recorded in the platform's
        # trail; a request without one is only a scanner (404, no record).
        key = request.COOKIES.get(settings.SESSION_COOKIE_NAME, "")
        token = request.META.get("HTTP_AUTHORIZATION", "")
        if key or token:
            record_wrong_host(
                get_public_schema_name(),
                address=request.META.get("REMOTE_ADDR"),
                reason=UNKNOWN_HOST,
                credential=key or token,
                detail={"host": hostname[:100], "answer": 404},
            )
        return super().no_tenant_found(request, hostname)

    def get_tenant(self, domain_model: Any, hostname: str) -> Tenant:
        now = time.monotonic()
        with _lock:
            cached = _tenants_by_host.get(hostname)
        if cached is not None and cached[1] > now:
            return copy.copy(cached[0])  # each request sets its own domain_url
        tenant = super().get_tenant(domain_model, hostname)
        with _lock:
            _tenants_by_host[hostname] = (tenant, now + TENANT_CACHE_SECONDS)
        return copy.copy(tenant)


@receiver([post_save, post_delete], sender=Tenant)
@receiver([post_save, post_delete], sender=Domain)
def forget_tenants(**_kwargs: Any) -> None:
    with _lock:
        _tenants_by_host.clear()


def remembered_schema(hostname: str) -> str | None:
    """The schema of an active tenant this process looked up lately, else None.

    For code in front of Django (viewer/fastpath.py) that must not touch the
    database: on None it hands the request to Django, which looks it up.
    """
    with _lock:
        cached = _tenants_by_host.get(normalise_host(hostname))
    if cached is None or cached[1] <= time.monotonic() or not cached[0].is_active:
        return None
    return str(cached[0].schema_name)


def suspended_response(request: HttpRequest, tenant: Tenant) -> HttpResponse:
    """A suspended tenant's hosts answer this page, and nothing else, with 503.

    It comes before sessions and LocaleMiddleware: the language is the
    browser's (within the tenant's), and no session, user or patient data is
    looked at.
    """
    asked = translation.get_language_from_request(request)
    language = language_for(None, tenant, asked=asked)
    with translation.override(language):
        page = render_to_string(
            "tenants/suspended.html", {"tenant_name": tenant.name, "lang": language}
        )
    response = HttpResponse(page, status=503)
    response["Cache-Control"] = "no-store"
    response["Retry-After"] = "3600"
    # Answered before the CSP middleware runs: the page sets its own policy.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'self'"
    response["X-Content-Type-Options"] = "nosniff"
    return response
