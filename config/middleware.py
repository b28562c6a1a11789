from collections.abc import Callable

from csp.middleware import CSPMiddleware, PolicyParts
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from config.health import healthz, readyz
from ops.views import metrics

PROBES = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics}


class HealthProbeMiddleware:
    """Answer /healthz and /readyz on any host name, before tenant resolution.

    Load balancers probe by IP address, which is no tenant's domain.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's policy, with this host's websocket origin in connect-src.

    CSP Level 3 browsers count ws(s):// of the page's own host as 'self';
    older ones do not, and the report editor and dictation need the socket.
    A host outside ALLOWED_HOSTS gets the policy without it.

    Django admin pages (hospital IT's and the platform's) also allow inline
    styles: django-tenants' admin templates carry a <style> block and style
    attributes. Never inline scripts, and no page with patient data.
    """

    def get_policy_parts(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        report_only: bool = False,
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if report_only or parts.update is not None:
            return parts
        try:
            host = request.get_host()
        except DisallowedHost:
            return parts
        scheme = "wss" if request.is_secure() else "ws"
        parts.update = {"connect-src": [f"{scheme}://{host}"]}
        match = getattr(request, "resolver_match", None)
        if match is not None and "admin" in match.app_names:
            parts.update["style-src"] = ["'unsafe-inline'"]
        return parts
