"""QIDO-RS: query parameters to a query of the shared engine (PS3.18 10.6).

PS3.18 8.3.4 defines the parameters: match keys by keyword or tag,
``fuzzymatching``, ``includefield``, ``limit`` and ``offset``. The matching
itself is ``pacs.query`` (PS3.4 C.2.2.2), the same code that answers DIMSE
C-FIND.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import QueryDict
from django.utils.translation import gettext as _
from pydicom.datadict import keyword_for_tag

from pacs.dicomweb.json_model import DicomJson
from pacs.models import Study
from pacs.query import Level, Query, QueryError, answer_json, build_query, find
from pacs.query.engine import INDEX_KEYS, first_instance_headers, json_rows, tag_of

__all__ = ["MAX_RESULTS", "QueryError", "SearchRequest", "parse_search", "search"]

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

# Default return attributes, PS3.18 Tables 10.6.3-3, -4 and -5.
STUDY_DEFAULTS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_DEFAULTS = (
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
)
INSTANCE_DEFAULTS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)
# includefield=all at a level above IMAGE answers the stored header of the
# first instance, less what only describes that one instance.
INSTANCE_ONLY = frozenset(
    key for key, index in INDEX_KEYS.items() if index.level is Level.IMAGE
) | {"InstanceCreationDate", "InstanceCreationTime", "ImagePositionPatient"}


@dataclass(frozen=True)
class SearchRequest:
    """A parsed QIDO-RS request: the engine's query, the page and the warnings."""

    query: Query
    limit: int = MAX_RESULTS
    offset: int = 0
    warnings: tuple[str, ...] = ()
    include_all: bool = False

    @property
    def match_keys(self) -> dict[str, str]:
        return self.query.match_keys


@dataclass(frozen=True)
class SearchPage:
    """One page of answers, and whether more matches remain after it."""

    answers: list[DicomJson]
    remaining: bool


def default_return_keys(level: Level, fixed: Mapping[str, str]) -> list[str]:
    """The default attributes of a search (PS3.18 10.6.3.3.1).

    A series or instance search that is not inside a study also answers the
    study's attributes, and an instance search outside a series the series'.
    """
    if level is Level.STUDY:
        return list(STUDY_DEFAULTS)
    keys = [] if "StudyInstanceUID" in fixed else list(STUDY_DEFAULTS)
    if level is Level.SERIES:
        return [*keys, *SERIES_DEFAULTS]
    if "SeriesInstanceUID" not in fixed:
        keys += SERIES_DEFAULTS
    return [*keys, *INSTANCE_DEFAULTS]


def parse_search(
    params: QueryDict,
    level: Level,
    fixed: Mapping[str, str] | None = None,
    case_insensitive_names: bool = True,
) -> SearchRequest:
    """Read the query parameters of a QIDO-RS search (PS3.18 8.3.4, 10.6.1).

    A value of ``*`` or an empty value is universal matching (PS3.4
    C.2.2.2.3). Match keys Nimbus cannot match on are ignored with a warning,
    as PS3.18 8.3.4.1 allows.

    Parameters
    ----------
    params : QueryDict
        ``request.GET``.
    level : Level
        STUDY, SERIES or IMAGE (the resource searched).
    fixed : Mapping of str to str, optional
        UIDs from the path, e.g. ``{"StudyInstanceUID": ...}``.
    case_insensitive_names : bool
        The tenant's person-name matching.

    Returns
    -------
    SearchRequest
        The query, the page, and the warnings to send.

    Raises
    ------
    QueryError
        For a malformed value, a repeated match key, or a bad limit or offset.
    """
    fixed = dict(fixed or {})
    values: dict[str, str] = {}
    warnings: list[str] = []
    fuzzy = False
    includes: list[str] = []

    for name in params:
        given = params.getlist(name)
        lowered = name.lower()
        if lowered in {LIMIT, OFFSET} | IGNORED_PARAMETERS:
            continue
        if lowered == INCLUDE_FIELD:
            includes += [f for v in given for f in v.split(",") if f.strip()]
            continue
        if lowered == FUZZY_MATCHING:
            fuzzy = given[-1].strip().lower() == "true"
            continue
        tag = tag_of(name)
        keyword = _keyword(tag)
        if keyword is None or keyword not in INDEX_KEYS:
            warnings.append(f"{name}: unsupported match key, ignored")
            continue
        if len(given) > 1 or keyword in values:
            raise QueryError(
                _("The match key %(name)s is given more than once.") % {"name": name}
            )
        # build_query refuses control characters.
        values[keyword] = given[0].strip()

    return_keys = [*default_return_keys(level, fixed), *values]
    include_all = False
    for field_name in (f.strip() for f in includes):
        if field_name.lower() == "all":
            include_all = True
        elif (keyword := _keyword(tag_of(field_name))) is not None:
            return_keys.append(keyword)
        else:
            warnings.append(f"includefield {field_name}: unknown attribute, ignored")

    query = build_query(
        level,
        {**values, **fixed},
        _tags(return_keys),
        case_insensitive_names=case_insensitive_names,
        fuzzy=fuzzy,
    )
    warnings += [f"{k}: unsupported match key, ignored" for k in query.unsupported]

    limit = parse_count(params, LIMIT, MAX_RESULTS)
    if limit > MAX_RESULTS:
        warnings.append(f"limit reduced to the maximum of {MAX_RESULTS} results")
        limit = MAX_RESULTS
    offset = parse_count(params, OFFSET, 0)
    return SearchRequest(query, limit, offset, tuple(warnings), include_all)


def _keyword(tag: int | None) -> str | None:
    return (keyword_for_tag(tag) or None) if tag is not None else None


def _tags(keywords: list[str]) -> list[int]:
    found = (tag_of(keyword) for keyword in dict.fromkeys(keywords))
    return [tag for tag in found if tag is not None]


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


def search(studies: QuerySet[Study], request: SearchRequest) -> SearchPage:
    """One page of answers, in a stable order (PS3.18 8.3.4.4.1).

    Parameters
    ----------
    studies : QuerySet of Study
        What the caller may see (``pacs.access.studies_for``).
    request : SearchRequest
        The parsed request.

    Returns
    -------
    SearchPage
        At most ``request.limit`` answers after ``request.offset``, and
        whether more matches remain.
    """
    rows = json_rows(request.query, find(studies, request.query))
    # One row more than asked tells whether another page exists.
    window = list(rows[request.offset : request.offset + request.limit + 1])
    page = window[: request.limit]
    answers = answer_json(request.query, page)
    if request.include_all:
        _add_stored_attributes(request.query, [row["pk"] for row in page], answers)
    return SearchPage(answers, remaining=len(window) > request.limit)


def _add_stored_attributes(
    query: Query, pks: list[int], answers: list[DicomJson]
) -> None:
    headers = first_instance_headers(query.level, pks)
    for pk, answer in zip(pks, answers, strict=True):
        for tag, element in headers.get(pk, {}).items():
            if (
                tag not in answer
                and "BulkDataURI" not in element
                and "InlineBinary" not in element
                and (
                    query.level is Level.IMAGE
                    or _keyword(int(tag, 16)) not in INSTANCE_ONLY
                )
            ):
                answer[tag] = element
