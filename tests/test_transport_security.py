"""Browser and transport hardening: CSP, production settings, websocket Origin."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from config.asgi import application
from conftest import tenant_client
from tenants.channels import _origin_allowed, _request_is_secure

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

ROOT = Path(__file__).resolve().parents[1]
HOST = {"host": "a.localhost"}


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/accounts/login/", "/", "/accounts/security/"])
def test_every_page_carries_a_strict_content_security_policy(tenant_a, client_a, page):
    client = client_a if page != "/accounts/login/" else tenant_client(tenant_a)

    response = client.get(page)

    policy = response["Content-Security-Policy"]
    assert response.status_code == 200
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "connect-src 'self' ws://a.localhost",
    ):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response["X-Frame-Options"] == "DENY"


def manage(*args: str, production: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if production:
        env.update(
            NIMBUS_PRODUCTION="true",
            DJANGO_SECRET_KEY="k" * 20 + "-production-secret-for-the-deploy-check-9f3",
            DJANGO_ALLOWED_HOSTS=".pacs.example.org",
        )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_settings_pass_djangos_deploy_check_without_a_warning():
    result = manage("check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_cookies_are_secure_host_only_and_hsts_is_preloaded():
    code = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_NAME,"
        " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SAMESITE)"
    )
    result = manage("shell", "--no-imports", "-c", code)

    assert result.stdout.splitlines()[-1].split() == [
        "__Host-nimbus_session",
        "True",
        "True",
        "True",
        "True",
        "True",
        "Lax",
    ], result.stderr


def test_the_deploy_check_would_catch_development_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", production=False)

    assert result.returncode != 0


def test_an_http_origin_is_refused_on_an_https_socket_and_the_other_way_round():
    plain = {**HOST}
    assert _origin_allowed("http://a.localhost", plain, secure=False)
    assert not _origin_allowed("https://a.localhost", plain, secure=False)
    assert _origin_allowed("https://a.localhost", plain, secure=True)
    assert not _origin_allowed("http://a.localhost", plain, secure=True)
    assert not _origin_allowed("https://b.localhost", plain, secure=True)


def test_the_origin_port_must_be_the_hosts_with_default_ports_filled_in():
    with_port = {"host": "a.localhost:8000"}
    assert _origin_allowed("http://a.localhost:8000", with_port, secure=False)
    assert not _origin_allowed("http://a.localhost", with_port, secure=False)
    assert not _origin_allowed("http://a.localhost:9999", HOST, secure=False)
    assert _origin_allowed("http://a.localhost:80", HOST, secure=False)
    assert _origin_allowed("https://a.localhost", HOST, secure=True)
    assert not _origin_allowed("https://a.localhost:8443", HOST, secure=True)
    assert not _origin_allowed("http://a.localhost:99999", HOST, secure=False)


def test_the_proxy_header_decides_the_scheme_only_when_the_proxy_is_trusted(settings):
    forwarded = {**HOST, "x-forwarded-proto": "https"}
    settings.SECURE_PROXY_SSL_HEADER = None
    assert not _request_is_secure({"scheme": "ws"}, forwarded)
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert _request_is_secure({"scheme": "ws"}, forwarded)
    assert not _request_is_secure(
        {"scheme": "wss"}, {**HOST, "x-forwarded-proto": "http"}
    )


@pytest.mark.django_db
def test_a_page_served_over_http_cannot_open_a_socket_behind_an_https_proxy(
    tenant_a, client_a, settings
):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = f"{settings.SESSION_COOKIE_NAME}={client_a.cookies[settings.SESSION_COOKIE_NAME].value}"
    headers = [
        (b"host", b"a.localhost"),
        (b"x-forwarded-proto", b"https"),
        (b"origin", b"http://a.localhost"),
        (b"cookie", cookie.encode()),
    ]

    async def scenario() -> None:
        socket = WebsocketCommunicator(
            application, "/ws/studies/1.2.3/report/", headers=headers
        )
        connected, code = await socket.connect()
        assert not connected and code == 4403

    async_to_sync(scenario)()


def test_no_template_has_an_inline_event_handler_or_style():
    # The CSP blocks both; a page that relies on one silently stops working.
    inline = re.compile(r"<[^>]*\s(on[a-z]+|style)\s*=", re.IGNORECASE)
    offenders = [
        f"{path.relative_to(TEMPLATES)}: {match.group(0)}"
        for path in TEMPLATES.rglob("*.html")
        for match in inline.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
