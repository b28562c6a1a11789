"""Which language a page, e-mail or PDF is in: the user's, within the tenant's.

The order of choice: the user's own setting (accounts.User.language), else
what the browser asked for (the language cookie set by the switcher, then
Accept-Language, read by Django's LocaleMiddleware), always within the
languages the tenant offers; else the tenant's first language.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


def _codes(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.replace(";", ",").split(",")
    return [str(code).strip().lower() for code in value or [] if str(code).strip()]


def tenant_languages(tenant: Any = None) -> list[tuple[str, str]]:
    """(code, name) of the languages offered, the default first.

    A tenant may narrow them with its ``languages`` setting (codes, the
    default first); without one, or with none Nimbus knows, every language
    of settings.LANGUAGES is offered, LANGUAGE_CODE first.
    """
    names = dict(settings.LANGUAGES)
    wanted = dict.fromkeys(_codes(getattr(tenant, "languages", None)))
    offered = [(code, names[code]) for code in wanted if code in names]
    return offered or list(settings.LANGUAGES)


def allowed_codes(tenant: Any = None) -> list[str]:
    return [code for code, _name in tenant_languages(tenant)]


def default_language(tenant: Any = None) -> str:
    return allowed_codes(tenant)[0]


def language_for(user: Any, tenant: Any = None, asked: str = "") -> str:
    """The language for ``user`` (who may be anonymous or None) in ``tenant``."""
    codes = allowed_codes(tenant)
    for choice in (getattr(user, "language", ""), asked):
        if choice in codes:
            return choice
    return default_language(tenant)


def offered_languages(request: HttpRequest) -> dict[str, Any]:
    """Template context: the tenant's languages, for the language switcher."""
    return {"offered_languages": allowed_codes(getattr(request, "tenant", None))}


@contextmanager
def in_language_of(user: Any, tenant: Any = None) -> Iterator[str]:
    """Render an e-mail, PDF or notice for ``user`` outside their request.

    For Celery tasks and for messages one user's action sends to another:
    the recipient reads it in their language, not the sender's.
    """
    if tenant is None:
        from django.db import connection

        tenant = getattr(connection, "tenant", None)
    language = language_for(user, tenant)
    with translation.override(language):
        yield language


class UserLanguageMiddleware:
    """Apply the user's language on every request, within the tenant's.

    Runs after LocaleMiddleware (which read the cookie and Accept-Language)
    and after authentication, so the user's own setting wins over both.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        signed_in = user is not None and user.is_authenticated
        language = language_for(
            user if signed_in else None,
            getattr(request, "tenant", None),
            asked=getattr(request, "LANGUAGE_CODE", ""),
        )
        translation.activate(language)
        request.LANGUAGE_CODE = language
        return self.get_response(request)
