"""QIDO-RS Search for Studies: query parameters to a queryset (PS3.18 10.6).

Matching follows PS3.4 C.2.2.2: single value matching, wild card matching
(``*`` and ``?``), range matching on dates and UID list matching. Person names
match case-insensitively, component group by component group; every other
string matches case-sensitively, as the standard says.
"""

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import F, Q, QuerySet
from django.http import QueryDict
from django.utils.translation import gettext as _
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from pacs.dicom import is_valid_uid
from pacs.models import Study

# PS3.18 8.3.4.4.1 "maxResults": the most matches one response carries. A
# client that wants more pages through them with offset.
MAX_RESULTS = 1000

# Query parameters that are not match keys (PS3.18 Table 8.3.4-1).
INCLUDE_FIELD = "includefield"
FUZZY_MATCHING = "fuzzymatching"
LIMIT = "limit"
OFFSET = "offset"
# Ignored silently: "accept" is content negotiation (8.3.3.1); "charset" only
# matters for text answers.
IGNORED_PARAMETERS = {"accept", "charset"}

DATE_PATTERN = re.compile(r"^[0-9]{8}$")
TAG_PATTERN = re.compile(r"^[0-9A-Fa-f]{8}$")


class QueryError(ValueError):
    """A query parameter is malformed; the message is shown to the caller (400)."""


@dataclass(frozen=True)
class StudyQuery:
    """A parsed Search for Studies request."""

    condition: Q = field(default_factory=Q)
    match_keys: dict[str, str] = field(default_factory=dict)
    limit: int = MAX_RESULTS
    offset: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StudyPage:
    """One page of matches, and whether more remain after it."""

    studies: list[Study]
    remaining: bool


def wildcard_regex(value: str, any_character: str) -> str:
    """A PostgreSQL regular expression body for a DICOM wild card value.

    PS3.4 C.2.2.2.4: ``*`` matches any sequence of characters, including none,
    and ``?`` matches exactly one. Every other character is literal.

    Parameters
    ----------
    value : str
        The value from the query, possibly with ``*`` and ``?``.
    any_character : str
        The regular expression one ``?`` stands for; a bracket expression
        that excludes a delimiter keeps a wild card inside one value or one
        component group.

    Returns
    -------
    str
        An unanchored expression; the caller anchors it.
    """
    parts = []
    for character in value:
        if character == "*":
            parts.append(f"{any_character}*")
        elif character == "?":
            parts.append(any_character)
        else:
            # re.escape only escapes punctuation, which PostgreSQL's ARE
            # also reads as a literal when preceded by a backslash.
            parts.append(re.escape(character))
    return "".join(parts)


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def match_text(column: str, value: str) -> Q:
    """Single value or wild card matching on an SH or LO value (PS3.4 C.2.2.2.1, .4).

    Parameters
    ----------
    column : str
        The ORM lookup path of the column.
    value : str
        The query value; case-sensitive, as PS3.4 C.2.2.2.4 requires for
        every VR but PN.

    Returns
    -------
    Q
        The condition.
    """
    if not has_wildcard(value):
        return Q(**{column: value})
    return Q(**{f"{column}__regex": f"^{wildcard_regex(value, '.')}$"})


def match_person_name(column: str, value: str) -> Q:
    """Case-insensitive matching on a PN value (PS3.4 C.2.2.2.1 and C.2.2.2.4).

    The value is matched against each component group (alphabetic,
    ideographic, phonetic) of the stored name, so ``Doe^J*`` matches
    ``Doe^John`` and a wild card never runs from one group into the next.
    Trailing empty components (``Doe^John^^``) are insignificant on both
    sides, as PS3.5 6.2 allows them to be dropped. How PN wild cards behave is
    implementation dependent (PS3.4 C.2.2.2.4) and is stated here.

    Parameters
    ----------
    column : str
        The ORM lookup path of the stored name, in its DICOM form
        ``family^given^middle^prefix^suffix[=ideographic[=phonetic]]``.
    value : str
        The query value, possibly with ``*`` and ``?``.

    Returns
    -------
    Q
        The condition.
    """
    pattern = wildcard_regex(value.rstrip("^"), "[^=]")
    return Q(**{f"{column}__iregex": f"(^|=){pattern}\\^*(=|$)"})


