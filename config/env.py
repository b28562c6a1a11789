"""Small typed readers for settings taken from the environment.

Each reader refuses a malformed value at start-up rather than letting a typo
become a silent default. Every variable is listed in docs/configuration.md.
"""

import os
import ssl
from urllib.parse import parse_qsl, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"The environment variable {name} is required.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str, pool_size: int = 0) -> dict[str, object]:
    """Turn postgresql://user:pass@host:port/name into a DATABASES entry.

    With ``pool_size`` above 0, connections come from a psycopg pool of at
    most that many. Under ASGI each request runs in a thread of its own, so
    a persistent (CONN_MAX_AGE) connection is never reused: every request
    opened a new PostgreSQL connection, about 15 ms of a 20 ms frame.
    """
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured("DATABASE_URL must be a postgresql:// URL.")
    query = dict(parse_qsl(parsed.query))
    host = query.pop("host", "") or parsed.hostname or ""
    options: dict[str, object] = {"server_side_binding": True}
    options.update(_postgresql_tls_options(query))
    if pool_size > 0:
        options["pool"] = {"min_size": 1, "max_size": pool_size, "timeout": 30}
    return {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": unquote(parsed.path.lstrip("/")) or "nimbus",
        "USER": unquote(parsed.username or "postgres"),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "OPTIONS": options,
        # A pooled connection goes back to the pool after each request.
        "CONN_MAX_AGE": 0 if pool_size > 0 else 60,
        "CONN_HEALTH_CHECKS": pool_size == 0,
    }


# libpq's TLS connection parameters (PostgreSQL docs, 32.1.2), passed to
# psycopg as they are: sslmode=verify-full checks the chain against
# sslrootcert and the host name against the server's certificate.
_POSTGRESQL_TLS_PARAMETERS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "ssl_min_protocol_version",
)
_POSTGRESQL_SSLMODES = frozenset(
    {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
)


def _postgresql_tls_options(query: dict[str, str]) -> dict[str, str]:
    options = {
        name: query[name] for name in _POSTGRESQL_TLS_PARAMETERS if name in query
    }
    mode = options.get("sslmode")
    if mode is not None and mode not in _POSTGRESQL_SSLMODES:
        raise ImproperlyConfigured(f"DATABASE_URL: unknown sslmode {mode!r}.")
    return options


_REDIS_CERT_REQS = {
    "required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}


def redis_tls_from_url(url: str) -> dict[str, object] | None:
    """The TLS options of a rediss:// URL, as Celery's broker_use_ssl takes them.

    redis-py (the cache, Channels, the health probe) reads the same query
    parameters from the URL itself; kombu does not, and refuses a rediss://
    broker without them. None for a redis:// or unix:// URL. Without
    ``ssl_cert_reqs`` the server is verified (``required``), chain and host
    name, against ``ssl_ca_certs`` or the system's CAs.
    """
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured("REDIS_URL must be a redis:// or rediss:// URL.")
    if parsed.scheme != "rediss":
        return None
    query = dict(parse_qsl(parsed.query))
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in _REDIS_CERT_REQS:
        raise ImproperlyConfigured(
            "REDIS_URL: ssl_cert_reqs must be required, optional or none."
        )
    options: dict[str, object] = {"ssl_cert_reqs": _REDIS_CERT_REQS[reqs]}
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if query.get(name):
            options[name] = query[name]
    if "ssl_check_hostname" in query:
        options["ssl_check_hostname"] = query["ssl_check_hostname"].lower() in {
            "1",
            "true",
            "yes",
            "on",
        }
    return options
