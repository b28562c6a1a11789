import datetime
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import formats, translation
from django_tenants.utils import tenant_context

from accounts.language import in_language_of, language_for, tenant_languages
from accounts.tests.helpers import sign_in
from audit.models import AuditEvent, EventType
from conftest import PASSWORD, current_totp, tenant_client
from tenants.middleware import forget_tenants

COOKIE = settings.LANGUAGE_COOKIE_NAME


def choose(client, language: str, next_url: str = "/accounts/security/"):  # type: ignore[no-untyped-def]
    return client.post("/accounts/language/", {"language": language, "next": next_url})


@pytest.mark.django_db
def test_it_saves_the_users_choice_and_audits_it(tenant_a, radiologist):
    client = tenant_client(tenant_a, radiologist)

    response = choose(client, "fr")

    assert response.status_code == 302
    assert response.url == "/accounts/security/"
    radiologist.refresh_from_db()
    assert radiologist.language == "fr"
    event = AuditEvent.objects.get(
        event_type=EventType.USER_CHANGED, actor_id=radiologist.pk
    )
    assert event.detail == {"changed": ["language"], "old": "", "new": "fr"}
    assert response.cookies[COOKIE].value == "fr"


@pytest.mark.django_db
def test_the_users_language_wins_over_the_browsers_on_every_page(tenant_a, radiologist):
    radiologist.language = "nl"
    radiologist.save()
    client = tenant_client(tenant_a, radiologist)

    response = client.get("/accounts/security/", HTTP_ACCEPT_LANGUAGE="de")
    page = response.content.decode()

    assert '<html lang="nl">' in page
    assert "Aanmelding en beveiliging" in page
    assert response["Content-Language"] == "nl"


@pytest.mark.django_db
def test_the_security_page_offers_the_picker_with_the_users_choice(
    tenant_a, radiologist
):
    radiologist.language = "de"
    radiologist.save()

    page = tenant_client(tenant_a, radiologist).get("/accounts/security/")
    html = page.content.decode()

    assert 'action="/accounts/language/"' in html
    assert '<option value="de" selected>' in html


@pytest.mark.django_db
def test_it_refuses_a_language_nimbus_does_not_offer(tenant_a, radiologist):
    client = tenant_client(tenant_a, radiologist)

    response = choose(client, "es")

    assert response.status_code == 302
    radiologist.refresh_from_db()
    assert radiologist.language == ""
    assert COOKIE not in response.cookies
    assert not AuditEvent.objects.filter(
        event_type=EventType.USER_CHANGED, actor_id=radiologist.pk
    ).exists()


@pytest.mark.django_db
def test_it_never_sends_the_visitor_to_another_host(tenant_a, radiologist):
    client = tenant_client(tenant_a, radiologist)

    response = choose(client, "fr", next_url="https://evil.example/")

    assert response.url == "/"


@pytest.mark.django_db
def test_an_empty_choice_follows_the_browser_again(tenant_a, radiologist):
    radiologist.language = "fr"
    radiologist.save()
    client = tenant_client(tenant_a, radiologist)

    choose(client, "")
    page = client.get("/accounts/security/", HTTP_ACCEPT_LANGUAGE="de").content

    radiologist.refresh_from_db()
    assert radiologist.language == ""
    assert b'<html lang="de">' in page


@pytest.mark.django_db
def test_a_signed_out_visitor_switches_the_sign_in_page(tenant_a):
    client = tenant_client(tenant_a)
    english = client.get("/accounts/login/").content.decode()

    response = choose(client, "nl", next_url="/accounts/login/")
    dutch = client.get("/accounts/login/").content.decode()

    assert 'id="language-switcher"' in english
    assert '<option value="nl" lang="nl">Nederlands</option>' in english
    assert response.url == "/accounts/login/"
    assert response.cookies[COOKIE]["httponly"]
    assert '<html lang="nl">' in dutch and "Aanmelden" in dutch


