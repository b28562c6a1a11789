"""One query engine for DIMSE C-FIND and QIDO-RS (PS3.4 C.2.2.2, PS3.18 10.6).

``matching`` turns one key's value into a condition on the index;
``engine`` puts the keys of an identifier together at a query level and fills
the return keys of each match.
"""

from pacs.query.engine import (
    Level,
    Query,
    answer_datasets,
    answer_json,
    build_query,
    find,
    names_case_insensitive,
)
from pacs.query.matching import QueryError

__all__ = [
    "Level",
    "Query",
    "QueryError",
    "answer_datasets",
    "answer_json",
    "build_query",
    "find",
    "names_case_insensitive",
]
