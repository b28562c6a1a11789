"""Helpers for reading DICOM values into Python types.

Reading is lenient (PS3.5 values from the field are often slightly off);
writing elsewhere is strict. ``configure_pydicom`` is the one place that sets
both policies.
"""

import datetime
import re
import struct
import zlib
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError

# PS3.5 9.1: a UID is dot-separated numeric components, at most 64 characters,
# no leading zero in a component (lenient here: some vendors break that rule).
UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")

# What pydicom raises on bytes it cannot make sense of. Reading is lazy: these
# come from ``dcmread`` and again from the first access to a damaged element
# (an unknown VR, a length that is not a multiple of the value size, a
# truncated sequence, a broken deflate stream). Found by
# tests/security/test_fuzz_dicom.py.
READ_ERRORS: tuple[type[Exception], ...] = (
    InvalidDicomError,
    BytesLengthException,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
    NotImplementedError,
    struct.error,
    zlib.error,
)


def configure_pydicom() -> None:
    """Read leniently (warn), write strictly (raise)."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.WARN
    pydicom.config.settings.writing_validation_mode = pydicom.config.RAISE


def is_valid_uid(value: object) -> bool:
    """Whether ``value`` is a syntactically valid UID, safe to use in a file path."""
    return (
        isinstance(value, str) and len(value) <= 64 and bool(UID_PATTERN.match(value))
    )


def get_value(dataset: Dataset, keyword: str) -> Any:
    """The value of ``keyword``, or None when absent or not readable."""
    try:
        return dataset.get(keyword)
    except READ_ERRORS:
        return None


def text(dataset: Dataset, keyword: str, max_length: int = 64) -> str:
    """A string value of ``keyword``, '' when absent; multi-values joined with '\\'."""
    value = get_value(dataset, keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)[:max_length]
    return str(value).strip()[:max_length]


def person_name(dataset: Dataset, keyword: str) -> str:
    """A PN value in its DICOM form (family^given^middle^prefix^suffix), decoded."""
    value = get_value(dataset, keyword)
    if not value:
        return ""
    return str(value)[:324]


def date_value(dataset: Dataset, keyword: str) -> datetime.date | None:
    """A DA value (YYYYMMDD, or the retired YYYY.MM.DD) as a date, or None."""
    raw = str(get_value(dataset, keyword) or "").strip().replace(".", "")
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return datetime.date(int(raw[:4]), int(raw[4:6]), int(raw[6:]))
    except ValueError:
        return None


def time_value(dataset: Dataset, keyword: str) -> datetime.time | None:
    """A TM value (HH[MM[SS[.F]]], or the retired HH:MM:SS) as a time."""
    raw = str(get_value(dataset, keyword) or "").strip().replace(":", "")
    match = re.match(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$", raw)
    if not match:
        return None
    hour, minute, second, fraction = match.groups()
    try:
        return datetime.time(
            int(hour),
            int(minute or 0),
            min(int(second or 0), 59),  # a leap second (60) is legal in DICOM
            int(float(fraction) * 1_000_000) if fraction else 0,
        )
    except ValueError:
        return None


def int_value(dataset: Dataset, keyword: str) -> int | None:
    value = get_value(dataset, keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def float_list(dataset: Dataset, keyword: str, length: int) -> list[float] | None:
    value: Any = get_value(dataset, keyword)
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == length else None


def first_float(dataset: Dataset, keyword: str) -> float | None:
    value: Any = get_value(dataset, keyword)
    if value is None or value == "":
        return None
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def display_person_name(value: str) -> str:
    """'Doe^John^A^Dr' -> 'Doe, Dr John A' (PS3.5 6.2.1: alphabetic group only)."""
    alphabetic = (value or "").split("=")[0]
    family, given, middle, prefix, suffix = (alphabetic.split("^") + [""] * 5)[:5]
    first = " ".join(part for part in (prefix, given, middle) if part)
    name = ", ".join(part for part in (family, first) if part)
    return f"{name} {suffix}".strip()
