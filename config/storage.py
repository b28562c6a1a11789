"""Where the DICOM archive lives: a local folder, or an S3-compatible bucket.

``NIMBUS_STORAGE`` is a folder (the default, ``$NIMBUS_VAR_DIR/storage``) or
``s3://bucket[/prefix]``. For a bucket, the endpoint, keys and TLS trust come
from ``NIMBUS_S3_*`` variables (docs/configuration.md) and reads go through a
bounded local cache (``pacs.storage_backends``). Keys are
``[prefix/]<schema>/<study>/<series>/<sop>.dcm``: each tenant under its own
prefix, so a tenant's files can be listed, copied and removed alone.
"""

import ipaddress
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_str

S3_BACKEND = "pacs.storage_backends.ArchiveS3Storage"
LOCAL_BACKEND = "django.core.files.storage.FileSystemStorage"


def storage_setting(value: str, var_dir: Path) -> dict[str, object]:
    """The ``STORAGES["default"]`` entry for ``NIMBUS_STORAGE``'s ``value``."""
    if not value.startswith("s3://"):
        return {"BACKEND": LOCAL_BACKEND, "OPTIONS": {"location": value}}

    parsed = urlparse(value)
    if not parsed.netloc:
        raise ImproperlyConfigured("NIMBUS_STORAGE must be s3://bucket[/prefix].")
    endpoint = env_str("NIMBUS_S3_ENDPOINT_URL", "")
    access_key = env_str("NIMBUS_S3_ACCESS_KEY_ID", "")
    secret_key = env_str("NIMBUS_S3_SECRET_ACCESS_KEY", "")
    if bool(access_key) != bool(secret_key):
        raise ImproperlyConfigured(
            "NIMBUS_S3_ACCESS_KEY_ID and NIMBUS_S3_SECRET_ACCESS_KEY: both or "
            "neither (neither: boto3's own credential chain)."
        )
    return {
        "BACKEND": S3_BACKEND,
        "OPTIONS": {
            "bucket_name": parsed.netloc,
            "location": parsed.path.strip("/"),
            "endpoint_url": endpoint or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "region_name": env_str("NIMBUS_S3_REGION", "us-east-1"),
            "verify": s3_verify(
                endpoint,
                env_str("NIMBUS_S3_CA_BUNDLE", ""),
                plain_http_allowed=env_bool("NIMBUS_S3_PLAIN_HTTP_NETWORK", False),
            ),
            "cache_dir": env_str(
                "NIMBUS_STORAGE_CACHE", str(var_dir / "storage-cache")
            ),
            "cache_max_mb": env_int("NIMBUS_STORAGE_CACHE_MB", 2048),
        },
    }


def s3_verify(
    endpoint: str, ca_bundle: str, *, plain_http_allowed: bool = False
) -> bool | str:
    """botocore's ``verify``: the CA bundle, or the system's CAs; never off.

    Plain HTTP is refused unless the endpoint is on this machine, or the
    operator declares the network between them private
    (``NIMBUS_S3_PLAIN_HTTP_NETWORK``, a compose network on one host):
    elsewhere DICOM files and the request signatures would cross the network
    in clear.
    """
    parsed = urlparse(endpoint)
    if endpoint and parsed.scheme not in {"http", "https"}:
        raise ImproperlyConfigured("NIMBUS_S3_ENDPOINT_URL must be http(s)://.")
    if (
        parsed.scheme == "http"
        and not plain_http_allowed
        and not _is_loopback(parsed.hostname or "")
    ):
        raise ImproperlyConfigured(
            "NIMBUS_S3_ENDPOINT_URL: plain http is only for a server on this "
            "machine (127.0.0.1, ::1, localhost); use https:// elsewhere, or "
            "set NIMBUS_S3_PLAIN_HTTP_NETWORK=true for a private network."
        )
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ImproperlyConfigured(f"NIMBUS_S3_CA_BUNDLE: no file at {ca_bundle}.")
    return ca_bundle or True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
