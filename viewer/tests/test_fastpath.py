"""The cached-frame fast path in front of Django (viewer/fastpath.py).

Requests go through the real ASGI application of config/asgi.py with the
real Redis; a counter on the Django side shows which path answered.
"""

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pydicom
import pytest
from asgiref.sync import async_to_sync
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts.models import Role
from config.asgi import django_asgi_app
from conftest import CT_SERIES, TENANT_B, make_user, tenant_client
from tenants.middleware import forget_tenants
from viewer.fastpath import FastFrames, fast_path_possible
from viewer.rendering import render_png
from viewer.tests.test_views import (  # noqa: F401 - fixtures
    MR_SAGITTAL,
    ct_series,
    ct_study,
    frame_url,
    series_url,
)


class CountingDjango:
    """Django's ASGI application, counting the requests that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        self.calls += 1
        await django_asgi_app(scope, receive, send)


@contextmanager
def connections_kept() -> Iterator[None]:
    # As Django's test client does: closing "old" connections at each
    # request would end the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def fresh_tenant_lookups() -> None:
    # The fast path knows a host's schema only while this process remembers
    # it (tenants/middleware.py, 10 s). Left over from an earlier test, the
    # memory could lapse between a test's first and second request and send
    # the second to Django: each test starts with Django looking it up.
    forget_tenants()


@pytest.fixture
def django() -> CountingDjango:
    return CountingDjango()


@pytest.fixture
def app(django: CountingDjango) -> FastFrames:
    return FastFrames(django)


def get(app, url: str, client, host: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    """GET ``url`` through the ASGI app with the test client's host and cookies."""
    cookies = "; ".join(f"{name}={c.value}" for name, c in client.cookies.items())
    headers = [
        (b"host", (host or client.defaults["HTTP_HOST"]).encode()),
        (b"cookie", cookies.encode()),
    ]

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url.split("?")[0],
        "query_string": url.partition("?")[2].encode(),
        "headers": headers,
    }
    body_sent = False

    async def receive() -> dict:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    # Not asgiref's ApplicationCommunicator: it runs the application in an
    # empty context, so Django's thread-sensitive code would leave this
    # test's thread and its database transaction.
    async def request() -> dict:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        body = b"".join(message.get("body", b"") for message in sent[1:])
        return {**sent[0], "body": body}

    with connections_kept():
        return async_to_sync(request)()


def header_dict(response: dict) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in response["headers"]}


@pytest.fixture
def ct_frame(ct_series) -> str:  # noqa: F811
    return frame_url(ct_series.instances.order_by("pk").first())


def test_the_settings_allow_the_fast_path():
    assert fast_path_possible()


@pytest.mark.django_db
def test_a_frame_seen_before_is_answered_without_django(
    app, django, client_a, ct_frame
):
    first = get(app, ct_frame, client_a)
    second = get(app, ct_frame, client_a)

    assert first["status"] == second["status"] == 200
    assert second["body"] == first["body"]
    assert django.calls == 1


@pytest.mark.django_db
def test_it_answers_with_the_headers_django_sends(app, client_a, ct_frame):
    by_django = header_dict(get(app, ct_frame, client_a))
    by_fast_path = header_dict(get(app, ct_frame, client_a))

    # Expires is the moment of the answer: in the past either way.
    by_django.pop(b"expires"), by_fast_path.pop(b"expires")
    by_django.pop(b"content-language", None)
    assert by_fast_path == by_django
    assert b"no-store" in by_fast_path[b"cache-control"]
    assert by_fast_path[b"x-window-width"]


@pytest.mark.django_db
def test_each_window_is_its_own_entry(app, django, client_a, ct_frame):
    get(app, ct_frame, client_a)
    windowed = get(app, ct_frame + "?wc=40&ww=400", client_a)
    again = get(app, ct_frame + "?ww=400&wc=40", client_a)

    assert header_dict(windowed)[b"x-window-center"] == b"40"
    assert again["body"] == windowed["body"]
    assert django.calls == 2


@pytest.mark.django_db
def test_after_sign_out_the_next_frame_goes_to_django(app, django, client_a, ct_frame):
    get(app, ct_frame, client_a)
    session_cookie = client_a.cookies["sessionid"].value
    client_a.post("/accounts/logout/")
    client_a.cookies["sessionid"] = session_cookie  # a copied cookie, replayed

    response = get(app, ct_frame, client_a)

    assert response["status"] == 302
    assert django.calls == 2


@pytest.mark.django_db
def test_a_session_without_a_grant_goes_to_django(
    app, django, client_a, tenant_a, ct_frame
):
    get(app, ct_frame, client_a)
    get(app, ct_frame, client_a)  # now cached and headers learned
    referrer = tenant_client(tenant_a, make_user(tenant_a, "gp", Role.REFERRER))

    response = get(app, ct_frame, referrer)

    assert response["status"] == 404
    assert django.calls == 2


