"""Sorting, filtering and paging of a table on the server: the request's arguments checked once.

Every long table (call search, audit log, DNC, scorecards, leads, admin lists) reads the same four
arguments: `sort` (a key of the list's whitelist, appliance/store/paging.Sorts), `dir` (asc or desc),
`page` (from 1) and `per` (rows a page). A bad value is an HTTP 400 that says what is allowed, never
a silent default and never a 500. `templates/_table.html` draws the sortable headers and the pager
from the `Table` this returns.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import abort, url_for

from appliance.store.paging import MAX_OFFSET, Page, PageQuery, Sorts

PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER = 50


def page_query(args: Mapping[str, str], sorts: Sorts, per: int = DEFAULT_PER) -> PageQuery:
    """The page `args` ask for, or abort with 400 naming the argument and what it may be."""
    sort = args.get("sort", "") or sorts.default
    if sort not in sorts.columns:
        abort(400, description=f"sort: one of {', '.join(sorts.columns)}")
    direction = args.get("dir", "")
    if direction not in ("", "asc", "desc"):
        abort(400, description="dir: asc or desc")
    descending = sorts.default_descending if not direction else direction == "desc"
    raw_per = args.get("per", "") or str(per)
    if not raw_per.isdecimal() or int(raw_per) not in PER_PAGE:
        abort(400, description=f"per: one of {', '.join(map(str, PER_PAGE))}")
    size = int(raw_per)
    raw_page = args.get("page", "") or "1"
    last = MAX_OFFSET // size + 1
    # isdecimal and a length bound first: int() of a 10^5-digit string is slow, and huge pages overflow SQL.
    if not raw_page.isdecimal() or len(raw_page) > 10 or not 1 <= int(raw_page) <= last:
        abort(400, description=f"page: a whole number from 1 to {last}")
    return PageQuery(sort, descending, (int(raw_page) - 1) * size, size)


@dataclass
class Table:
    """One page of a list as the macro draws it: rows, totals, and links that keep the filters."""

    page: Page[Any]
    endpoint: str
    filters: dict[str, str] = field(default_factory=dict)
    view_args: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> list[Any]:
        return self.page.rows

    @property
    def total(self) -> int:
        return self.page.total

    @property
    def number(self) -> int:
        return self.page.query.offset // self.page.query.limit + 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.page.total // self.page.query.limit))

    @property
    def first(self) -> int:
        return self.page.query.offset + 1 if self.page.rows else 0

    @property
    def last(self) -> int:
        return self.page.query.offset + len(self.page.rows)

    def url(self, **changes: Any) -> str:
        q = self.page.query
        args: dict[str, Any] = {k: v for k, v in self.filters.items() if v}
        args.update(sort=q.sort, dir="desc" if q.descending else "asc", per=q.limit, page=self.number)
        args.update(changes)
        return url_for(self.endpoint, **self.view_args, **args)

    def sort_url(self, key: str) -> str:
        """Sorting by `key`: the other direction if it is the current sort, else ascending."""
        q = self.page.query
        direction = ("asc" if q.descending else "desc") if q.sort == key else "asc"
        return self.url(sort=key, dir=direction, page=1)

    def sorted_as(self, key: str) -> str:
        """The aria-sort value of a header: ascending, descending or none."""
        q = self.page.query
        return ("descending" if q.descending else "ascending") if q.sort == key else "none"


def table(page: Page[Any], endpoint: str, filters: Mapping[str, str] | None = None, **view_args: Any) -> Table:
    return Table(page, endpoint, dict(filters or {}), view_args)


def column_sorts(labels: list[str]) -> Sorts:
    """The sorts of a list drawn from records already in memory (the admin's configuration lists,
    loaded whole for the engine anyway): key "c<i>" is the i-th column, compared as text."""
    return Sorts({f"c{i}": label for i, label in enumerate(labels)}, default="c0", default_descending=False,
                 tiebreak="c0")


def page_of_rows(rows: list[tuple[str, list[str]]], q: PageQuery, text: str = "") -> Page[tuple[str, list[str]]]:
    """One page of (key, cells) rows sorted by `q`'s column, those containing `text` (any case) only.
    Numbers sort as numbers ("9" before "10") so that extensions list in dial order."""
    needle = text.casefold()
    found = [r for r in rows if not needle or any(needle in str(c).casefold() for c in r[1])]
    column = int(q.sort[1:])

    def key(row: tuple[str, list[str]]) -> tuple[int, float, str]:
        cell = str(row[1][column]) if column < len(row[1]) else ""
        return (0, float(cell), "") if cell.isdecimal() else (1, 0.0, cell.casefold())
    found.sort(key=key, reverse=q.descending)
    return Page(found[q.offset:q.offset + q.limit], len(found), q)