def match_code_strings(column: str, value: str) -> Q:
    """Matching on a multi-valued CS column such as Modalities in Study.

    A value list (``CT,MR`` or ``CT\\MR``) matches a study that holds any of
    the listed values (PS3.4 C.2.2.2.8, multiple value matching; PS3.4
    C.6.1.1.3.1 for Modalities in Study). Each value may carry wild cards,
    which stay inside one value.

    Parameters
    ----------
    column : str
        The column holding the values joined by a backslash.
    value : str
        One or more code strings; read in upper case, as CS values are.

    Returns
    -------
    Q
        The condition.
    """
    codes = [code for code in re.split(r"[,\\]", value.upper()) if code]
    if not codes:
        return Q()
    alternatives = "|".join(wildcard_regex(code, "[^\\\\]") for code in codes)
    return Q(**{f"{column}__regex": f"(^|\\\\)({alternatives})(\\\\|$)"})


def parse_date(value: str) -> datetime.date:
    """A DA value of the form YYYYMMDD (PS3.5 Table 6.2-1)."""
    if not DATE_PATTERN.match(value):
        raise QueryError(
            _("“%(value)s” is not a date of the form YYYYMMDD.") % {"value": value}
        )
    try:
        return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError as error:
        raise QueryError(
            _("“%(value)s” is not a valid date.") % {"value": value}
        ) from error


def match_date(column: str, value: str) -> Q:
    """Single value or range matching on a DA value (PS3.4 C.2.2.2.1, C.2.2.2.5.1).

    ``D``, ``D1-D2``, ``D1-`` (on or after) and ``-D2`` (on or before) are
    accepted; the bounds are inclusive. Studies without a date never match a
    date key.

    Parameters
    ----------
    column : str
        The DateField to compare.
    value : str
        The query value.

    Returns
    -------
    Q
        The condition.

    Raises
    ------
    QueryError
        When a date is malformed, the range has no bound, more than one ``-``,
        or ends before it starts (answered with 400).
    """
    if "-" not in value:
        return Q(**{column: parse_date(value)})

    start_text, _dash, end_text = value.partition("-")
    if "-" in end_text or not (start_text or end_text):
        raise QueryError(
            _("“%(value)s” is not a date range such as 20240101-20240131.")
            % {"value": value}
        )
    start = parse_date(start_text) if start_text else None
    end = parse_date(end_text) if end_text else None
    if start and end and start > end:
        raise QueryError(
            _("The date range “%(value)s” ends before it starts.") % {"value": value}
        )

    condition = Q(**{f"{column}__isnull": False})
    if start:
        condition &= Q(**{f"{column}__gte": start})
    if end:
        condition &= Q(**{f"{column}__lte": end})
    return condition


def match_uid_list(column: str, value: str) -> Q:
    """UID list matching (PS3.4 C.2.2.2.2; PS3.18 8.3.4.1 ``uid-list-match``).

    Parameters
    ----------
    column : str
        The UID column.
    value : str
        One UID, or several separated by commas (or backslashes, as in DIMSE).

    Returns
    -------
    Q
        The condition.

    Raises
    ------
    QueryError
        When an item is not a syntactically valid UID (PS3.5 9.1).
    """
    uids = [uid.strip() for uid in re.split(r"[,\\]", value) if uid.strip()]
    if not uids:
        return Q()
    for uid in uids:
        if not is_valid_uid(uid):
            raise QueryError(_("“%(value)s” is not a valid UID.") % {"value": uid})
    return Q(**{f"{column}__in": uids})


# The Study level match keys Nimbus supports (PS3.18 Table 10.6.1-5), by
# DICOM keyword: each turns the query value into a condition on Study.
StudyMatcher = Callable[[str], Q]
STUDY_MATCH_KEYS: dict[str, StudyMatcher] = {
    "StudyInstanceUID": lambda v: match_uid_list("study_instance_uid", v),
    "StudyDate": lambda v: match_date("study_date", v),
    "AccessionNumber": lambda v: match_text("accession_number", v),
    "ModalitiesInStudy": lambda v: match_code_strings("modalities_in_study", v),
    "ReferringPhysicianName": lambda v: match_person_name(
        "referring_physician_name", v
    ),
    "StudyID": lambda v: match_text("study_id", v),
    "PatientName": lambda v: match_person_name("patient__patient_name", v),
    "PatientID": lambda v: match_text("patient__patient_id", v),
}


