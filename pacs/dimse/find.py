"""C-FIND SCP: Patient Root and Study Root Query/Retrieve FIND (PS3.4 C.4.1, C.6).

The identifier is matched by ``pacs.query``, the engine QIDO-RS uses too,
in the schema of the association's tenant. Every match is answered pending
(0xFF00, or 0xFF01 when a matching key was not supported), then success.
"""

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import close_old_connections, connection
from django_tenants.utils import schema_context
from pydicom.charset import convert_encodings
from pydicom.dataset import Dataset
from pynetdicom.events import Event
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from pacs.dimse import trail
from pacs.dimse.peers import normalised_address
from pacs.models import Study
from pacs.query import (
    Level,
    QueryError,
    answer_datasets,
    build_query,
    find,
    names_case_insensitive,
)
from pacs.query.engine import identifier_keys

logger = logging.getLogger(__name__)

# PS3.4 Table C.4-1 status codes.
STATUS_SUCCESS = 0x0000
STATUS_PENDING = 0xFF00
STATUS_PENDING_UNSUPPORTED_KEYS = 0xFF01
STATUS_CANCEL = 0xFE00
STATUS_IDENTIFIER_DOES_NOT_MATCH = 0xA900
STATUS_UNABLE_TO_PROCESS = 0xC000

FIND_SOP_CLASSES = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

# The levels each information model has (PS3.4 C.6.1.1, C.6.2.1).
MODEL_LEVELS: dict[str, tuple[Level, ...]] = {
    str(PatientRootQueryRetrieveInformationModelFind): tuple(Level),
    str(StudyRootQueryRetrieveInformationModelFind): (
        Level.STUDY,
        Level.SERIES,
        Level.IMAGE,
    ),
}

UTF8 = "ISO_IR 192"
TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})

FindResponse = tuple[int | Dataset, Dataset | None]


def handle_find(event: Event) -> Iterator[FindResponse]:
    """Answer a C-FIND request (PS3.4 C.4.1.2, C.4.1.3) and audit it.

    Only a known remote AE of the tenant gets here (``pacs.dimse.peers``
    answers any other caller 0x0124). Every request is recorded once in the
    tenant's trail (event 232) with its level, keys, result count and status;
    the answers go only once the record is written.

    Parameters
    ----------
    event : pynetdicom.events.Event
        The ``EVT_C_FIND`` event; ``event.assoc.nimbus_schema`` is the
        tenant's schema.

    Yields
    ------
    tuple of (int or Dataset, Dataset or None)
        ``(0xFF00, identifier)`` per match (``0xFF01`` when an optional
        matching key was not supported and was ignored), ``(0xFE00, None)``
        after a C-CANCEL, or one failure: ``0xA900`` when the Query/Retrieve
        Level does not belong to the information model, ``0xC000`` when the
        identifier cannot be processed (a malformed date range, say) or the
        query cannot be recorded. pynetdicom sends the final success (0x0000).
    """
    started = time.monotonic()
    try:
        outcome = _answers(event)
        _record(event, outcome)
    except Exception:
        # The one broad catch of this edge: whatever broke, the peer gets a
        # failure status and the association lives on.
        logger.exception("C-FIND failed")
        outcome = _failure(STATUS_UNABLE_TO_PROCESS, "Unable to process")
        try:
            _record(event, outcome)
        except Exception:  # noqa: BLE001 - already answered as a failure
            logger.exception("C-FIND failure not audited")
    finally:
        connection.close()

    if isinstance(outcome, Dataset):
        yield outcome, None
        return
    status, answers = outcome
    logger.info(
        "C-FIND matches=%d ms=%d", len(answers), (time.monotonic() - started) * 1000
    )
    for answer in answers:
        if event.is_cancelled:
            yield STATUS_CANCEL, None
            return
        yield status, answer


