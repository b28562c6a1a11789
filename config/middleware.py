from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from config.health import healthz, readyz

PROBES = {"/healthz": healthz, "/readyz": readyz}


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
