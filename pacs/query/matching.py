"""Attribute matching on the archive index (PS3.4 C.2.2.2).

Each ``match_*`` function turns the value of one matching key into a Django
``Q`` on one index column: single value matching, wild card matching (``*``
and ``?``), range matching on dates and times, UID list matching and
multiple value matching. Person names match component group by component
group; every other string matches case-sensitively, as the standard says.
Universal matching (an empty value, or ``*`` alone) is the caller's business:
it adds no condition at all.
"""

import datetime
import re
import unicodedata
from functools import cache

from django.db.models import Q
from django.utils.translation import gettext as _

from pacs.dicom import is_valid_uid

DATE_PATTERN = re.compile(r"^[0-9]{8}$")
# PS3.5 Table 6.2-1 TM: HH, HHMM, HHMMSS or HHMMSS.F{1,6}.
TIME_PATTERN = re.compile(r"^([0-9]{2})([0-9]{2})?([0-9]{2})?(\.[0-9]{1,6})?$")


class QueryError(ValueError):
    """A matching key's value is malformed; the message is shown to the caller.

    QIDO-RS answers 400 with it; C-FIND answers 0xC000 (unable to process).
    """


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def wildcard_regex(value: str, any_character: str, fuzzy: bool = False) -> str:
    """A PostgreSQL regular expression body for a DICOM wild card value.

    PS3.4 C.2.2.2.4: ``*`` matches any sequence of characters, including none,
    and ``?`` matches exactly one. Every other character is literal, or with
    ``fuzzy`` any accented form of the same letter.

    Parameters
    ----------
    value : str
        The value from the query, possibly with ``*`` and ``?``.
    any_character : str
        The regular expression one ``?`` stands for; a bracket expression
        that excludes a delimiter keeps a wild card inside one value or one
        component group.
    fuzzy : bool
        Whether ``e`` also matches ``é``, ``è``, ``Ê``... (PS3.18 8.3.4.1
        ``fuzzymatching``; the kind of fuzziness is the archive's choice).

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
        elif fuzzy and (letters := _accented_forms(_base_letter(character))):
            parts.append(f"[{letters}]")
        else:
            # re.escape only escapes punctuation, which PostgreSQL's ARE
            # also reads as a literal when preceded by a backslash.
            parts.append(re.escape(character))
    return "".join(parts)


def _base_letter(character: str) -> str:
    return unicodedata.normalize("NFD", character)[0].lower()


@cache
def _accented_forms(base: str) -> str:
    """Every Latin letter from U+0041 to U+024F whose base letter is ``base``."""
    if not (base.isascii() and base.isalpha()):
        return ""
    return "".join(
        chr(code)
        for code in range(0x41, 0x250)
        if chr(code).isalpha() and _base_letter(chr(code)) == base
    )


def match_text(column: str, value: str) -> Q:
    """Single value or wild card matching on a string value (PS3.4 C.2.2.2.1, .4).

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


def match_person_name(
    column: str, value: str, case_insensitive: bool = True, fuzzy: bool = False
) -> Q:
    """Matching on a PN value (PS3.4 C.2.2.2.1 and C.2.2.2.4).

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
    case_insensitive : bool
        Whether letter case is ignored (the tenant's choice; PS3.4
        C.2.2.2.1 leaves it to the SCP for PN).
    fuzzy : bool
        Also ignore case and accents (PS3.18 8.3.4.1 ``fuzzymatching``).

    Returns
    -------
    Q
        The condition.
    """
    pattern = wildcard_regex(value.rstrip("^"), "[^=]", fuzzy=fuzzy)
    lookup = "iregex" if case_insensitive or fuzzy else "regex"
    return Q(**{f"{column}__{lookup}": f"(^|=){pattern}\\^*(=|$)"})


