"""The query engine: an identifier at a query level to matches and answers.

PS3.4 C.2.2.2 defines the matching, C.6.1 and C.6.2 the levels (PATIENT,
STUDY, SERIES, IMAGE) and their keys, PS3.18 10.6 the same for QIDO-RS.
Matching keys that the index holds become conditions on its columns; return
keys come from the index and, for any other attribute, from the DICOM JSON
header kept with each instance (for a patient, study or series, its first
instance stands for it).
"""

import datetime
import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import (
    Count,
    F,
    Func,
    JSONField,
    Model,
    Q,
    QuerySet,
    TextField,
    Value,
)
from django.db.models.functions import Cast
from django.utils.translation import gettext as _
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from pacs.dicomweb.json_model import dictionary_vr, person_name_value
from pacs.models import Instance, Patient, Series, Study
from pacs.query.matching import (
    QueryError,
    match_code_strings,
    match_date,
    match_integer,
    match_person_name,
    match_text,
    match_time,
    match_uid_list,
)

# Never matching or return keys: they steer the query itself (PS3.4 C.4.1.1.3).
CONTROL_KEYWORDS = frozenset(
    {"SpecificCharacterSet", "QueryRetrieveLevel", "TimezoneOffsetFromUTC"}
)


class Level(enum.StrEnum):
    """Query/Retrieve Level (0008,0052), PS3.4 C.6.1.1.1 and C.6.2.1.1."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def depth(self) -> int:
        return list(Level).index(self)


class Kind(enum.Enum):
    """How a key matches and how its index value is written back."""

    TEXT = "text"
    PERSON_NAME = "pn"
    DATE = "date"
    TIME = "time"
    UID = "uid"
    CODES = "codes"
    INTEGER = "integer"
    COUNT = "count"  # a return key only


@dataclass(frozen=True)
class IndexKey:
    level: Level
    column: str
    kind: Kind


# The attributes the index holds (PS3.4 Tables C.6-1 to C.6-4 and C.6-5 to
# C.6-8), by keyword; everything else is answered from the stored header.
INDEX_KEYS: dict[str, IndexKey] = {
    "PatientName": IndexKey(Level.PATIENT, "patient_name", Kind.PERSON_NAME),
    "PatientID": IndexKey(Level.PATIENT, "patient_id", Kind.TEXT),
    "IssuerOfPatientID": IndexKey(Level.PATIENT, "issuer_of_patient_id", Kind.TEXT),
    "PatientBirthDate": IndexKey(Level.PATIENT, "patient_birth_date", Kind.DATE),
    "PatientSex": IndexKey(Level.PATIENT, "patient_sex", Kind.TEXT),
    "StudyInstanceUID": IndexKey(Level.STUDY, "study_instance_uid", Kind.UID),
    "StudyDate": IndexKey(Level.STUDY, "study_date", Kind.DATE),
    "StudyTime": IndexKey(Level.STUDY, "study_time", Kind.TIME),
    "AccessionNumber": IndexKey(Level.STUDY, "accession_number", Kind.TEXT),
    "StudyID": IndexKey(Level.STUDY, "study_id", Kind.TEXT),
    "StudyDescription": IndexKey(Level.STUDY, "study_description", Kind.TEXT),
    "ReferringPhysicianName": IndexKey(
        Level.STUDY, "referring_physician_name", Kind.PERSON_NAME
    ),
    "ModalitiesInStudy": IndexKey(Level.STUDY, "modalities_in_study", Kind.CODES),
    "NumberOfStudyRelatedSeries": IndexKey(
        Level.STUDY, "number_of_study_related_series", Kind.COUNT
    ),
    "NumberOfStudyRelatedInstances": IndexKey(
        Level.STUDY, "number_of_study_related_instances", Kind.COUNT
    ),
    "SeriesInstanceUID": IndexKey(Level.SERIES, "series_instance_uid", Kind.UID),
    "Modality": IndexKey(Level.SERIES, "modality", Kind.CODES),
    "SeriesNumber": IndexKey(Level.SERIES, "series_number", Kind.INTEGER),
    "SeriesDescription": IndexKey(Level.SERIES, "series_description", Kind.TEXT),
    "BodyPartExamined": IndexKey(Level.SERIES, "body_part_examined", Kind.TEXT),
    "NumberOfSeriesRelatedInstances": IndexKey(
        Level.SERIES, "number_of_series_related_instances", Kind.COUNT
    ),
    "SOPInstanceUID": IndexKey(Level.IMAGE, "sop_instance_uid", Kind.UID),
    "SOPClassUID": IndexKey(Level.IMAGE, "sop_class_uid", Kind.UID),
    "InstanceNumber": IndexKey(Level.IMAGE, "instance_number", Kind.INTEGER),
    "Rows": IndexKey(Level.IMAGE, "rows", Kind.COUNT),
    "Columns": IndexKey(Level.IMAGE, "columns", Kind.COUNT),
    "NumberOfFrames": IndexKey(Level.IMAGE, "number_of_frames", Kind.COUNT),
}

# From a level's model to the row of each level above it.
PATHS: dict[Level, dict[Level, str]] = {
    Level.PATIENT: {Level.PATIENT: ""},
    Level.STUDY: {Level.PATIENT: "patient__", Level.STUDY: ""},
    Level.SERIES: {
        Level.PATIENT: "study__patient__",
        Level.STUDY: "study__",
        Level.SERIES: "",
    },
    Level.IMAGE: {
        Level.PATIENT: "series__study__patient__",
        Level.STUDY: "series__study__",
        Level.SERIES: "series__",
        Level.IMAGE: "",
    },
}

# Counts of a patient's studies, series and instances (PS3.4 Table C.6-1).
# Answered by Nimbus itself, never from an index column or a stored header.
COMPUTED_KEYS = {"InstanceAvailability"}

PATIENT_COUNTS = {
    "NumberOfPatientRelatedStudies": "studies",
    "NumberOfPatientRelatedSeries": "studies__series",
    "NumberOfPatientRelatedInstances": "studies__series__instances",
}


@dataclass(frozen=True)
class Query:
    """A parsed identifier at one level: the condition and what to answer."""

    level: Level
    condition: Q = field(default_factory=Q)
    match_keys: dict[str, str] = field(default_factory=dict)
    return_tags: tuple[int, ...] = ()
    # Keys with a value that Nimbus could not match on; they were ignored.
    unsupported: tuple[str, ...] = ()


def names_case_insensitive(schema: str) -> bool:
    """Whether the tenant matches person names whatever their case.

    ``NIMBUS_PN_CASE_INSENSITIVE`` (default True) sets it for every tenant;
    the schemas in ``NIMBUS_PN_CASE_SENSITIVE_TENANTS`` match case by case.
    """
    exceptions = getattr(settings, "NIMBUS_PN_CASE_SENSITIVE_TENANTS", ())
    default = getattr(settings, "NIMBUS_PN_CASE_INSENSITIVE", True)
    return bool(default) and schema not in exceptions


def identifier_keys(identifier: Dataset) -> tuple[dict[str, str], list[int]]:
    """The matching values and the return tags of a C-FIND identifier.

    Parameters
    ----------
    identifier : Dataset
        The request identifier (PS3.4 C.4.1.1.3), already decoded with its
        Specific Character Set.

    Returns
    -------
    tuple of (dict, list)
        The keyword and text of every non-empty key (multiple values joined
        by backslashes; a sequence with items as ``"(sequence)"``), and the
        tag of every key, in the order given.
    """
    values: dict[str, str] = {}
    tags: list[int] = []
    for element in identifier:
        if element.tag.element == 0 or element.keyword in CONTROL_KEYWORDS:
            continue
        tags.append(int(element.tag))
        if element.VR == "SQ":
            if any(len(item) for item in element.value):
                values[element.keyword or str(element.tag)] = "(sequence)"
            continue
        text = element_text(element.value)
        if text not in ("", "*"):
            values[element.keyword or str(element.tag)] = text
    return values, tags


def element_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(item) for item in value).strip()
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    return str(value).strip()


def build_query(
    level: Level,
    match_values: Mapping[str, str],
    return_tags: Iterable[int] = (),
    case_insensitive_names: bool = True,
    fuzzy: bool = False,
) -> Query:
    """Turn matching values into a condition at ``level`` (PS3.4 C.2.2.2).

    Every key at the query level or above it can match (the extended,
    relational behaviour of C.4.1.2.2 for levels above; a hierarchical peer
    only sends their unique keys anyway). Universal matching (an empty value
    or a lone ``*``) adds no condition.

    Parameters
    ----------
    level : Level
        The query level.
    match_values : Mapping of str to str
        Keyword to the query value, as from ``identifier_keys``.
    return_tags : iterable of int
        The attributes to answer.
    case_insensitive_names : bool
        PN matching ignores case (the tenant's choice).
    fuzzy : bool
        PN matching also ignores accents (PS3.18 8.3.4.1 ``fuzzymatching``).

    Returns
    -------
    Query
        The condition; keys it could not match on are listed in
        ``unsupported`` (C-FIND answers 0xFF01 for them).

    Raises
    ------
    QueryError
        For a malformed value, such as a date range ``2024-01-01``.
    """
    condition = Q()
    used: dict[str, str] = {}
    unsupported: list[str] = []
    for keyword, value in match_values.items():
        if value in ("", "*"):
            continue
        key = INDEX_KEYS.get(keyword)
        if key is None or key.kind is Kind.COUNT or key.level.depth > level.depth:
            unsupported.append(keyword)
            continue
        if any(ord(character) < 0x20 for character in value):
            # PostgreSQL cannot compare text with NUL; PS3.5 allows no control
            # characters in the matchable VRs either (C-FIND: found by fuzzing).
            raise QueryError(
                _("The value of %(name)s contains a control character.")
                % {"name": keyword}
            )
        column = PATHS[level][key.level] + key.column
        condition &= _matcher(key.kind, column, value, case_insensitive_names, fuzzy)
        used[keyword] = value
    return Query(level, condition, used, tuple(return_tags), tuple(unsupported))


def _matcher(kind: Kind, column: str, value: str, insensitive: bool, fuzzy: bool) -> Q:
    if kind is Kind.PERSON_NAME:
        return match_person_name(column, value, insensitive, fuzzy)
    if kind is Kind.DATE:
        return match_date(column, value)
    if kind is Kind.TIME:
        return match_time(column, value)
    if kind is Kind.UID:
        return match_uid_list(column, value)
    if kind is Kind.CODES:
        return match_code_strings(column, value)
    if kind is Kind.INTEGER:
        return match_integer(column, value)
    return match_text(column, value)


def find(scope: QuerySet[Study], query: Query) -> QuerySet[Any]:
    """The matching rows of the query level, in a stable order.

    Parameters
    ----------
    scope : QuerySet of Study
        The studies the caller may see (``pacs.access.studies_for`` over
        HTTP, the association's tenant over DIMSE).
    query : Query
        From ``build_query``.

    Returns
    -------
    QuerySet
        Patient, Study, Series or Instance rows, ordered so that paging with
        offsets is idempotent (PS3.18 8.3.4.4.1).
    """
    level = query.level
    if level is Level.STUDY:
        rows: QuerySet[Any] = scope.select_related("patient").order_by(
            F("study_date").desc(nulls_last=True),
            F("study_time").desc(nulls_last=True),
            "pk",
        )
    elif level is Level.SERIES:
        rows = (
            Series.objects.filter(study__in=scope)
            .select_related("study__patient")
            .order_by("study_id", F("series_number").asc(nulls_last=True), "pk")
        )
    elif level is Level.IMAGE:
        rows = (
            Instance.objects.filter(series__study__in=scope)
            .select_related("series__study__patient")
            .order_by("series_id", F("instance_number").asc(nulls_last=True), "pk")
            .defer("metadata", "image_position_patient", "image_orientation_patient")
        )
        # Only the header attributes asked for, picked out by PostgreSQL:
        # whole headers, decoded row by row, were most of an instance list.
        picked = {
            _picked(key): _header_element(key)
            for key in (f"{tag:08X}" for tag in _header_tags(query))
        }
        if picked:
            rows = rows.annotate(**picked)
    else:
        rows = Patient.objects.filter(pk__in=scope.values("patient_id")).order_by(
            "patient_name", "pk"
        )
    return rows.filter(query.condition)


def _header_tags(query: Query) -> list[int]:
    """Return keys answered from stored headers: neither indexed nor computed."""
    return [
        tag
        for tag in query.return_tags
        if _index_key(tag, query.level) is None
        and keyword_for_tag(tag) not in COMPUTED_KEYS
        and not (
            query.level is Level.PATIENT and keyword_for_tag(tag) in PATIENT_COUNTS
        )
    ]


def _picked(key: str) -> str:
    """The annotation that carries header attribute ``key`` of an instance row."""
    return f"header_{key}"


def _index_key(tag: int, level: Level) -> IndexKey | None:
    key = INDEX_KEYS.get(keyword_for_tag(tag))
    if key is None or key.level.depth > level.depth:
        return None
    return key


def answer_datasets(query: Query, rows: list[Model]) -> list[Dataset]:
    """The return keys of each match (PS3.4 C.4.1.2.3; PS3.18 10.6.3.3).

    Index columns answer first; any other attribute comes from the stored
    header of the match (of its first instance above the IMAGE level), and
    an attribute found nowhere is answered empty, as PS3.4 C.2.2.1.2 asks.
    Unique keys of the query level and the levels above it are always
    answered.

    Parameters
    ----------
    query : Query
        The query; ``return_tags`` lists the attributes asked for.
    rows : list
        Matches from ``find``.

    Returns
    -------
    list of Dataset
        One identifier per match, values as Python strings (the caller
        chooses the character set they are encoded in).
    """
    tags = list(dict.fromkeys([*query.return_tags, *_unique_tags(query.level)]))
    header_tags = _header_tags(query)
    headers = representative_headers(query, rows, header_tags) if header_tags else {}
    answers = []
    for row in rows:
        ds = Dataset()
        for tag in sorted(tags):
            _add_answer(ds, tag, row, query.level, headers.get(row.pk, {}))
        answers.append(ds)
    return answers


def json_rows(query: Query, rows: QuerySet[Any]) -> QuerySet[Any]:
    """``find``'s rows as dicts of just the columns ``answer_json`` reads.

    A page of hundreds of instances spent most of its time building model
    objects (an instance, its series, study and patient for every row) only
    to read a few attributes of each.
    """
    fields = {"pk"}
    for tag in dict.fromkeys([*query.return_tags, *_unique_tags(query.level)]):
        if (key := _index_key(tag, query.level)) is not None:
            fields.add(PATHS[query.level][key.level] + key.column)
    if query.level is Level.IMAGE:
        fields |= {_picked(f"{tag:08X}") for tag in _header_tags(query)}
    return rows.values(*sorted(fields))


def answer_json(query: Query, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The answers of ``answer_datasets`` in the DICOM JSON Model (PS3.18 F.2).

    Written straight from the index and the stored headers, which already
    are DICOM JSON: building a pydicom dataset for each match only to encode
    it again cost most of a QIDO-RS request. Person names are left as
    stored; ``pacs.dicomweb.json_model`` tidies them.

    Parameters
    ----------
    query : Query
        The query; ``return_tags`` lists the attributes asked for.
    rows : list of dict
        One page of ``json_rows``.

    Returns
    -------
    list of dict
        One DICOM JSON object per row, attributes in ascending tag order.
    """
    level = query.level
    tags = sorted(dict.fromkeys([*query.return_tags, *_unique_tags(level)]))
    header_tags = _header_tags(query)
    headers: dict[int, Any] = {}
    if header_tags and level is not Level.IMAGE:
        # Above the IMAGE level, the first instance's header stands for the
        # row; an instance row carries its own attributes, picked by ``find``.
        headers = first_instance_headers(
            level, [row["pk"] for row in rows], header_tags
        )
    plan = [(f"{tag:08X}", _json_source(tag, level)) for tag in tags]
    return [
        {name: source(row, headers.get(row["pk"], {})) for name, source in plan}
        for row in rows
    ]


JsonSource = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _json_source(tag: int, level: Level) -> JsonSource:
    """How the attribute ``tag`` of one answer is found, decided once a page."""
    name = f"{tag:08X}"
    keyword = keyword_for_tag(tag)
    key = _index_key(tag, level)
    if key is not None:
        column = PATHS[level][key.level] + key.column
        vr = dictionary_vr(tag)
        return lambda row, _header: _index_element(vr, key.kind, row[column])
    if level is Level.PATIENT and keyword in PATIENT_COUNTS:
        related = PATIENT_COUNTS[keyword]
        return lambda row, _header: {
            "vr": "IS",
            "Value": [
                Patient.objects.filter(pk=row["pk"]).aggregate(
                    n=Count(related, distinct=True)
                )["n"]
            ],
        }
    if keyword == "InstanceAvailability":
        return lambda _row, _header: {"vr": "CS", "Value": ["ONLINE"]}
    if level is Level.IMAGE:
        picked = _picked(name)
        return lambda row, _header: _stored_element(tag, keyword, row[picked])
    return lambda _row, header: _stored_element(tag, keyword, header.get(name))


def _index_element(vr: str, kind: Kind, value: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"vr": vr}
    value = _index_text(value, kind)
    if kind is Kind.PERSON_NAME and value is not None:
        value = person_name_value(value) or None
    if value is not None:
        element["Value"] = value if isinstance(value, list) else [value]
    return element


def _stored_element(
    tag: int, keyword: str, stored: dict[str, Any] | None
) -> dict[str, Any]:
    """A header attribute as stored, or empty when it is not (C.2.2.1.2)."""
    if stored and "BulkDataURI" not in stored:
        return stored
    vr = dictionary_vr(tag) if keyword else stored.get("vr", "UN") if stored else "UN"
    return {"vr": vr, "Value": []} if vr == "SQ" else {"vr": vr}


def _unique_tags(level: Level) -> list[int]:
    unique = ["PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    return [int(tag_for_keyword(k) or 0) for k in unique[: level.depth + 1]]


def _add_answer(
    ds: Dataset, tag: int, row: Model, level: Level, header: dict[str, Any]
) -> None:
    keyword = keyword_for_tag(tag)
    key = _index_key(tag, level)
    if key is not None:
        value = _index_value(row, PATHS[level][key.level] + key.column, key.kind)
        ds.add_new(tag, dictionary_vr(tag), value)
        return
    if level is Level.PATIENT and keyword in PATIENT_COUNTS:
        count = Patient.objects.filter(pk=row.pk).aggregate(
            n=Count(PATIENT_COUNTS[keyword], distinct=True)
        )["n"]
        ds.add_new(tag, "IS", count)
        return
    if keyword == "InstanceAvailability":
        ds.add_new(tag, "CS", "ONLINE")
        return
    stored = header.get(f"{tag:08X}")
    if stored is not None and "BulkDataURI" not in stored:
        element = Dataset.from_json({f"{tag:08X}": stored})[tag]
        ds.add(element)
        return
    vr = dictionary_vr(tag) if keyword else stored.get("vr", "UN") if stored else "UN"
    ds.add_new(tag, vr, [] if vr == "SQ" else None)


def _index_value(row: Model, path: str, kind: Kind) -> Any:
    value: Any = row
    for name in _path_parts(path):
        value = getattr(value, name)
    return _index_text(value, kind)


def _index_text(value: Any, kind: Kind) -> Any:
    """An index column's value as a query answer holds it; None when empty."""
    if value is None or value == "":
        return None
    if kind is Kind.DATE:
        return value.strftime("%Y%m%d")
    if kind is Kind.TIME:
        return _time_text(value)
    if kind is Kind.CODES:
        return [code for code in value.split("\\") if code]
    return value


@functools.cache
def _path_parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("__"))


def _time_text(value: datetime.time) -> str:
    text = value.strftime("%H%M%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text


def representative_headers(
    query: Query, rows: list[Model], tags: list[int] | None = None
) -> dict[int, Any]:
    """The stored header of each row, or of its first instance (one query).

    With ``tags``, only those attributes: PostgreSQL picks them out of each
    header, instead of sending whole headers to be parsed here.
    """
    if query.level is Level.IMAGE and tags is not None:
        # Picked out in ``find``.
        keys = [f"{tag:08X}" for tag in tags]
        return {
            row.pk: {
                key: value
                for key in keys
                if (value := getattr(row, _picked(key), None))
            }
            for row in rows
        }
    return first_instance_headers(query.level, [row.pk for row in rows], tags)


def first_instance_headers(
    level: Level, pks: list[int], tags: list[int] | None = None
) -> dict[int, Any]:
    """The stored header of each row of ``level`` by primary key (one query).

    An instance has its own; a series, study or patient is represented by
    its first instance. With ``tags`` (above the IMAGE level), only those
    attributes.
    """
    if level is Level.IMAGE:
        # Asked attributes of instance rows are picked out in ``find``.
        return dict(Instance.objects.filter(pk__in=pks).values_list("pk", "metadata"))
    owner = {
        Level.SERIES: "series_id",
        Level.STUDY: "series__study_id",
        Level.PATIENT: "series__study__patient_id",
    }[level]
    firsts = (
        Instance.objects.filter(**{f"{owner}__in": pks})
        .order_by(owner, F("instance_number").asc(nulls_last=True), "pk")
        .distinct(owner)
    )
    if tags is None:
        return dict(firsts.values_list(owner, "metadata"))
    keys = [f"{tag:08X}" for tag in tags]
    picked = firsts.values_list(owner, *(_header_element(key) for key in keys))
    return {
        row[0]: {key: value for key, value in zip(keys, row[1:], strict=True) if value}
        for row in picked
    }


def _header_element(key: str) -> Func:
    """``metadata -> 'key'``: one attribute of a stored header, as JSON.

    Not Django's KeyTransform: it reads an all-digit key such as
    ``00080070`` as an array index.
    """
    return Func(
        F("metadata"),
        Cast(Value(key), output_field=TextField()),
        arg_joiner=" -> ",
        template="(%(expressions)s)",
        output_field=JSONField(),
    )


def tag_of(name: str) -> int | None:
    """The tag a keyword or eight hex digits name, or None (PS3.18 8.3.4.1)."""
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return int(Tag(int(name, 16)))
    found = tag_for_keyword(name)
    return int(found) if found is not None else None