@pytest.mark.django_db
def test_sign_in_applies_the_users_language_and_remembers_it(tenant_a, radiologist):
    radiologist.language = "de"
    radiologist.save()
    client = tenant_client(tenant_a)

    response = sign_in(client, "rad.a", PASSWORD, current_totp())
    page = client.get("/accounts/security/").content.decode()

    assert response.cookies[COOKIE].value == "de"
    assert '<html lang="de">' in page and "Abmelden" in page


def test_a_tenant_may_narrow_the_languages_it_offers():
    tenant = SimpleNamespace(languages=["nl", "fr", "xx"])

    assert [code for code, _name in tenant_languages(tenant)] == ["nl", "fr"]
    assert language_for(SimpleNamespace(language="de"), tenant) == "nl"
    assert language_for(None, tenant, asked="nl") == "nl"
    assert language_for(None, SimpleNamespace(languages="de, en")) == "de"
    assert len(tenant_languages(None)) == len(settings.LANGUAGES)


@pytest.mark.django_db
def test_messages_for_another_user_are_in_the_recipients_language(
    tenant_a, radiologist
):
    radiologist.language = "de"
    radiologist.save()

    with translation.override("fr"), tenant_context(tenant_a):
        with in_language_of(radiologist):
            inside = translation.gettext("Sign in")
        after = translation.gettext("Sign in")

    assert (inside, after) == ("Anmelden", "Se connecter")


@pytest.mark.parametrize(
    ("language", "date", "moment", "number"),
    [
        ("en", "05/12/2026", "05/12/2026 14:30", "1234.5"),
        ("fr", "05/12/2026", "05/12/2026 14:30", "1234,5"),
        ("de", "05.12.2026", "05.12.2026 14:30", "1234,5"),
        ("nl", "5-12-2026", "5-12-2026 14:30", "1234,5"),
    ],
)
def test_dates_times_and_numbers_follow_the_language(language, date, moment, number):
    day = datetime.date(2026, 12, 5)
    when = datetime.datetime(2026, 12, 5, 14, 30, tzinfo=datetime.UTC)

    with translation.override(language):
        assert formats.date_format(day, "SHORT_DATE_FORMAT") == date
        assert formats.date_format(when, "SHORT_DATETIME_FORMAT") == moment
        assert formats.number_format(1234.5, 1) == number


@pytest.fixture
def french_and_dutch_tenant(tenant_a):  # type: ignore[no-untyped-def]
    tenant_a.languages = ["fr", "nl"]
    tenant_a.save()
    yield tenant_a
    # The test's transaction rolls the change back; the hosts' cache must too.
    forget_tenants()


@pytest.mark.django_db
def test_the_tenants_languages_bound_every_choice(french_and_dutch_tenant, radiologist):
    radiologist.language = "de"
    radiologist.save()
    visitor = tenant_client(french_and_dutch_tenant)

    german_browser = visitor.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="de")
    dutch_browser = visitor.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE="nl")
    refused = choose(visitor, "en", next_url="/accounts/login/")
    signed_in = tenant_client(french_and_dutch_tenant, radiologist)
    page = signed_in.get("/accounts/security/").content.decode()

    assert b'<html lang="fr">' in german_browser.content
    assert b'<option value="de"' not in german_browser.content
    assert b'<html lang="nl">' in dutch_browser.content
    assert COOKIE not in refused.cookies
    assert '<html lang="fr">' in page
    assert '<option value="de"' not in page and '<option value="nl"' in page


@pytest.mark.django_db
def test_error_pages_speak_the_users_language(tenant_a, radiologist):
    radiologist.language = "de"
    radiologist.save()

    response = tenant_client(tenant_a, radiologist).get("/no-such-page/")
    again = tenant_client(tenant_a, radiologist).get("/another-missing-page/")

    assert response.status_code == 404
    assert b'<html lang="de">' in response.content
    assert "Seite nicht gefunden" in response.content.decode()
    assert response.content == again.content  # nothing about what was asked


def test_the_server_error_page_needs_no_request():
    with translation.override("fr"):
        page = render_to_string("500.html")

    assert '<html lang="fr">' in page and "Erreur du serveur" in page