def attribute_keyword(name: str) -> str | None:
    """The DICOM keyword a query parameter names, by keyword or tag (8HEXDIG).

    Parameters
    ----------
    name : str
        A parameter name such as ``PatientID`` or ``00100020`` (PS3.18
        8.3.4.1, ``attribute-id``).

    Returns
    -------
    str or None
        The PS3.6 keyword, or None when the name is neither.
    """
    if TAG_PATTERN.match(name):
        return keyword_for_tag(int(name, 16)) or None
    return name if tag_for_keyword(name) is not None else None


def parse_count(params: QueryDict, name: str, default: int) -> int:
    """An unsigned integer query parameter (PS3.18 8.3.4.4, ``uint``)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit():
        raise QueryError(
            _("%(name)s must be a whole number of zero or more, not “%(value)s”.")
            % {"name": name, "value": raw}
        )
    return int(raw)


def parse_study_query(params: QueryDict) -> StudyQuery:
    """Read the query parameters of a Search for Studies request.

    PS3.18 8.3.4 defines the parameters: match keys by keyword or tag,
    ``fuzzymatching``, ``includefield``, ``limit`` and ``offset``. A value of
    ``*`` or an empty value is universal matching (PS3.4 C.2.2.2.3). Match
    keys Nimbus does not support are ignored with a warning, as are fuzzy
    matching and sequence paths.

    Parameters
    ----------
    params : QueryDict
        ``request.GET``.

    Returns
    -------
    StudyQuery
        The condition, the keys used, the page, and the warnings to send.

    Raises
    ------
    QueryError
        For a malformed value, a repeated match key, or a bad limit or offset.
    """
    condition = Q()
    match_keys: dict[str, str] = {}
    warnings: list[str] = []

    for name in params:
        values = params.getlist(name)
        lowered = name.lower()
        if lowered in {LIMIT, OFFSET, INCLUDE_FIELD} | IGNORED_PARAMETERS:
            continue
        if lowered == FUZZY_MATCHING:
            if values[-1].lower() == "true":
                warnings.append(
                    "fuzzymatching is not supported; literal matching was done"
                )
            continue

        keyword = attribute_keyword(name)
        if keyword is None or keyword not in STUDY_MATCH_KEYS:
            warnings.append(f"{name}: unsupported match key, ignored")
            continue
        if len(values) > 1 or keyword in match_keys:
            raise QueryError(
                _("The match key %(name)s is given more than once.") % {"name": name}
            )
        value = values[0].strip()
        if value in ("", "*"):
            continue
        if any(ord(character) < 0x20 for character in value):
            # PostgreSQL cannot store NUL in text; PS3.5 allows no control
            # characters in the matchable VRs either.
            raise QueryError(
                _("The value of %(name)s contains a control character.")
                % {"name": name}
            )
        condition &= STUDY_MATCH_KEYS[keyword](value)
        match_keys[keyword] = value

    limit = parse_count(params, LIMIT, MAX_RESULTS)
    if limit > MAX_RESULTS:
        warnings.append(f"limit reduced to the maximum of {MAX_RESULTS} results")
        limit = MAX_RESULTS
    offset = parse_count(params, OFFSET, 0)
    return StudyQuery(condition, match_keys, limit, offset, tuple(warnings))


def search_studies(studies: QuerySet[Study], query: StudyQuery) -> StudyPage:
    """One page of the studies that match, in a stable order (PS3.18 8.3.4.4.1).

    Paging must be idempotent, so the order ends on the primary key: newest
    study date first, studies without a date last.

    Parameters
    ----------
    studies : QuerySet of Study
        What the caller may see (``pacs.access.studies_for``).
    query : StudyQuery
        The parsed request.

    Returns
    -------
    StudyPage
        At most ``query.limit`` studies after ``query.offset``, and whether
        more matches remain.
    """
    ordered = (
        studies.filter(query.condition)
        .select_related("patient")
        .order_by(
            F("study_date").desc(nulls_last=True),
            F("study_time").desc(nulls_last=True),
            "pk",
        )
    )
    # One row more than asked tells whether another page exists.
    window = list(ordered[query.offset : query.offset + query.limit + 1])
    return StudyPage(window[: query.limit], remaining=len(window) > query.limit)
