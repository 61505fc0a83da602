"""One page of a long list: a whitelisted ORDER BY, LIMIT and OFFSET, and the count of every match.

The web's tables (call search, audit log, DNC, scorecards, leads, the admin lists) hold 100,000
rows, so none of them loads the whole list: each store read takes a `PageQuery` whose sort key
was checked against that read's own `Sorts` (web/paging.py turns the request's arguments into one
and answers a bad value with HTTP 400). The SQL of a sort is written here, never from the request.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from appliance.store.db import Store
from appliance.store.errors import StoreError

T = TypeVar("T")

MAX_LIMIT = 500
# SQLite's OFFSET is a signed 64-bit integer; a page far beyond any table is refused before SQL.
MAX_OFFSET = 10**9


@dataclass(frozen=True)
class Sorts:
    """The columns a list may be sorted by: key (as the page names it) -> SQL expression, and a
    unique tie-break so that a page boundary never splits equal keys differently on two reads."""

    columns: Mapping[str, str]
    default: str
    default_descending: bool
    tiebreak: str

    def __post_init__(self) -> None:
        if self.default not in self.columns:
            raise StoreError(f"default sort {self.default!r} is not one of {sorted(self.columns)}")


@dataclass(frozen=True)
class PageQuery:
    """What one page asks: its sort key (one of the list's `Sorts`), direction, offset and size."""

    sort: str
    descending: bool
    offset: int = 0
    limit: int = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    """The rows of one page and how many rows match in all."""

    rows: list[T]
    total: int
    query: PageQuery


def default_query(sorts: Sorts, limit: int = 50) -> PageQuery:
    return PageQuery(sorts.default, sorts.default_descending, 0, limit)


def order_by(sorts: Sorts, q: PageQuery) -> str:
    """The ORDER BY clause of `q`; a key outside the whitelist is a programming error here (the web
    refused it with a 400 already)."""
    if q.sort not in sorts.columns:
        raise StoreError(f"cannot sort by {q.sort!r}: one of {', '.join(sorted(sorts.columns))}")
    direction = "DESC" if q.descending else "ASC"
    return f" ORDER BY {sorts.columns[q.sort]} {direction}, {sorts.tiebreak} {direction}"


def fetch_page(store: Store, select: str, from_where: str, params: Sequence[Any], sorts: Sorts,
               q: PageQuery, row: Callable[[tuple[Any, ...]], T]) -> Page[T]:
    """`SELECT <select> <from_where>` sorted by `q`, one page of it, and the COUNT(*) of all rows."""
    if not 0 <= q.offset <= MAX_OFFSET or not 1 <= q.limit <= MAX_LIMIT:
        raise StoreError(f"page out of range: offset {q.offset}, limit {q.limit}")
    total = int(store.query(f"SELECT COUNT(*) {from_where}", tuple(params))[0][0])
    rows = store.query(f"SELECT {select} {from_where}{order_by(sorts, q)} LIMIT ? OFFSET ?",
                       (*params, q.limit, q.offset))
    return Page([row(tuple(r)) for r in rows], total, q)


def like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally (ESCAPE '\\\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def contains(columns: Sequence[str]) -> str:
    """A WHERE term: any of `columns` contains the parameter, case-folded on both sides (SQLite's
    LIKE folds ASCII case, PostgreSQL's does not). Takes one `like()` parameter per column."""
    return "(" + " OR ".join(f"LOWER({c}) LIKE LOWER(?) ESCAPE '\\'" for c in columns) + ")"
