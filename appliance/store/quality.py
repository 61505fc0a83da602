"""Quality scorecards (migration 7): a supervisor's scores of one recorded call, as typed rows.

web/quality.py owns the checklist's wording, the form and the weekly chart; this module is the
SQL of the `quality_scores` table. Module functions over a `Store`, like contacts.py; the SQL is
written for SQLite and PostgreSQL alike (the new id by RETURNING).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from appliance.store.db import Store
from appliance.store.paging import Page, PageQuery, Sorts, fetch_page

# The checklist's criteria, in order; each is scored 0..MAX_POINTS (the table's CHECK constraint).
CRITERIA = ("verification", "call_handling", "call_flow", "soft_skills", "resolution")
MAX_POINTS = 5
_COLUMNS = ("id", "recording_id", "call_id", "agent", "supervisor", *CRITERIA, "comment", "at")


@dataclass(frozen=True)
class ScoreRow:
    """One stored scorecard."""

    id: int
    recording_id: int | None
    call_id: str
    agent: str
    supervisor: str
    verification: int
    call_handling: int
    call_flow: int
    soft_skills: int
    resolution: int
    comment: str
    at: float

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name in CRITERIA)

    @property
    def percent(self) -> float:
        return 100.0 * self.total / (MAX_POINTS * len(CRITERIA))


def scores(store: Store, since: float, agent: str | None = None) -> list[ScoreRow]:
    """Scorecards since `since`, oldest first, optionally for one agent."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM quality_scores WHERE at >= ?"
    params: list[Any] = [since]
    if agent:
        sql += " AND agent = ?"
        params.append(agent)
    return [ScoreRow(*r) for r in store.query(sql + " ORDER BY at, id", params)]


SCORE_SORTS = Sorts({"at": "at", "agent": "agent", "supervisor": "supervisor",
                     "total": "(" + " + ".join(CRITERIA) + ")"}, default="at", default_descending=True, tiebreak="id")


def scores_page(store: Store, q: PageQuery, since: float, agent: str | None = None) -> Page[ScoreRow]:
    """One page of the scorecards since `since` sorted by `q` (SCORE_SORTS), optionally one agent's."""
    where = " FROM quality_scores WHERE at >= ?"
    params: list[Any] = [since]
    if agent:
        where += " AND agent = ?"
        params.append(agent)
    return fetch_page(store, ", ".join(_COLUMNS), where, params, SCORE_SORTS, q, lambda r: ScoreRow(*r))


def add_score(store: Store, values: Mapping[str, Any]) -> int:
    """Store a checked scorecard (every column but the id); returns its id."""
    columns = _COLUMNS[1:]
    with store.transaction():
        cur = store.execute(f"INSERT INTO quality_scores ({', '.join(columns)})"
                            f" VALUES ({', '.join('?' * len(columns))}) RETURNING id",
                            [values[c] for c in columns])
        row = cur.fetchone()
    return int(row[0]) if row else 0
