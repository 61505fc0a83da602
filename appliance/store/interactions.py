"""Interactions and post-call surveys: what happened on a customer contact, and how the caller rated it.

An *interaction* is one customer contact as an agent works it: opened when a queued call is
offered (linked to the caller's contact and to what the IVR learnt), given its agent on answer,
then a status, a disposition code and notes written during wrap-up. A later callback or an
outbound follow-up from the same caller finds it again (`latest_open_for_caller`) instead of
opening a new one. `call_id` is the SIP Call-ID, as the CDR and the queue log store it, so the
three join.

A *survey result* is one post-call survey: CSAT (1-5), NPS (0-10) and CES (1-7), each None when
the caller did not answer. KPIs are computed from the rows (`compute_survey_kpis`), never from
stored averages, like `queue_log.compute`.

Module functions over a `Store` (like queue_log.py and acd.py); every write is committed before
the function returns.
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.schema.errors import invalid
from appliance.store.db import Store
from appliance.store.errors import ConfigError, StoreError

# Pasted by the lead as the next entry of migrations.MIGRATIONS. Portable SQL as in migrations.py;
# AUTOINCREMENT (SQLite; PostgreSQL: GENERATED ALWAYS AS IDENTITY) so an id handed to the web app
# is never reused after rows are purged. A NULL answer passes its CHECK (SQL three-valued logic).
# The interactions and survey_results tables are migration 6 (appliance/store/migrations.py).


STATUSES = ("open", "resolved", "closed", "follow-up")
OPEN_STATUSES = ("open", "follow-up")  # still being worked: a callback joins it
DISPOSITION_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_NOTES = 4000
MAX_IVR_PATH = 16000  # JSON characters: what an IVR learns is a handful of short variables
CSAT_RANGE = (1, 5)
NPS_RANGE = (0, 10)
CES_RANGE = (1, 7)

_COLUMNS = ("id", "contact_id", "caller", "queue", "agent", "call_id", "status", "disposition", "notes",
            "ivr_path", "created_at", "updated_at")
_SURVEY_COLUMNS = ("id", "interaction_id", "call_id", "queue", "agent", "csat", "nps", "ces", "at")


@dataclass(frozen=True)
class Interaction:
    """One customer contact as stored; `ivr_path` is what the IVR learnt (variable -> value)."""

    id: int
    contact_id: int | None
    caller: str
    queue: str
    agent: str
    call_id: str
    status: str
    disposition: str
    notes: str
    ivr_path: dict[str, Any]
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class SurveyResult:
    """One post-call survey; an unanswered question is None."""

    id: int
    interaction_id: int | None
    call_id: str
    queue: str
    agent: str
    csat: int | None
    nps: int | None
    ces: int | None
    at: float


@dataclass(frozen=True)
class SurveyKpis:
    """Survey figures for one period (and one queue and/or agent, or all)."""

    surveys: int = 0  # rows, including callers who answered nothing
    responses: int = 0  # surveys with at least one answer
    csat_answers: int = 0
    nps_answers: int = 0
    ces_answers: int = 0
    csat_avg: float | None = None
    csat_pct: float | None = None  # % of CSAT answers that are 4 or 5 ("satisfied")
    nps: float | None = None  # % promoters (9-10) minus % detractors (0-6), -100..100
    ces_avg: float | None = None


# -- validation ------------------------------------------------------------------------------------
def _text(value: Any, field: str, max_len: int, where: str = "interaction") -> str:
    if not isinstance(value, str):
        raise invalid(f"expected text, got {type(value).__name__}", where, field)
    if len(value) > max_len:
        raise invalid(f"{len(value)} characters, at most {max_len}", where, field)
    if "\x00" in value:
        raise invalid("contains a NUL character", where, field)
    return value


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise invalid(f"{status!r} is not one of {', '.join(STATUSES)}", "interaction", "status")
    return status


def _check_disposition(disposition: str) -> str:
    if not isinstance(disposition, str) or not DISPOSITION_RE.fullmatch(disposition):
        raise invalid(f"{disposition!r} is not a code of 1-32 letters, digits, '_' or '-'", "interaction",
                      "disposition")
    return disposition


def _check_score(value: Any, field: str, bounds: tuple[int, int]) -> int | None:
    if value is None:
        return None
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"survey.{field}: expected an integer from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"survey.{field}: {value} is not from {low} to {high}")
    return value


def _ivr_json(ivr_path: Mapping[str, Any] | None) -> str:
    try:
        text = json.dumps(dict(ivr_path or {}), sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"interaction.ivr_path: not JSON-serialisable ({exc})") from None
    return _text(text, "ivr_path", MAX_IVR_PATH)


def _from_row(row: Any) -> Interaction:
    v = dict(zip(_COLUMNS, row, strict=True))
    try:
        path = json.loads(v["ivr_path"] or "{}")
    except ValueError:  # written by hand: show what is there rather than fail the screen pop
        path = {"raw": v["ivr_path"]}
    v["ivr_path"] = path if isinstance(path, dict) else {"raw": path}
    return Interaction(**v)


def _require(store: Store, interaction_id: int) -> None:
    """Raise StoreError (the API's 404) unless the interaction exists; call inside a transaction."""
    if store.execute("SELECT 1 FROM interactions WHERE id = ?", (interaction_id,)).fetchone() is None:
        raise StoreError(f"interaction {interaction_id} does not exist")


# -- interactions ----------------------------------------------------------------------------------
def open_interaction(store: Store, caller: str, queue: str, call_id: str, at: float,
                     contact_id: int | None = None, ivr_path: Mapping[str, Any] | None = None) -> int:
    """Open an interaction for a call entering `queue`; return its id.

    `contact_id` must name an existing contact (ConfigError otherwise); `ivr_path` is stored as JSON.
    """
    _text(caller, "caller", 128)
    _text(queue, "queue", 128)
    _text(call_id, "call_id", 256)
    path = _ivr_json(ivr_path)
    if contact_id is not None and (isinstance(contact_id, bool) or not isinstance(contact_id, int)):
        raise ConfigError(f"interaction.contact_id: expected an integer, got {contact_id!r}")
    if contact_id is not None and not store.query("SELECT 1 FROM contacts WHERE id = ?", (contact_id,)):
        raise ConfigError(f"interaction.contact_id: contact {contact_id} does not exist")
    # Kept in memory, with its id, while the database refuses writes (Store.insert_row): a call
    # entering a queue on a full disk must still be served.
    return store.insert_row(
        "interaction", "interactions",
        ("contact_id", "caller", "queue", "call_id", "status", "ivr_path", "created_at", "updated_at"),
        (contact_id, caller, queue, call_id, "open", path, at, at), durable=True)


def assign_agent(store: Store, interaction_id: int, agent: str, at: float) -> None:
    """Record the agent who took the call (a transfer assigns the next one)."""
    _text(agent, "agent", 64)
    if not agent:
        raise ConfigError("interaction.agent: must not be empty")
    def check(cursors: list[Any]) -> None:
        if not cursors[0].rowcount:
            _require(store, interaction_id)

    store.record_write("interaction", [("UPDATE interactions SET agent = ?, updated_at = ? WHERE id = ?",
                                        (agent, at, interaction_id))], durable=True, check=check, expect_row=True)


def update_interaction(store: Store, interaction_id: int, *, at: float, status: str | None = None,
                       disposition: str | None = None, notes: str | None = None) -> Interaction:
    """Set any of status, disposition and notes (the agent's wrap-up); return the updated row.

    ConfigError names the bad field; StoreError when the interaction does not exist.
    """
    changes: dict[str, Any] = {}
    if status is not None:
        changes["status"] = _check_status(status)
    if disposition is not None:
        changes["disposition"] = _check_disposition(disposition)
    if notes is not None:
        changes["notes"] = _text(notes, "notes", MAX_NOTES)
    with store.transaction():
        _require(store, interaction_id)
        sets = ", ".join(f"{name} = ?" for name in changes)
        store.execute(f"UPDATE interactions SET {sets + ', ' if sets else ''}updated_at = ? WHERE id = ?",
                    (*changes.values(), at, interaction_id))
        row = store.execute(f"SELECT {', '.join(_COLUMNS)} FROM interactions WHERE id = ?",
                          (interaction_id,)).fetchone()
    return _from_row(row)


def get_interaction(store: Store, interaction_id: int) -> Interaction | None:
    """One interaction, or None."""
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM interactions WHERE id = ?", (interaction_id,))
    return _from_row(rows[0]) if rows else None


def interactions_for_contact(store: Store, contact_id: int, limit: int = 20) -> list[Interaction]:
    """A contact's interactions, newest first (the agent's history panel)."""
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM interactions WHERE contact_id = ?"
                        " ORDER BY created_at DESC, id DESC LIMIT ?", (contact_id, int(limit)))
    return [_from_row(r) for r in rows]


