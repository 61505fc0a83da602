"""Report figures read from the interval roll-ups: KPIs, per-queue and per-agent figures, series.

Every query aggregates in SQL (GROUP BY over `rollup_queue`, `rollup_agent`, `rollup_pause`,
appliance/store/rollups.py) and never loads the queue log's events, so a year costs what a week
does. Two figures read the log itself, through indexes, because no bucket can hold them:
first-contact resolution (a caller's call back within 72 h of their last answered call of the
period: CONNECT rows of the period by `queue_log_event_at`, the call back by
`queue_log_caller_at`), and the login session that runs past the period's end (one per agent,
`queue_log_agent_at`).

Edges: a period reads the whole buckets that BEGIN inside it. `start` and `end` are first moved
up to the next 15-minute boundary (a no-op for any period of whole days, hours or quarters), so
a partial bucket at the start is left out and one at the end is counted whole. A counter sits in
the bucket of its own event (a call answered in one interval and completed in the next counts
its talk in the second), exactly as `queue_log.compute` counts the events of a period.

What the agent view (`agent=`) counts: the agent's answered calls are also its offered calls
(counted when answered), its ring-no-answers, its completed calls' talk and wrap, its logins;
FCR looks for the caller's call back in any queue (or the chosen one).
"""
from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.store import rollups
from appliance.store.db import Store
from appliance.store.queue_log import FCR_WINDOW_S, Kpis
from appliance.store.rollups import BUCKET_S, DEFAULT_SL_SECONDS

_SUMS = ("SUM(offered), SUM(answered), SUM(wait_sum), SUM(within_sl), SUM(abandoned), SUM(overflowed),"
         " SUM(ring_no_answer), SUM(completed), SUM(talk_sum), SUM(wrap_sum)")
_SESSION_EVENTS = "('AGENT_LOGIN', 'AGENT_LOGOUT')"


@dataclass(frozen=True)
class Counts:
    """Summed counters of some buckets (one queue, one agent, one interval...)."""

    offered: int = 0
    answered: int = 0
    wait_sum: float = 0.0
    within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0
    ring_no_answer: int = 0
    completed: int = 0
    talk_sum: float = 0.0
    wrap_sum: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(_fields(self), _fields(other), strict=True)))

    @property
    def service_level(self) -> float | None:
        return _pct(self.within_sl, self.offered)

    @property
    def asa_s(self) -> float | None:
        return self.wait_sum / self.answered if self.answered else None

    @property
    def att_s(self) -> float | None:
        return self.talk_sum / self.completed if self.completed else None

    @property
    def aht_s(self) -> float | None:
        return (self.talk_sum + self.wrap_sum) / self.completed if self.completed else None


def _fields(c: Counts) -> tuple[Any, ...]:
    return (c.offered, c.answered, c.wait_sum, c.within_sl, c.abandoned, c.overflowed, c.ring_no_answer,
            c.completed, c.talk_sum, c.wrap_sum)


def _counts(row: Any, as_agent: bool = False) -> Counts:
    vals = [v or 0 for v in row]
    c = Counts(int(vals[0]), int(vals[1]), float(vals[2]), int(vals[3]), int(vals[4]), int(vals[5]),
               int(vals[6]), int(vals[7]), float(vals[8]), float(vals[9]))
    # An agent's offered calls are the calls it answered (counted when answered).
    return Counts(c.answered, *_fields(c)[1:]) if as_agent else c


