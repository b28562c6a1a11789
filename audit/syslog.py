"""A syslog client for the ATNA audit repository: TCP (RFC 6587) or TLS (RFC 5425).

Messages are framed by octet counting (RFC 6587 3.4.1; the only framing of
RFC 5425). Neither RFC acknowledges messages: a batch counts as delivered
once every byte was handed to the connection, so a repository that fails
in the middle of a batch may lose its tail (docs/audit.md).
"""

import logging
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

SCHEMES = ("tcp", "tls")


@dataclass(frozen=True)
class Repository:
    scheme: str
    host: str
    port: int
    ca_file: str = ""
    client_cert: str = ""
    client_key: str = ""
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, **options: str | float) -> "Repository":
        """Parse ``tcp://host:port`` or ``tls://host:port``.

        Raises
        ------
        ImproperlyConfigured
            For another scheme, or a missing host or port.
        """
        parsed = urlparse(url)
        if parsed.scheme not in SCHEMES or not parsed.hostname or not parsed.port:
            raise ImproperlyConfigured(
                f"NIMBUS_ATNA_URL must be tcp://host:port or tls://host:port, "
                f"not {url!r}."
            )
        return cls(parsed.scheme, parsed.hostname, parsed.port, **options)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def configured_repository() -> Repository | None:
    """The repository from settings, or None when export is off."""
    if not settings.NIMBUS_ATNA_URL:
        return None
    return Repository.from_url(
        settings.NIMBUS_ATNA_URL,
        ca_file=settings.NIMBUS_ATNA_CA_FILE,
        client_cert=settings.NIMBUS_ATNA_CLIENT_CERT,
        client_key=settings.NIMBUS_ATNA_CLIENT_KEY,
        timeout=float(settings.NIMBUS_ATNA_TIMEOUT_SECONDS),
    )


def tls_context(repository: Repository) -> ssl.SSLContext:
    """RFC 5425 5.: TLS 1.2 or later, the server verified, our certificate offered.

    The server's certificate must chain to ``ca_file`` (or the system's
    roots) and name the host of the URL.
    """
    context = ssl.create_default_context(cafile=repository.ca_file or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if repository.client_cert:
        context.load_cert_chain(repository.client_cert, repository.client_key or None)
    return context


def send_frames(repository: Repository, frames: list[bytes]) -> None:
    """Send framed syslog messages over one connection, in order.

    Parameters
    ----------
    repository : Repository
        Where to connect.
    frames : list of bytes
        Octet-counted RFC 5424 messages.

    Raises
    ------
    OSError
        When the repository cannot be reached, the TLS handshake or the
        peer's certificate fails (``ssl.SSLError`` is an ``OSError``), or
        the connection breaks before every byte is written.
    """
    raw = socket.create_connection(
        (repository.host, repository.port), timeout=repository.timeout
    )
    try:
        stream: socket.socket = raw
        if repository.scheme == "tls":
            stream = tls_context(repository).wrap_socket(
                raw, server_hostname=repository.host
            )
        stream.sendall(b"".join(frames))
    finally:
        raw.close()
    logger.debug("sent %s audit messages to %s", len(frames), repository)