def interaction_for_call(store: Store, call_id: str) -> Interaction | None:
    """The interaction opened for a SIP Call-ID (the newest if a call entered several queues)."""
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM interactions WHERE call_id = ?"
                        " ORDER BY id DESC LIMIT 1", (call_id,))
    return _from_row(rows[0]) if rows else None


def latest_open_for_caller(store: Store, caller: str, within_s: float,
                           now: float | None = None) -> Interaction | None:
    """The caller's newest interaction still open or awaiting follow-up, touched in the last `within_s`.

    A callback or an outbound follow-up to the same number links to it instead of opening another.
    """
    since = (time.time() if now is None else now) - within_s
    rows = store.query(
        f"SELECT {', '.join(_COLUMNS)} FROM interactions WHERE caller = ? AND status IN (?, ?)"
        " AND updated_at >= ? ORDER BY updated_at DESC, id DESC LIMIT 1",
        (caller, *OPEN_STATUSES, since))
    return _from_row(rows[0]) if rows else None


# -- surveys ---------------------------------------------------------------------------------------
def record_survey(store: Store, call_id: str, queue: str, agent: str, csat: int | None, nps: int | None,
                  ces: int | None, at: float, interaction_id: int | None = None) -> int:
    """Store one survey (None = not answered); ConfigError names an out-of-range field."""
    scores = (_check_score(csat, "csat", CSAT_RANGE), _check_score(nps, "nps", NPS_RANGE),
              _check_score(ces, "ces", CES_RANGE))
    _text(call_id, "call_id", 256, "survey")
    _text(queue, "queue", 128, "survey")
    _text(agent, "agent", 64, "survey")
    with store.transaction():
        if interaction_id is not None:
            _require(store, interaction_id)
        cur = store.execute(
            "INSERT INTO survey_results (interaction_id, call_id, queue, agent, csat, nps, ces, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", (interaction_id, call_id, queue, agent, *scores, at))
        row = cur.fetchone()
        row_id = row[0] if row else None
    if row_id is None:
        raise StoreError("survey insert returned no id")
    return int(row_id)