def _pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def bounds(start: float, end: float) -> tuple[int, int]:
    """The buckets a period reads: [start, end) moved up to 15-minute boundaries."""
    return -(-int(start) // BUCKET_S) * BUCKET_S if start % BUCKET_S else int(start), \
        -(-int(end) // BUCKET_S) * BUCKET_S if end % BUCKET_S else int(end)


@dataclass(frozen=True)
class Scope:
    """What a report is narrowed to: one queue, one agent (both optional)."""

    queue: str | None = None
    agent: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        sql, params = "", []
        if self.queue is not None:
            sql += " AND queue = ?"
            params.append(self.queue)
        if self.agent is not None:
            sql += " AND agent = ?"
            params.append(self.agent)
        return sql, params

    @property
    def table(self) -> str:
        return "rollup_agent" if self.agent is not None else "rollup_queue"


def refresh_thresholds(store: Store, start: float, end: float, limits: Mapping[str, int]) -> None:
    """Recount the buckets of [start, end) whose within-SL count used another threshold than the
    queue's current one (`limits`), so SL is the same as if computed from the log today."""
    lo, hi = bounds(start, end)
    for queue, low, high in store.query(
            "SELECT queue, MIN(sl_used), MAX(sl_used) FROM rollup_queue"
            " WHERE bucket >= ? AND bucket < ? AND sl_used IS NOT NULL GROUP BY queue", (lo, hi)):
        want = limits.get(queue, DEFAULT_SL_SECONDS)
        if low != want or high != want:
            rollups.apply_threshold(store, queue, want)


def per_queue(store: Store, start: float, end: float, scope: Scope = Scope()) -> dict[str, Counts]:
    """Counters per queue over the period (queue '' holds only agent rows and is left out)."""
    lo, hi = bounds(start, end)
    where, params = scope.where()
    rows = store.query(f"SELECT queue, {_SUMS} FROM {scope.table} WHERE bucket >= ? AND bucket < ?{where}"
                       " AND queue <> '' GROUP BY queue ORDER BY queue", [lo, hi, *params])
    return {str(r[0]): _counts(r[1:], scope.agent is not None) for r in rows}


@dataclass(frozen=True)
class BucketRow:
    """One queue's counters in one 15-minute bucket."""

    bucket: int
    queue: str
    counts: Counts


def buckets(store: Store, start: float, end: float, scope: Scope = Scope()) -> list[BucketRow]:
    """Counters per bucket and queue, oldest first (for series: per hour, per day, intervals)."""
    lo, hi = bounds(start, end)
    where, params = scope.where()
    rows = store.query(f"SELECT bucket, queue, {_SUMS} FROM {scope.table} WHERE bucket >= ? AND bucket < ?{where}"
                       " AND queue <> '' GROUP BY bucket, queue ORDER BY bucket, queue", [lo, hi, *params])
    return [BucketRow(int(r[0]), str(r[1]), _counts(r[2:], scope.agent is not None)) for r in rows]


def fcr(store: Store, start: float, end: float, scope: Scope = Scope(), by_queue: bool = False
        ) -> dict[str, float | None]:
    """First-contact resolution in %: of the callers answered in the period (their last answer),
    those who did not ENTER again within 72 h. Keyed by queue with `by_queue`, else by ''.

    From `rollup_answer` (one row per answer: the caller's next answer, and whether they came
    back, site-wide and in the same queue), by its covering indexes; an agent's figure reads the
    log's CONNECT rows of the period instead (`queue_log_event_at`, `queue_log_caller_event_at`)."""
    lo, hi = bounds(start, end)
    if scope.agent is not None:
        return _fcr_from_log(store, lo, hi, scope, by_queue)
    if by_queue or scope.queue is not None:
        only, params = ("", []) if scope.queue is None else (" AND queue = ?", [scope.queue])
        rows = store.query(
            "SELECT queue, COUNT(*), SUM(back_queue) FROM rollup_answer WHERE call_at >= ? AND call_at < ?"
            f" AND (next_queue IS NULL OR next_queue >= ?){only} GROUP BY queue", [lo, hi, hi, *params])
        if not by_queue:
            rows = [("", *r[1:]) for r in rows]
    else:
        rows = store.query(
            "SELECT '', COUNT(*), SUM(back_all) FROM rollup_answer WHERE call_at >= ? AND call_at < ?"
            " AND (next_all IS NULL OR next_all >= ?)", (lo, hi, hi))
    return {str(r[0]): _pct(int(r[1]) - int(r[2] or 0), int(r[1])) for r in rows if r[1]}


def _fcr_from_log(store: Store, lo: int, hi: int, scope: Scope, by_queue: bool) -> dict[str, float | None]:
    where, params = scope.where()
    group = "queue, " if by_queue else ""
    same_queue = " AND e.queue = a.queue" if by_queue else (" AND e.queue = ?" if scope.queue is not None else "")
    probe = [FCR_WINDOW_S] + ([scope.queue] if same_queue == " AND e.queue = ?" else [])
    rows = store.query(
        f"SELECT {'a.queue' if by_queue else chr(39) * 2}, COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM queue_log e"
        " WHERE e.caller = a.caller AND e.event = 'ENTER' AND e.at > a.last AND e.at <= a.last + ?"
        f"{same_queue}) THEN 1 ELSE 0 END) FROM (SELECT {group}caller, MAX(at) AS last FROM queue_log"
        f" WHERE event = 'CONNECT' AND at >= ? AND at < ? AND caller <> ''{where} GROUP BY {group}caller) a"
        f"{' GROUP BY a.queue' if by_queue else ''}", [*probe, lo, hi, *params])
    return {str(r[0]): _pct(int(r[1]) - int(r[2] or 0), int(r[1])) for r in rows if r[1]}


def logged_in(store: Store, start: float, end: float, agent: str | None = None) -> dict[str, float]:
    """Logged-in seconds per agent of the sessions begun in the period, cut at its end (as
    `queue_log.compute`). A session is credited whole to its login's bucket when it ends: the one
    still open at the end, or closed after it, is corrected here from the log."""
    lo, hi = bounds(start, end)
    only, params = ("", []) if agent is None else (" AND agent = ?", [agent])
    totals: dict[str, float] = {
        str(a): float(s or 0) for a, s in store.query(
            "SELECT agent, SUM(logged_in_s) FROM rollup_agent WHERE bucket >= ? AND bucket < ? AND queue = ''"
            f"{only} AND (logins > 0 OR logged_in_s > 0) GROUP BY agent", [lo, hi, *params])}
    for name in list(totals):
        last = store.query(
            f"SELECT event, at, id FROM queue_log WHERE agent = ? AND at >= ? AND at < ? AND event IN {_SESSION_EVENTS}"
            " ORDER BY at DESC, id DESC LIMIT 1", (name, lo, hi))
        if not last or last[0][0] != "AGENT_LOGIN":
            continue
        _ev, login, login_id = last[0]
        after = store.query(
            f"SELECT event, at FROM queue_log WHERE agent = ? AND event IN {_SESSION_EVENTS}"
            " AND (at > ? OR (at = ? AND id > ?)) ORDER BY at, id LIMIT 1", (name, login, login, login_id))
        credited = float(after[0][1]) - login if after and after[0][0] == "AGENT_LOGOUT" else 0.0
        totals[name] += max(0.0, hi - login) - credited
    return totals


def kpis(store: Store, start: float, end: float, scope: Scope = Scope(),
         limits: Mapping[str, int] | None = None) -> tuple[Kpis, dict[str, Kpis]]:
    """The KPIs of the period for the scope, and per queue: the report page's table.

    The total's SL adds each queue's answered-within-its-own-threshold (`limits`, the queues'
    `service_level_seconds`); occupancy needs logins, which belong to no queue, so a queue's
    figures (and a report narrowed to one queue) have none, as compute() on those events."""
    refresh_thresholds(store, start, end, limits or {})
    lo, hi = bounds(start, end)
    where, params = scope.where()
    groups = per_queue(store, start, end, scope)
    total_row = store.query(f"SELECT {_SUMS} FROM {scope.table} WHERE bucket >= ? AND bucket < ?{where}",
                            [lo, hi, *params])[0]
    total = _counts(total_row, scope.agent is not None)
    agent_where = scope.where()[0]
    calls = {str(a): int(n) for a, n in store.query(
        f"SELECT agent, SUM(answered) FROM rollup_agent WHERE bucket >= ? AND bucket < ?{agent_where}"
        " GROUP BY agent HAVING SUM(answered) > 0", [lo, hi, *params])}
    per_q_calls: dict[str, dict[str, int]] = defaultdict(dict)
    for q, a, n in store.query(
            f"SELECT queue, agent, SUM(answered) FROM rollup_agent WHERE bucket >= ? AND bucket < ?{agent_where}"
            " GROUP BY queue, agent HAVING SUM(answered) > 0", [lo, hi, *params]):
        per_q_calls[str(q)][str(a)] = int(n)
    fcr_total = fcr(store, start, end, scope).get("")
    fcr_queues = fcr(store, start, end, scope, by_queue=True)
    out = _kpis(total, calls, fcr_total)
    within = sum(c.within_sl for c in groups.values())
    offered = sum(c.offered for c in groups.values())
    out.answered_within_sl, out.service_level = within, _pct(within, offered)
    if scope.queue is None:
        busy = {str(a): float(s or 0) for a, s in store.query(
            f"SELECT agent, SUM(talk_sum + wrap_sum) FROM rollup_agent WHERE bucket >= ? AND bucket < ?{agent_where}"
            " GROUP BY agent", [lo, hi, *params])}
        out.occupancy = {a: min(100.0, 100.0 * busy.get(a, 0.0) / t)
                         for a, t in logged_in(store, start, end, scope.agent).items() if t > 0}
    return out, {q: _kpis(c, per_q_calls.get(q, {}), fcr_queues.get(q)) for q, c in groups.items()}


def _kpis(c: Counts, calls: dict[str, int], fcr_pct: float | None) -> Kpis:
    return Kpis(offered=c.offered, answered=c.answered, abandoned=c.abandoned, overflowed=c.overflowed,
                answered_within_sl=c.within_sl, service_level=c.service_level, asa_s=c.asa_s, att_s=c.att_s,
                aht_s=c.aht_s, abandon_rate=_pct(c.abandoned, c.offered), missed=max(0, c.offered - c.answered),
                ring_no_answer=c.ring_no_answer, fcr=fcr_pct, calls_per_agent=calls)


# -- interval reports (Asternic's and QueueMetrics' "per 15/30/60 minutes, per day") -------------
INTERVALS = {"15m": 15, "30m": 30, "1h": 60, "1d": 1440}


@dataclass(frozen=True)
class IntervalRow:
    """One interval of a queue (or all queues): its start (epoch seconds) and its figures."""

    start: float
    counts: Counts = field(default_factory=Counts)


def _offset_segments(lo: int, hi: int) -> list[tuple[int, int, int]]:
    """[lo, hi) cut where the local UTC offset changes (DST): (start, end, offset seconds)."""
    segments: list[tuple[int, int, int]] = []
    at, off = lo, time.localtime(lo).tm_gmtoff
    seg_start = lo
    while at < hi:
        step = min(hi, at + 86400)
        if time.localtime(step - 1).tm_gmtoff != off:  # a change this day: find its bucket
            while at < step and time.localtime(at).tm_gmtoff == off:
                at += BUCKET_S
            segments.append((seg_start, at, off))
            seg_start, off = at, time.localtime(at).tm_gmtoff
            continue
        at = step
    segments.append((seg_start, hi, off))
    return [seg for seg in segments if seg[0] < seg[1]]


def series(store: Store, start: float, end: float, minutes: int, scope: Scope = Scope()) -> dict[dt.datetime, Counts]:
    """Counters per local interval of `minutes` (15, 30, 60 or 1440), keyed by the interval's
    local wall-clock start, summed in SQL: one GROUP BY per stretch of constant UTC offset (two
    or three a year), so a year of quarters is grouped by the database, not in Python. The hour
    repeated when clocks go back is one interval, as the wall clock shows it."""
    if minutes not in INTERVALS.values():
        raise ValueError(f"an interval of 15, 30, 60 or 1440 minutes, not {minutes}")
    lo, hi = bounds(start, end)
    size = minutes * 60
    where, params = scope.where()
    out: dict[dt.datetime, Counts] = {}
    epoch = dt.datetime(1970, 1, 1)
    for seg_lo, seg_hi, off in _offset_segments(lo, hi):
        for row in store.query(
                f"SELECT FLOOR((bucket + ?) / ?), {_SUMS} FROM {scope.table} WHERE bucket >= ? AND bucket < ?{where}"
                " AND queue <> '' GROUP BY 1", [off, size, seg_lo, seg_hi, *params]):
            key = epoch + dt.timedelta(seconds=int(row[0]) * size)
            c = _counts(row[1:], scope.agent is not None)
            out[key] = out[key] + c if key in out else c
    return out


def intervals(store: Store, start: float, end: float, minutes: int, scope: Scope = Scope()) -> list[IntervalRow]:
    """Every interval of `minutes` (15, 30, 60 or 1440: a local day) of [start, end), empty ones
    included, with offered, answered, abandoned, SL (each queue's own threshold), ASA and AHT."""
    sums = series(store, start, end, minutes, scope)
    lo, hi = bounds(start, end)
    first = dt.datetime.fromtimestamp(lo)
    at = first.replace(minute=first.minute - first.minute % minutes, second=0, microsecond=0)
    if minutes >= 1440:
        at = at.replace(hour=0, minute=0)
    out = []
    while at.timestamp() < hi:
        if dt.datetime.fromtimestamp(at.timestamp()) == at:  # not the hour skipped when clocks go forward
            out.append(IntervalRow(at.timestamp(), sums.get(at, Counts())))
        at += dt.timedelta(minutes=minutes)  # wall-clock steps: a local day is a day
    return out


# -- per-agent figures and time sheets ------------------------------------------------------------
@dataclass(frozen=True)
class AgentFigures:
    """One agent's figures over a period (seconds are totals; averages per completed call).

    `hold_s` is None: no event records a call put on hold yet (the queue log has no HOLD row)."""

    agent: str
    calls: int  # answered (CONNECT)
    completed: int
    ring_no_answer: int
    talk_s: float
    wrap_s: float
    att_s: float | None
    aht_s: float | None
    pause_s: dict[str, float]  # reason ('' when none given) -> seconds, credited to the pause's start
    pauses: int
    logged_in_s: float  # sessions begun in the period, cut at its end
    occupancy: float | None  # % of logged-in time in talk and wrap
    hold_s: float | None = None


def agent_figures(store: Store, start: float, end: float, scope: Scope = Scope()) -> list[AgentFigures]:
    """Every agent with activity in the period (or `scope.agent`), by agent id; `scope.queue`
    narrows the call figures to one queue (login and pause time belong to no queue)."""
    lo, hi = bounds(start, end)
    where, params = scope.where()
    calls = {str(r[0]): r[1:] for r in store.query(
        "SELECT agent, SUM(answered), SUM(completed), SUM(ring_no_answer), SUM(talk_sum), SUM(wrap_sum)"
        f" FROM rollup_agent WHERE bucket >= ? AND bucket < ?{where} GROUP BY agent", [lo, hi, *params])}
    only, aparams = ("", []) if scope.agent is None else (" AND agent = ?", [scope.agent])
    pauses: dict[str, dict[str, float]] = defaultdict(dict)
    pause_n: dict[str, int] = defaultdict(int)
    for a, reason, n, secs in store.query(
            "SELECT agent, reason, SUM(pauses), SUM(pause_s) FROM rollup_pause WHERE bucket >= ? AND bucket < ?"
            f"{only} GROUP BY agent, reason", [lo, hi, *aparams]):
        pauses[str(a)][str(reason)] = float(secs or 0)
        pause_n[str(a)] += int(n or 0)
    sessions = logged_in(store, start, end, scope.agent)
    out = []
    for a in sorted(set(calls) | set(pauses) | set(sessions)):
        answered, completed, rna, talk, wrap = (calls.get(a) or (0, 0, 0, 0.0, 0.0))
        completed, talk, wrap = int(completed or 0), float(talk or 0), float(wrap or 0)
        t = sessions.get(a, 0.0)
        out.append(AgentFigures(
            agent=a, calls=int(answered or 0), completed=completed, ring_no_answer=int(rna or 0), talk_s=talk,
            wrap_s=wrap, att_s=talk / completed if completed else None,
            aht_s=(talk + wrap) / completed if completed else None, pause_s=pauses.get(a, {}),
            pauses=pause_n.get(a, 0), logged_in_s=t,
            occupancy=min(100.0, 100.0 * (talk + wrap) / t) if t > 0 else None))
    return out


@dataclass(frozen=True)
class TimeSheetEntry:
    """A stretch of an agent's day: logged in, or a pause (with its reason); end None: still open."""

    kind: str  # "login" or "pause"
    start: float
    end: float | None
    reason: str = ""


def time_sheet(store: Store, agent: str, start: float, end: float) -> list[TimeSheetEntry]:
    """The agent's logins and pauses begun in [start, end), in order (a day: a few rows of the log,
    read by `queue_log_agent_at`). A pause ends at UNPAUSE, a new PAUSE or LOGOUT, as roll-ups count."""
    rows = store.query(
        "SELECT at, event, data FROM queue_log WHERE agent = ? AND at >= ? AND at < ?"
        " AND event IN ('AGENT_LOGIN', 'AGENT_LOGOUT', 'AGENT_PAUSE', 'AGENT_UNPAUSE') ORDER BY at, id",
        (agent, start, end + 7 * 86400))  # a session begun in the period may end days later
    out: list[TimeSheetEntry] = []
    login: tuple[float, int] | None = None  # start, index in out
    pause: tuple[float, int, str] | None = None
    for at, event, data in rows:
        if pause is not None and event in ("AGENT_PAUSE", "AGENT_UNPAUSE", "AGENT_LOGOUT"):
            out[pause[1]] = TimeSheetEntry("pause", pause[0], at, pause[2])
            pause = None
        if event == "AGENT_LOGOUT" and login is not None:
            out[login[1]] = TimeSheetEntry("login", login[0], at)
            login = None
        if at >= end:
            if login is None and pause is None:
                break
            continue
        if event == "AGENT_LOGIN":
            login = (at, len(out))
            out.append(TimeSheetEntry("login", at, None))
        elif event == "AGENT_PAUSE":
            pause = (at, len(out), str(data or ""))
            out.append(TimeSheetEntry("pause", at, None, str(data or "")))
    return out
