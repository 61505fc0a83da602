"""The queue log: every ACD event as one row, and the contact-centre KPIs computed from it.

Modelled on Asterisk's queue_log (ENTERQUEUE, CONNECT, ABANDON, COMPLETE...) because that is
what call-centre reporting tools and the people who run them already understand. KPIs are
computed from the log alone, never from stored averages, so a report for any period is exact.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Iterable, Sequence
from typing import Any

from appliance.store import rollups
from appliance.store.db import Store
from appliance.store.errors import StoreError

EVENTS = frozenset({
    "ENTER", "OFFER", "RINGNOANSWER", "CONNECT", "ABANDON", "TRANSFER", "COMPLETE",
    "EXITWITHTIMEOUT", "EXITFULL", "EXITEMPTY", "CALLBACK_REQUESTED", "CALLBACK_PLACED",
    "AGENT_LOGIN", "AGENT_LOGOUT", "AGENT_PAUSE", "AGENT_UNPAUSE",
})
FCR_WINDOW_S = rollups.FCR_WINDOW_S  # first-contact resolution: no call back from the same caller in 72 h
_COLUMNS = ("at", "call_id", "queue", "agent", "event", "caller", "position", "wait_s", "talk_s", "wrap_s", "data")


@dataclass(frozen=True)
class QueueEvent:
    at: float
    event: str
    call_id: str = ""
    queue: str = ""
    agent: str = ""
    caller: str = ""
    position: int | None = None
    wait_s: float | None = None
    talk_s: float | None = None
    wrap_s: float | None = None
    data: str = ""


_INSERT = f"INSERT INTO queue_log ({', '.join(_COLUMNS)}, node) VALUES ({', '.join('?' * len(_COLUMNS))}, ?)"


def _writes(ev: QueueEvent, node: str) -> list[rollups.Pair]:
    """The event's row and its roll-up upserts (appliance/store/rollups.py): one transaction."""
    return [(_INSERT, (*(getattr(ev, c) for c in _COLUMNS), node)),
            *rollups.write_sql(ev.at, ev.event, ev.queue, ev.agent, ev.wait_s, ev.talk_s, ev.wrap_s, ev.data,
                               ev.caller)]


def record(store: Store, ev: QueueEvent) -> None:
    """Append one event with its roll-ups; committed before returning (the log is what reports
    are built on), or kept in order in memory while the database refuses writes
    (Store.record_write: a replay runs the same statements, so the roll-ups stay the log's)."""
    if ev.event not in EVENTS:
        raise StoreError(f"queue log event {ev.event!r} is not one of {', '.join(sorted(EVENTS))}")
    store.record_write("queue_log", _writes(ev, store.node))


def bulk_load(store: Store, rows: Iterable[Sequence[Any]]) -> None:
    """Append many events at once, in one transaction, WITHOUT their roll-ups: an import or a
    benchmark's year; `rollups.rebuild` (`plateau report --rebuild`) brings them in line after.
    Each row is (at, call_id, queue, agent, event, caller, position, wait_s, talk_s, wrap_s, data)."""
    with store.transaction(durable=False):
        store.execute_many(_INSERT, ((*row, store.node) for row in rows))