def match_code_strings(column: str, value: str) -> Q:
    """Matching on a multi-valued CS column such as Modalities in Study.

    A value list (``CT,MR`` or ``CT\\MR``) matches a row that holds any of
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


def match_integer(column: str, value: str) -> Q:
    """Single value or list matching on an IS value such as Series Number.

    Parameters
    ----------
    column : str
        The integer column.
    value : str
        One integer, or several separated by backslashes (PS3.4 C.2.2.2.8).

    Returns
    -------
    Q
        The condition.

    Raises
    ------
    QueryError
        When an item is not an integer string (PS3.5 Table 6.2-1, IS).
    """
    items = [item.strip() for item in value.split("\\") if item.strip()]
    numbers = []
    for item in items:
        if not re.fullmatch(r"[+-]?[0-9]{1,12}", item):
            raise QueryError(_("“%(value)s” is not a whole number.") % {"value": item})
        numbers.append(int(item))
    return Q(**{f"{column}__in": numbers}) if numbers else Q()


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


def parse_time(value: str, end: bool = False) -> datetime.time:
    """A TM value; missing components are the start (or ``end``) of the period.

    ``14`` is 14:00:00 as a lower bound and 14:59:59.999999 as an upper bound,
    so a range ``-14`` includes every time within hour 14.
    """
    match = TIME_PATTERN.match(value.replace(":", ""))
    if not match:
        raise QueryError(
            _("“%(value)s” is not a time of the form HHMMSS.") % {"value": value}
        )
    hour, minute, second, fraction = match.groups()
    fill = 59 if end else 0
    if fraction:
        micro = int(fraction[1:].ljust(6, "0"))
    else:
        micro = 999999 if end else 0
    try:
        return datetime.time(
            int(hour),
            int(minute) if minute else fill,
            min(int(second), 59) if second else fill,  # a leap second is 60
            micro,
        )
    except ValueError as error:
        raise QueryError(
            _("“%(value)s” is not a valid time.") % {"value": value}
        ) from error


def _range_bounds(value: str) -> tuple[str, str]:
    start, _dash, end = value.partition("-")
    if "-" in end or not (start or end):
        raise QueryError(
            _("“%(value)s” is not a date range such as 20240101-20240131.")
            % {"value": value}
        )
    return start, end


def _between(column: str, start: object, end: object, value: str) -> Q:
    if start is not None and end is not None and start > end:  # type: ignore[operator]
        raise QueryError(
            _("The date range “%(value)s” ends before it starts.") % {"value": value}
        )
    condition = Q(**{f"{column}__isnull": False})
    if start is not None:
        condition &= Q(**{f"{column}__gte": start})
    if end is not None:
        condition &= Q(**{f"{column}__lte": end})
    return condition


def match_date(column: str, value: str) -> Q:
    """Single value or range matching on a DA value (PS3.4 C.2.2.2.1, C.2.2.2.5.1).

    ``D``, ``D1-D2``, ``D1-`` (on or after) and ``-D2`` (on or before) are
    accepted; the bounds are inclusive. Rows without a date never match a
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
        or ends before it starts (QIDO-RS 400, C-FIND 0xC000).
    """
    if "-" not in value:
        return Q(**{column: parse_date(value)})
    start, end = _range_bounds(value)
    return _between(
        column,
        parse_date(start) if start else None,
        parse_date(end) if end else None,
        value,
    )


def match_time(column: str, value: str) -> Q:
    """Single value or range matching on a TM value (PS3.4 C.2.2.2.5.1).

    A single value matches every time within its precision (``1430`` matches
    14:30:00 to 14:30:59.999999); ``T1-T2``, ``T1-`` and ``-T2`` are inclusive
    ranges. Rows without a time never match.

    Parameters
    ----------
    column : str
        The TimeField to compare.
    value : str
        The query value.

    Returns
    -------
    Q
        The condition.

    Raises
    ------
    QueryError
        When a time is malformed or the range is empty or reversed.
    """
    if "-" not in value:
        return _between(column, parse_time(value), parse_time(value, end=True), value)
    start, end = _range_bounds(value)
    return _between(
        column,
        parse_time(start) if start else None,
        parse_time(end, end=True) if end else None,
        value,
    )


def match_uid_list(column: str, value: str) -> Q:
    """UID list matching (PS3.4 C.2.2.2.2; PS3.18 8.3.4.1 ``uid-list-match``).

    Parameters
    ----------
    column : str
        The UID column.
    value : str
        One UID, or several separated by backslashes (DIMSE) or commas
        (QIDO-RS).

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