def survey_results(store: Store, start: float, end: float, queue: str | None = None,
                   agent: str | None = None) -> list[SurveyResult]:
    """Surveys taken in [start, end), oldest first, optionally for one queue and/or agent."""
    sql = f"SELECT {', '.join(_SURVEY_COLUMNS)} FROM survey_results WHERE at >= ? AND at < ?"
    params: list[Any] = [start, end]
    if queue is not None:
        sql += " AND queue = ?"
        params.append(queue)
    if agent is not None:
        sql += " AND agent = ?"
        params.append(agent)
    return [SurveyResult(*r) for r in store.query(sql + " ORDER BY at, id", params)]


def _mean(values: list[int]) -> float | None:
    return sum(values) / len(values) if values else None


def compute_survey_kpis(rows: Iterable[SurveyResult]) -> SurveyKpis:
    """Survey KPIs from results: each average or percentage is over the answers to its question.

    NPS as Reichheld defines it: promoters answer 9-10, detractors 0-6, passives 7-8 count in the
    total only; the score is the difference of the two percentages, so it lies in [-100, 100].
    """
    surveys = responses = 0
    csat: list[int] = []
    nps: list[int] = []
    ces: list[int] = []
    for r in rows:
        surveys += 1
        if r.csat is None and r.nps is None and r.ces is None:
            continue
        responses += 1
        if r.csat is not None:
            csat.append(r.csat)
        if r.nps is not None:
            nps.append(r.nps)
        if r.ces is not None:
            ces.append(r.ces)
    nps_score = None
    if nps:
        promoters = sum(1 for v in nps if v >= 9)
        detractors = sum(1 for v in nps if v <= 6)
        nps_score = 100.0 * (promoters - detractors) / len(nps)
    return SurveyKpis(
        surveys=surveys, responses=responses,
        csat_answers=len(csat), nps_answers=len(nps), ces_answers=len(ces),
        csat_avg=_mean(csat),
        csat_pct=100.0 * sum(1 for v in csat if v >= 4) / len(csat) if csat else None,
        nps=nps_score, ces_avg=_mean(ces),
    )


def survey_kpis(store: Store, start: float, end: float, queue: str | None = None,
                agent: str | None = None) -> SurveyKpis:
    """Survey KPIs of [start, end) read from the store."""
    return compute_survey_kpis(survey_results(store, start, end, queue, agent))