def events(store: Store, start: float, end: float, queue: str | None = None) -> list[QueueEvent]:
    """Events in [start, end), oldest first, optionally for one queue."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM queue_log WHERE at >= ? AND at < ?"
    params: list[Any] = [start, end]
    if queue is not None:
        sql += " AND queue = ?"
        params.append(queue)
    rows = store.query(sql + " ORDER BY at, id", params)
    return [QueueEvent(at=r[0], call_id=r[1], queue=r[2], agent=r[3], event=r[4], caller=r[5],
                       position=r[6], wait_s=r[7], talk_s=r[8], wrap_s=r[9], data=r[10]) for r in rows]


@dataclass
class Kpis:
    """Contact-centre figures for one period (and one queue, or all)."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0  # sent elsewhere: maximum wait or length, or nobody logged in (EXIT*)
    answered_within_sl: int = 0
    service_level: float | None = None  # % of offered calls answered within the threshold
    asa_s: float | None = None  # average speed of answer: mean queue wait of answered calls
    att_s: float | None = None  # average talk time
    aht_s: float | None = None  # average handle time: talk + wrap-up
    abandon_rate: float | None = None  # % of offered calls abandoned
    missed: int = 0  # offered calls never answered (abandoned + overflowed + still unknown)
    ring_no_answer: int = 0  # offers an agent let ring out
    fcr: float | None = None  # % of answered callers who did not call back within 72 h
    calls_per_agent: dict[str, int] = field(default_factory=dict)
    occupancy: dict[str, float] = field(default_factory=dict)  # % of logged-in time handling calls


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _pct(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def compute(evs: list[QueueEvent], sl_seconds: float, end: float,
            later: list[QueueEvent] | None = None) -> Kpis:
    """KPIs from the events of a period.

    Service level counts answered-within-threshold over *all* offered calls (abandons count
    against it, the stricter of the usual definitions). `later` holds the events of the
    72 h after the period, for first-contact resolution.
    """
    k = Kpis()
    waits: list[float] = []
    talks: list[float] = []
    handles: list[float] = []
    answered_callers: dict[str, float] = {}  # caller -> time of their last answered call
    busy: dict[str, float] = defaultdict(float)
    logged_in: dict[str, float] = defaultdict(float)
    login_at: dict[str, float] = {}
    for ev in evs:
        if ev.event == "ENTER":
            k.offered += 1
        elif ev.event == "CONNECT":
            k.answered += 1
            waits.append(ev.wait_s or 0.0)
            if (ev.wait_s or 0.0) <= sl_seconds:
                k.answered_within_sl += 1
            if ev.agent:
                k.calls_per_agent[ev.agent] = k.calls_per_agent.get(ev.agent, 0) + 1
            if ev.caller:
                answered_callers[ev.caller] = ev.at
        elif ev.event == "ABANDON":
            k.abandoned += 1
        elif ev.event in ("EXITWITHTIMEOUT", "EXITFULL", "EXITEMPTY"):
            k.overflowed += 1
        elif ev.event == "RINGNOANSWER":
            k.ring_no_answer += 1
        elif ev.event == "COMPLETE":
            talk, wrap = ev.talk_s or 0.0, ev.wrap_s or 0.0
            talks.append(talk)
            handles.append(talk + wrap)
            if ev.agent:
                busy[ev.agent] += talk + wrap
        elif ev.event == "AGENT_LOGIN":
            login_at[ev.agent] = ev.at
        elif ev.event == "AGENT_LOGOUT" and ev.agent in login_at:
            logged_in[ev.agent] += ev.at - login_at.pop(ev.agent)
    for agent, since in login_at.items():  # still logged in at the end of the period
        logged_in[agent] += max(0.0, end - since)
    k.service_level = _pct(k.answered_within_sl, k.offered)
    k.asa_s, k.att_s, k.aht_s = _mean(waits), _mean(talks), _mean(handles)
    k.abandon_rate = _pct(k.abandoned, k.offered)
    k.missed = max(0, k.offered - k.answered)
    k.occupancy = {a: min(100.0, 100.0 * busy[a] / t) for a, t in logged_in.items() if t > 0}
    if answered_callers:
        came_back = set()
        for ev in [*evs, *(later or [])]:
            last = answered_callers.get(ev.caller)
            if ev.event == "ENTER" and last is not None and last < ev.at <= last + FCR_WINDOW_S:
                came_back.add(ev.caller)
        k.fcr = _pct(len(answered_callers) - len(came_back), len(answered_callers))
    return k


def kpis(store: Store, start: float, end: float, queue: str | None = None, sl_seconds: float = 20.0) -> Kpis:
    """KPIs of [start, end) read from the store (FCR looks 72 h past the end)."""
    return compute(events(store, start, end, queue), sl_seconds, end,
                   later=events(store, end, end + FCR_WINDOW_S, queue))


# The events after which a caller is no longer in the queue: the queue log's call in progress is an
# ENTER (then OFFER, RINGNOANSWER, CONNECT) with none of these after it, for that call and queue.
ENDING = frozenset({"ABANDON", "COMPLETE", "TRANSFER", "EXITWITHTIMEOUT", "EXITFULL", "EXITEMPTY",
                    "CALLBACK_REQUESTED"})


def open_entries(store: Store, node: str | None, since: float) -> list[QueueEvent]:
    """The last event of each call still in a queue (waiting, or CONNECTed to an agent) since
    ``since``: ``node``'s calls only, or every node's (None: one box)."""
    sql = f"SELECT {', '.join(_COLUMNS)} FROM queue_log WHERE at >= ? AND call_id <> ''"
    params: list[Any] = [since]
    if node is not None:
        sql += " AND node = ?"
        params.append(node)
    last: dict[tuple[str, str], QueueEvent] = {}
    for r in store.query(sql + " ORDER BY at, id", params):
        ev = QueueEvent(at=r[0], call_id=r[1], queue=r[2], agent=r[3], event=r[4], caller=r[5],
                        position=r[6], wait_s=r[7], talk_s=r[8], wrap_s=r[9], data=r[10])
        key = (ev.call_id, ev.queue)
        if ev.event == "ENTER":
            last[key] = ev
        elif key in last and ev.event in ENDING:
            del last[key]
        elif key in last and ev.event == "CONNECT":
            last[key] = ev
    return list(last.values())


def close_open(store: Store, node: str | None, since: float, now: float, note: str) -> int:
    """End the calls ``open_entries`` finds, at ``now``, as their engine would have: a waiting
    caller ABANDONs (wait_s up to now), a connected one COMPLETEs (talk_s up to now); ``note`` in
    ``data`` says why. Run in the caller's transaction, not deferred (a takeover retries as a
    whole: appliance/cluster/nodes.py). The rows keep the dead call's node. The count ended."""
    ended = open_entries(store, node, since)
    for ev in ended:
        connected = ev.event == "CONNECT"
        row = QueueEvent(at=now, event="COMPLETE" if connected else "ABANDON", call_id=ev.call_id,
                         queue=ev.queue, agent=ev.agent if connected else "", caller=ev.caller,
                         wait_s=None if connected else max(0.0, now - ev.at),
                         talk_s=max(0.0, now - ev.at) if connected else None, wrap_s=0.0 if connected else None,
                         data=note)
        for sql, params in _writes(row, node if node is not None else store.node):
            store.execute(sql, params)
    return len(ended)


def answered_by_agent(store: Store, since: float) -> dict[str, int]:
    """Calls each agent answered (CONNECT events) since `since`: the agents' "calls today" as
    the log, which outlives the engine, counts them (issue 15: a restart reset them to 0)."""
    rows = store.query("SELECT agent, COUNT(*) FROM queue_log WHERE event = 'CONNECT' AND at >= ?"
                       " AND agent <> '' GROUP BY agent", (since,))
    return {str(r[0]): int(r[1]) for r in rows}