def _record(event: Event, outcome: Dataset | tuple[int, list[Dataset]]) -> None:
    """The audit record of one C-FIND, in the tenant's schema.

    An answered query is recorded with the final status (0x0000) and the
    number of matches; a refused one with its failure status.
    """
    assoc = event.assoc
    if isinstance(outcome, Dataset):
        status, results = int(outcome.Status), 0
    else:
        status, results = STATUS_SUCCESS, len(outcome[1])
    try:
        identifier: Dataset | None = event.identifier
    except Exception:  # noqa: BLE001 - an undecodable identifier is recorded as such
        identifier = None
    with schema_context(assoc.nimbus_schema):  # type: ignore[attr-defined]
        trail.record_query(
            calling=assoc.requestor.ae_title.strip(),
            address=normalised_address(assoc.requestor.address),
            identifier=identifier,
            status=status,
            results=results,
        )


def _answers(event: Event) -> Dataset | tuple[int, list[Dataset]]:
    close_old_connections()
    identifier: Dataset = event.identifier
    levels = MODEL_LEVELS.get(str(event.request.AffectedSOPClassUID), ())
    level_text = str(identifier.get("QueryRetrieveLevel", "") or "").strip()
    if level_text not in levels:
        logger.warning("C-FIND refused: level %r not in the model", level_text[:16])
        return _failure(
            STATUS_IDENTIFIER_DOES_NOT_MATCH,
            "Query/Retrieve Level missing or not in the information model",
            offending=0x00080052,
        )
    level = Level(level_text)
    schema: str = event.assoc.nimbus_schema  # type: ignore[attr-defined]
    values, tags = identifier_keys(identifier)

    with schema_context(schema):
        try:
            query = build_query(
                level,
                values,
                tags,
                case_insensitive_names=names_case_insensitive(schema),
            )
        except QueryError as error:
            logger.warning("C-FIND refused: malformed matching key")
            return _failure(STATUS_UNABLE_TO_PROCESS, str(error))
        rows = list(find(Study.objects.all(), query))
        answers = answer_datasets(query, rows)

    requested = _character_sets(identifier)
    chosen = answer_character_sets(requested, answers)
    for answer in answers:
        _finish(answer, level, chosen, tags, event)
    status = STATUS_PENDING_UNSUPPORTED_KEYS if query.unsupported else STATUS_PENDING
    return status, answers


def _failure(status: int, comment: str, offending: int | None = None) -> Dataset:
    """A failure status with an Error Comment (PS3.7 C.4.1.1.4)."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:64]
    if offending is not None:
        ds.OffendingElement = [offending]
    return ds


def _character_sets(identifier: Dataset) -> list[str]:
    value: Any = identifier.get("SpecificCharacterSet", "")
    terms = [value] if isinstance(value, str) else list(value)
    return [str(term).strip() for term in terms]


def answer_character_sets(
    requested: list[str], answers: Sequence[Dataset]
) -> list[str]:
    """The Specific Character Set of the answers (PS3.4 C.4.1.1.3.2, PS3.5 6.1).

    The peer's own character set when it can represent every text value of
    the answers (ISO 2022 sets included), otherwise UTF-8 (ISO_IR 192);
    plain ASCII answers need no Specific Character Set at all.

    Parameters
    ----------
    requested : list of str
        The defined terms of the request's Specific Character Set.
    answers : sequence of Dataset
        The answers, with text values as Python strings.

    Returns
    -------
    list of str
        The defined terms; empty for the default repertoire.
    """
    texts = [text for answer in answers for text in _texts(answer)]
    if all(text.isascii() for text in texts):
        return requested if any(requested) else []
    if any(requested) and all(_encodable(text, requested) for text in texts):
        return requested
    return [UTF8]


def _texts(answer: Dataset) -> Iterator[str]:
    for element in answer:
        if element.VR in TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            yield from (str(value) for value in values)


def _encodable(text: str, terms: list[str]) -> bool:
    codecs = convert_encodings(terms or [""])
    for character in text:
        for codec in codecs:
            try:
                character.encode(codec)
                break
            except (UnicodeEncodeError, LookupError):
                continue
        else:
            return False
    return True


def _finish(
    answer: Dataset, level: Level, charsets: list[str], tags: list[int], event: Event
) -> None:
    """Add the keys every answer carries (PS3.4 C.4.1.1.3.2)."""
    answer.QueryRetrieveLevel = level.value
    if charsets:
        answer.SpecificCharacterSet = charsets if len(charsets) > 1 else charsets[0]
    if 0x00080054 in tags:
        answer.RetrieveAETitle = event.assoc.acceptor.ae_title.strip()
