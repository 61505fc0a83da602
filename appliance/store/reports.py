"""Call-record reads for the reports pages: the call search and the volume by direction.

The CDR itself is written by the engine (appliance/store/cdr.py, part of `Store`); this module is
what the web reports read of it, as typed rows. Module functions over a `Store`, like
contacts.py; the SQL is written for SQLite and PostgreSQL alike (LIKE with an explicit ESCAPE).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store
from appliance.store.paging import Page, PageQuery, Sorts, fetch_page


@dataclass(frozen=True)
class CallRow:
    """A call record as the call search lists it, with the call's first recording."""

    id: int
    start: float
    caller: str
    caller_name: str
    callee: str
    direction: str
    disposition: str | None
    duration: float | None
    billsec: float | None
    trunk: str | None
    call_id: str
    recording_id: int | None


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its wildcards taken literally (ESCAPE '\\')."""
    return "%" + re.sub(r"([%_\\])", r"\\\1", text) + "%"


def search_calls(store: Store, start: float, end: float, number: str = "", disposition: str = "",
                 limit: int = 100) -> list[CallRow]:
    """Call records started in [start, end), newest first; `number` is found in the caller or
    the callee, `disposition` matches exactly."""
    sql = ("SELECT c.id, c.start_at, c.caller, c.caller_name, c.callee, c.direction, c.disposition,"
           " c.duration, c.billsec, c.trunk, c.call_id,"
           " (SELECT r.id FROM recordings r WHERE r.cdr_id = c.id OR r.call_id = c.call_id ORDER BY r.id LIMIT 1)"
           " FROM cdr c WHERE c.start_at >= ? AND c.start_at < ?")
    params: list[Any] = [start, end]
    if number:
        like = _like(number)
        # LOWER on both sides: SQLite's LIKE folds ASCII case, PostgreSQL's does not.
        sql += " AND (LOWER(c.caller) LIKE LOWER(?) ESCAPE '\\' OR LOWER(c.callee) LIKE LOWER(?) ESCAPE '\\')"
        params += [like, like]
    if disposition:
        sql += " AND c.disposition = ?"
        params.append(disposition)
    sql += " ORDER BY c.start_at DESC, c.id DESC LIMIT ?"
    params.append(int(limit))
    return [CallRow(*row) for row in store.query(sql, params)]


# The call search's sortable columns (web/reports.py's headers); cdr_start_at serves the default.
CALL_SORTS = Sorts({"start": "c.start_at", "caller": "c.caller", "callee": "c.callee", "direction": "c.direction",
                    "disposition": "c.disposition", "duration": "c.duration", "billsec": "c.billsec"},
                   default="start", default_descending=True, tiebreak="c.id")


def calls_page(store: Store, start: float, end: float, q: PageQuery, number: str = "",
               disposition: str = "") -> Page[CallRow]:
    """One page of the call records started in [start, end), sorted by `q` (CALL_SORTS), with the
    count of every match; `number` and `disposition` filter as in search_calls."""
    where = " FROM cdr c WHERE c.start_at >= ? AND c.start_at < ?"
    params: list[Any] = [start, end]
    if number:
        where += " AND (LOWER(c.caller) LIKE LOWER(?) ESCAPE '\\' OR LOWER(c.callee) LIKE LOWER(?) ESCAPE '\\')"
        params += [_like(number)] * 2
    if disposition:
        where += " AND c.disposition = ?"
        params.append(disposition)
    select = ("c.id, c.start_at, c.caller, c.caller_name, c.callee, c.direction, c.disposition,"
              " c.duration, c.billsec, c.trunk, c.call_id,"
              " (SELECT r.id FROM recordings r WHERE r.cdr_id = c.id OR r.call_id = c.call_id ORDER BY r.id LIMIT 1)")
    return fetch_page(store, select, where, params, CALL_SORTS, q, lambda r: CallRow(*r))


def volume_by_direction(store: Store, start: float, end: float) -> dict[str, int]:
    """How many calls started in [start, end), by direction (inbound, outbound, internal)."""
    return {str(d): int(n) for d, n in store.query(
        "SELECT direction, COUNT(*) FROM cdr WHERE start_at >= ? AND start_at < ? GROUP BY direction",
        (start, end))}
