"""Pages of long lists that never count the whole list.

Django's Paginator counts every matching row to show "Page 3 of 2,000": at
100,000 studies that count cost as much as the page itself. A page here
reads one row more than it shows, which says whether a next page exists.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)

# Far enough for anyone paging by hand; an offset past it would make the
# database walk (and throw away) that many rows for one page.
MAX_PAGE = 1000


@dataclass(frozen=True)
class Page(Generic[M]):
    """The rows of page ``number`` (from 1), and whether pages follow."""

    object_list: list[M]
    number: int
    has_next: bool

    def __iter__(self) -> Iterator[M]:
        return iter(self.object_list)

    def __len__(self) -> int:
        return len(self.object_list)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1


def page_number(raw: str | None) -> int:
    """The page asked for, 1 for anything that is not a page number."""
    try:
        number = int(raw or 1)
    except ValueError:
        return 1
    return min(max(number, 1), MAX_PAGE)


def get_page(rows: QuerySet[M], raw_number: str | None, size: int) -> Page[M]:
    """Page ``raw_number`` of ``rows`` (an ordered query), ``size`` rows a page."""
    number = page_number(raw_number)
    start = (number - 1) * size
    found = list(rows[start : start + size + 1])
    return Page(found[:size], number, has_next=len(found) > size)
