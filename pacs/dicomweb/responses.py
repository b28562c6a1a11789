"""Small answers shared by the DICOMweb services: errors, warnings, negotiation."""

import decimal
from collections.abc import Sequence
from typing import Any

import orjson
from django.http import HttpResponse
from django.http.request import MediaType

# RFC 7234 Section 5.5: 299 is "miscellaneous persistent warning"; PS3.18
# uses it for ignored match keys (8.3.4.1) and for results left to a next page
# (8.3.4.4.1).
WARNING_AGENT = "nimbus"


def plain_text(message: str, status: int) -> HttpResponse:
    """An error answer whose body is one sentence for a person.

    Parameters
    ----------
    message : str
        Already translated into the request's language.
    status : int
        The HTTP status code.

    Returns
    -------
    HttpResponse
        A ``text/plain; charset=utf-8`` response.
    """
    return HttpResponse(
        message + "\n", status=status, content_type="text/plain; charset=utf-8"
    )


def dicom_json(body: Any, content_type: str, status: int = 200) -> HttpResponse:
    """An answer in the DICOM JSON Model (PS3.18 F.2), encoded with orjson.

    The metadata of a large series or a page of matches runs to megabytes;
    orjson writes it several times faster than the standard library, as
    UTF-8 without escaping non-ASCII characters.
    """
    return HttpResponse(
        orjson.dumps(body, default=_json_default),
        status=status,
        content_type=content_type,
    )


def _json_default(value: Any) -> Any:
    # A DS value decoded as Decimal somewhere on its way from the header.
    if isinstance(value, decimal.Decimal):
        return float(value) if value % 1 else int(value)
    raise TypeError(f"{type(value).__name__} is not DICOM JSON")


def add_warnings(response: HttpResponse, warnings: Sequence[str]) -> HttpResponse:
    """Attach one ``Warning: 299`` header per sentence (PS3.18 8.3.4.1, 8.3.4.4.1).

    Parameters
    ----------
    response : HttpResponse
        The answer to decorate.
    warnings : sequence of str
        ASCII sentences; quotes and non-ASCII characters are dropped so that a
        client's odd parameter name can never break the header.

    Returns
    -------
    HttpResponse
        The same response.
    """
    if warnings:
        response["Warning"] = ", ".join(
            f'299 {WARNING_AGENT} "{_header_safe(text)}"' for text in warnings
        )
    return response


def _header_safe(text: str) -> str:
    return "".join(c for c in text if 32 <= ord(c) < 127 and c not in '"\\')


def negotiate(accept: str, offered: Sequence[str]) -> str | None:
    """The offered media type the client prefers, or None for a 406 answer.

    Each offered type takes the quality of the most specific media range
    that covers it, so ``image/png;q=0, */*`` really refuses PNG (RFC 9110
    Section 12.5.1). Media type parameters other than ``q`` are ignored.

    Parameters
    ----------
    accept : str
        The ``Accept`` header, or the ``accept`` query parameter that
        overrides it (PS3.18 Section 8.3.3.1).
    offered : sequence of str
        The types the endpoint can produce, the default first.

    Returns
    -------
    str or None
        One of ``offered``; the first when ``accept`` is empty.
    """
    ranges = [MediaType(token) for token in accept.split(",") if token.strip()]
    if not ranges:
        return offered[0] if offered else None

    best: tuple[float, str] | None = None
    for offer in offered:
        quality = _quality_of(MediaType(offer), ranges)
        if quality > 0 and (best is None or quality > best[0]):
            best = (quality, offer)
    return best[1] if best else None


def _quality_of(offer: MediaType, ranges: list[MediaType]) -> float:
    covering = [
        media_range
        for media_range in ranges
        if media_range.main_type in (offer.main_type, "*")
        and media_range.sub_type in (offer.sub_type, "*")
    ]
    if not covering:
        return 0.0
    most_specific = max(covering, key=_specificity)
    return float(most_specific.quality)


def _specificity(media_range: MediaType) -> int:
    return (media_range.main_type != "*") + (media_range.sub_type != "*")