@pytest.mark.django_db
def test_an_instance_of_another_series_is_not_served_under_a_granted_one(
    app,
    django,
    client_a,
    ct_series,  # noqa: F811
    ingest,
):
    mr = ingest(sorted(MR_SAGITTAL.glob("*.dcm"))[0])
    mr_frame = frame_url(mr)
    ct_frame = frame_url(ct_series.instances.order_by("pk").first())
    get(app, mr_frame, client_a)
    get(app, ct_frame, client_a)
    # The CT series' study and series, the MR instance (rendered and cached).
    forged = ct_frame.replace(
        ct_frame.split("/instances/")[1].split("/")[0], mr.sop_instance_uid
    )

    response = get(app, forged, client_a)

    assert response["status"] == 404
    assert django.calls == 3


@pytest.mark.django_db
def test_another_tenants_host_never_gets_our_cached_frame(
    app, django, client_a, ct_frame
):
    get(app, ct_frame, client_a)
    get(app, ct_frame, client_a)
    other_host = TENANT_B.domains[0]

    # Twice: after the first, this process knows the other host's schema.
    first = get(app, ct_frame, client_a, host=other_host)
    second = get(app, ct_frame, client_a, host=other_host)

    # Django refuses our session there (accounts.middleware.ForeignSessionMiddleware).
    assert first["status"] == second["status"] == 404
    assert django.calls == 3  # ours once, then the other host's twice


@pytest.mark.django_db
def test_a_bad_query_gets_djangos_answer(app, django, client_a, ct_frame):
    get(app, ct_frame, client_a)

    response = get(app, ct_frame + "?wc=40", client_a)

    assert response["status"] == 400
    assert django.calls == 2


@pytest.mark.django_db
def test_a_frame_not_rendered_yet_is_rendered_without_django_once_listed(
    app,
    django,
    client_a,
    ct_series,  # noqa: F811
):
    first, second = ct_series.instances.order_by("pk")[:2]
    client_a.get(series_url(ct_series))  # the viewer lists the series' images
    get(app, frame_url(first), client_a)

    response = get(app, frame_url(second) + "?wc=40&ww=400", client_a)

    assert response["status"] == 200
    assert response["body"] == render_png(second, 0, (40.0, 400.0))
    assert header_dict(response)[b"x-window-width"] == b"400"
    assert django.calls == 1
    # Django finds it in the render cache as if it had rendered it itself.
    by_django = client_a.get(frame_url(second), {"wc": "40", "ww": "400"})
    assert by_django.content == response["body"]


@pytest.mark.django_db
def test_an_unlisted_frame_not_rendered_yet_goes_to_django(
    app,
    django,
    client_a,
    ct_series,  # noqa: F811
):
    first, second = ct_series.instances.order_by("pk")[:2]
    get(app, frame_url(first), client_a)

    get(app, frame_url(second), client_a)

    assert django.calls == 2


@pytest.mark.django_db
def test_an_image_with_a_problem_gets_djangos_error_image(
    app,
    django,
    client_a,
    ct_series,  # noqa: F811
    ingest,
    tmp_path,
):
    ds = pydicom.dcmread(CT_SERIES / "1-042.dcm")
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(tmp_path / "truncated.dcm")
    truncated = ingest(tmp_path / "truncated.dcm")
    client_a.get(series_url(ct_series))
    get(app, frame_url(ct_series.instances.order_by("pk").first()), client_a)

    response = get(app, frame_url(truncated), client_a)

    assert header_dict(response)[b"x-render-error"] == b"1"
    assert django.calls == 2


@pytest.mark.django_db
def test_a_lapsed_grant_sends_the_next_frame_through_django(
    app, django, client_a, ct_frame, monkeypatch
):
    monkeypatch.setattr("viewer.fastpath.GRANT_SECONDS", 1)
    get(app, ct_frame, client_a)
    time.sleep(1.2)

    get(app, ct_frame, client_a)
    get(app, ct_frame, client_a)

    assert django.calls == 2  # the lapse, then a fresh grant


@pytest.mark.django_db
def test_headers_are_learned_per_host(app, django, client_a, ct_frame):
    get(app, ct_frame, client_a)
    get(app, ct_frame, client_a)

    # The same tenant under another spelling of its host: Django first,
    # because the CSP it sends names the host.
    first = get(app, ct_frame, client_a, host="A.localhost:8000")
    second = get(app, ct_frame, client_a, host="A.localhost:8000")

    assert first["status"] == second["status"] == 200
    assert django.calls == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("host", "suffix"),
    [
        ("a.localhost:8000@b.localhost", ""),  # not a plain host and port
        (None, "\n"),  # "$" would have matched before a final newline
        (None, "?preview"),  # a blank value is still a preview
        (None, "?preview="),
        (None, "?wc=&ww=400"),  # Django answers 400
    ],
)
def test_odd_requests_go_to_django(app, django, client_a, ct_frame, host, suffix):
    get(app, ct_frame, client_a)
    get(app, ct_frame, client_a)
    assert django.calls == 1  # the fast path is open for this frame

    get(app, ct_frame + suffix, client_a, host=host)

    assert django.calls == 2
