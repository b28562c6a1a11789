from django.http import HttpRequest
from django_tenants.middleware.main import TenantMainMiddleware


class TenantByHostMiddleware(TenantMainMiddleware):
    """Selects the tenant's schema from the host name, ignoring its case.

    Host names are case-insensitive (RFC 4343): DEMO.localhost is demo.localhost.
    """

    @staticmethod
    def hostname_from_request(request: HttpRequest) -> str:
        return TenantMainMiddleware.hostname_from_request(request).lower()
