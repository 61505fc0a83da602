"""Interval roll-ups of the queue log: per queue and per agent, per 15 minutes, for fast reports.

A year of a 60-agent site is 4 million queue-log rows; a report that reads them all takes most
of a minute (issue 15). QueueMetrics and Asternic aggregate instead: so do we. Every queue-log
write (`queue_log.record`, `queue_log.close_open`) carries, in the same statement list and so in
the same transaction, the upserts that add the event to its 15-minute bucket (`write_sql`).
A write the store defers (`Store.record_write`) replays the same statements, so the log and its
roll-ups never disagree; `rebuild` recomputes them from the log (a database bulk-loaded or
written by an older version: `plateau report --rebuild`).

What each bucket holds, so that summing buckets gives what `queue_log.compute` gives:
- `rollup_queue` (bucket, queue): offered (ENTER), answered (CONNECT) with the sum of their waits
  and how many were within the queue's service-level threshold, abandoned, overflowed (EXIT*),
  ring-no-answer, completed (COMPLETE) with their talk and wrap sums. Each counter sits in the
  bucket of its own event: a call answered at 10:14 and completed at 10:16 is answered in one
  bucket and completed (talk, wrap) in the next, as compute() counts a period's events.
- `rollup_agent` (bucket, agent, queue): the same per agent, plus (queue '') logins and the
  logged-in seconds of each session, credited whole to the bucket of its AGENT_LOGIN when it
  ends (`rollup_reports` corrects the sessions that run past a period's end).
- `rollup_pause` (bucket, agent, reason): pauses and their seconds, credited whole to the bucket
  where the pause began, when it ends (UNPAUSE, a new PAUSE, or LOGOUT).
- `rollup_session`: each agent's open session and open pause (what the next event closes).
- Within-SL counts use the threshold the queue had at write time; `sl_used` remembers it (-1
  when a bucket mixed two), and `apply_threshold` recounts a queue's buckets from the log after
  the threshold changed (the report reads call it when they see a stale bucket).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from appliance.store.db import Store

FCR_WINDOW_S = 72 * 3600  # as queue_log.FCR_WINDOW_S (which imports this module)
BUCKET_S = 900  # 15 minutes: every real time zone's offset is a multiple of it
DEFAULT_SL_SECONDS = 20  # as a queue row's default (migrations: service_level_seconds)
OVERFLOWS = ("EXITWITHTIMEOUT", "EXITFULL", "EXITEMPTY")
_THRESHOLD = "COALESCE((SELECT service_level_seconds FROM queues WHERE name = ?), 20)"
_QUEUE_KEY = ("bucket", "queue")
_AGENT_KEY = ("bucket", "agent", "queue")
_PAUSE_KEY = ("bucket", "agent", "reason")
# How sl_used merges: a bucket without answers takes the other's; two thresholds make it stale.
_SL_MERGE = ("sl_used = CASE WHEN excluded.sl_used IS NULL THEN {t}.sl_used"
             " WHEN {t}.sl_used IS NULL OR {t}.sl_used = excluded.sl_used THEN excluded.sl_used ELSE -1 END")

Pair = tuple[str, Sequence[Any]]


def bucket_of(at: float) -> int:
    """The start (epoch seconds) of the 15-minute bucket holding `at`."""
    return int(at // BUCKET_S) * BUCKET_S


def _add(table: str, key: Mapping[str, Any], incs: Mapping[str, Any], sl: bool = False) -> Pair:
    """One upsert adding `incs` to the row `key` of `table`. With `sl`, incs holds a CONNECT's
    wait and the statement counts within-SL against the queue's threshold in SQL, so a replayed
    write uses the threshold of its replay, like any other."""
    cols = [*key, *incs]
    values = ["?"] * len(cols)
    params: list[Any] = [*key.values(), *incs.values()]
    sets = [f"{c} = {table}.{c} + excluded.{c}" for c in incs]
    if sl:
        cols += ["within_sl", "sl_used"]
        values += [f"CASE WHEN ? <= {_THRESHOLD} THEN 1 ELSE 0 END", _THRESHOLD]
        params += [incs["wait_sum"], key["queue"], key["queue"]]
        sets += [f"within_sl = {table}.within_sl + excluded.within_sl", _SL_MERGE.format(t=table)]
    sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(values)})"
           f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(sets)}")
    return sql, params


def _close(agent: str, kind: str, at: float) -> list[Pair]:
    """Credit the agent's open session or pause, if any, then forget it."""
    if kind == "login":
        credit = ("INSERT INTO rollup_agent (bucket, agent, queue, logged_in_s)"
                  " SELECT bucket, agent, '', ? - since FROM rollup_session WHERE agent = ? AND kind = 'login'"
                  " ON CONFLICT (bucket, agent, queue) DO UPDATE"
                  " SET logged_in_s = rollup_agent.logged_in_s + excluded.logged_in_s")
    else:
        credit = ("INSERT INTO rollup_pause (bucket, agent, reason, pauses, pause_s)"
                  " SELECT bucket, agent, reason, 1, ? - since FROM rollup_session WHERE agent = ? AND kind = 'pause'"
                  " ON CONFLICT (bucket, agent, reason) DO UPDATE"
                  " SET pauses = rollup_pause.pauses + 1, pause_s = rollup_pause.pause_s + excluded.pause_s")
    return [(credit, (at, agent)), ("DELETE FROM rollup_session WHERE agent = ? AND kind = ?", (agent, kind))]


def _open(agent: str, kind: str, at: float, reason: str = "") -> Pair:
    return ("INSERT INTO rollup_session (agent, kind, bucket, since, reason) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (agent, kind) DO UPDATE SET bucket = excluded.bucket, since = excluded.since,"
            " reason = excluded.reason", (agent, kind, bucket_of(at), at, reason))


def _answered(at: float, queue: str, caller: str) -> list[Pair]:
    """First-contact resolution's facts (`rollup_answer`): this answer is the caller's next one
    after their previous answer (site-wide, and in this queue); a period counts a caller once,
    at their last answer in it: the one whose next answer is past the period's end."""
    if not caller:
        return []
    return [("UPDATE rollup_answer SET next_all = ? WHERE caller = ? AND next_all IS NULL AND call_at < ?",
             (at, caller, at)),
            ("UPDATE rollup_answer SET next_queue = ? WHERE caller = ? AND queue = ? AND next_queue IS NULL"
             " AND call_at < ?", (at, caller, queue, at)),
            ("INSERT INTO rollup_answer (caller, queue, call_at) VALUES (?, ?, ?)"
             " ON CONFLICT (caller, queue, call_at) DO NOTHING", (caller, queue, at))]


def _came_back(at: float, queue: str, caller: str) -> list[Pair]:
    """The caller's answers of the 72 h before this ENTER were not first-contact resolutions."""
    if not caller:
        return []
    since = at - FCR_WINDOW_S
    return [("UPDATE rollup_answer SET back_all = 1 WHERE caller = ? AND call_at >= ? AND call_at < ?",
             (caller, since, at)),
            ("UPDATE rollup_answer SET back_queue = 1 WHERE caller = ? AND queue = ? AND call_at >= ? AND call_at < ?",
             (caller, queue, since, at))]


def write_sql(at: float, event: str, queue: str, agent: str, wait_s: float | None, talk_s: float | None,
              wrap_s: float | None, data: str = "", caller: str = "") -> list[Pair]:
    """The roll-up statements of one queue-log event (run with its INSERT, in one transaction)."""
    b = bucket_of(at)
    qkey = {"bucket": b, "queue": queue}
    akey = {"bucket": b, "agent": agent, "queue": queue}
    if event == "ENTER":
        return [_add("rollup_queue", qkey, {"offered": 1}), *_came_back(at, queue, caller)]
    if event == "CONNECT":
        incs = {"answered": 1, "wait_sum": wait_s or 0.0}
        out = [_add("rollup_queue", qkey, incs, sl=True), *_answered(at, queue, caller)]
        return out + [_add("rollup_agent", akey, incs, sl=True)] if agent else out
    if event == "ABANDON":
        return [_add("rollup_queue", qkey, {"abandoned": 1})]
    if event in OVERFLOWS:
        return [_add("rollup_queue", qkey, {"overflowed": 1})]
    if event == "RINGNOANSWER":
        out = [_add("rollup_queue", qkey, {"ring_no_answer": 1})]
        return out + [_add("rollup_agent", akey, {"ring_no_answer": 1})] if agent else out
    if event == "COMPLETE":
        incs = {"completed": 1, "talk_sum": talk_s or 0.0, "wrap_sum": wrap_s or 0.0}
        out = [_add("rollup_queue", qkey, incs)]
        return out + [_add("rollup_agent", akey, incs)] if agent else out
    if not agent:
        return []
    if event == "AGENT_LOGIN":
        # compute() pairs a logout with the latest login before it: a second login restarts it.
        return [_add("rollup_agent", {"bucket": b, "agent": agent, "queue": ""}, {"logins": 1}),
                _open(agent, "login", at)]
    if event == "AGENT_LOGOUT":
        return [*_close(agent, "pause", at), *_close(agent, "login", at)]
    if event == "AGENT_PAUSE":
        return [*_close(agent, "pause", at), _open(agent, "pause", at, data)]
    if event == "AGENT_UNPAUSE":
        return _close(agent, "pause", at)
    return []  # TRANSFER, CALLBACK_*: no figure of the report counts them


def apply_threshold(store: Store, queue: str, seconds: int) -> None:
    """Recount the within-SL answers of `queue`'s buckets (queue and agent roll-ups) whose count
    was made against another threshold, from the log (CONNECT rows, index queue_log_queue_at)."""
    recount = ("(SELECT COUNT(*) FROM queue_log l WHERE l.queue = {t}.queue AND l.event = 'CONNECT'{agent}"
               " AND l.at >= {t}.bucket AND l.at < {t}.bucket + ? AND COALESCE(l.wait_s, 0) <= ?)")
    with store.transaction():
        for table, agent in (("rollup_queue", ""), ("rollup_agent", " AND l.agent = rollup_agent.agent")):
            store.execute(
                f"UPDATE {table} SET within_sl = {recount.format(t=table, agent=agent)}, sl_used = ?"
                f" WHERE queue = ? AND sl_used IS NOT NULL AND sl_used <> ?",
                (BUCKET_S, seconds, seconds, queue, seconds))


_SUMS = ("SUM(CASE WHEN event = 'ENTER' THEN 1 ELSE 0 END), SUM(CASE WHEN event = 'CONNECT' THEN 1 ELSE 0 END),"
         " SUM(CASE WHEN event = 'CONNECT' THEN COALESCE(wait_s, 0) ELSE 0 END),"
         " SUM(CASE WHEN event = 'CONNECT' AND COALESCE(wait_s, 0) <= COALESCE(q.service_level_seconds, 20)"
         " THEN 1 ELSE 0 END),"
         " MAX(CASE WHEN event = 'CONNECT' THEN COALESCE(q.service_level_seconds, 20) END),"
         " SUM(CASE WHEN event = 'ABANDON' THEN 1 ELSE 0 END),"
         " SUM(CASE WHEN event IN ('EXITWITHTIMEOUT', 'EXITFULL', 'EXITEMPTY') THEN 1 ELSE 0 END),"
         " SUM(CASE WHEN event = 'RINGNOANSWER' THEN 1 ELSE 0 END),"
         " SUM(CASE WHEN event = 'COMPLETE' THEN 1 ELSE 0 END),"
         " SUM(CASE WHEN event = 'COMPLETE' THEN COALESCE(talk_s, 0) ELSE 0 END),"
         " SUM(CASE WHEN event = 'COMPLETE' THEN COALESCE(wrap_s, 0) ELSE 0 END)")
_COUNTED = "('ENTER', 'CONNECT', 'ABANDON', 'EXITWITHTIMEOUT', 'EXITFULL', 'EXITEMPTY', 'RINGNOANSWER', 'COMPLETE')"
_AGENT_EVENTS = "('AGENT_LOGIN', 'AGENT_LOGOUT', 'AGENT_PAUSE', 'AGENT_UNPAUSE')"
_COUNTERS = ("offered", "answered", "wait_sum", "within_sl", "sl_used", "abandoned", "overflowed",
             "ring_no_answer", "completed", "talk_sum", "wrap_sum")


def rebuild(store: Store, start: float | None = None, end: float | None = None) -> int:
    """Recompute every roll-up from the queue log (in one transaction); the buckets written.

    The counters are one GROUP BY each in SQL; sessions and pauses (login, logout, pause rows:
    a few per agent and day) are replayed in order through the write path's own statements.
    `start`/`end` (whole buckets) limit the recount to a period, for tests and repairs."""
    lo = bucket_of(start) if start is not None else None
    hi = bucket_of(end) if end is not None else None
    where, params = " WHERE l.at >= ? AND l.at < ?", [lo if lo is not None else float("-inf"),
                                                      hi if hi is not None else float("inf")]
    bucket = f"FLOOR(l.at / {BUCKET_S}) * {BUCKET_S}"
    with store.transaction():
        bwhere = " WHERE bucket >= ? AND bucket < ?"
        for table in ("rollup_queue", "rollup_agent", "rollup_pause"):
            store.execute(f"DELETE FROM {table}{bwhere}", params)
        store.execute("DELETE FROM rollup_answer WHERE call_at >= ? AND call_at < ?", params)
        if lo is None and hi is None:
            store.execute("DELETE FROM rollup_session")
        cols = ", ".join(_COUNTERS)
        store.execute(
            f"INSERT INTO rollup_queue (bucket, queue, {cols}) SELECT {bucket}, l.queue, {_SUMS}"
            f" FROM queue_log l LEFT JOIN queues q ON q.name = l.queue{where}"
            f" AND l.event IN {_COUNTED} GROUP BY 1, 2", params)
        store.execute(
            f"INSERT INTO rollup_agent (bucket, agent, queue, {cols}) SELECT {bucket}, l.agent, l.queue, {_SUMS}"
            f" FROM queue_log l LEFT JOIN queues q ON q.name = l.queue{where}"
            " AND l.agent <> '' AND l.event IN ('CONNECT', 'RINGNOANSWER', 'COMPLETE') GROUP BY 1, 2, 3", params)
        nxt = ("(SELECT MIN(n.at) FROM queue_log n WHERE n.caller = l.caller AND n.event = 'CONNECT'"
               " AND n.at > l.at{q})")
        back = ("CASE WHEN EXISTS (SELECT 1 FROM queue_log n WHERE n.caller = l.caller AND n.event = 'ENTER'"
                " AND n.at > l.at AND n.at <= l.at + {w}{q}) THEN 1 ELSE 0 END")
        same = " AND n.queue = l.queue"
        store.execute(
            "INSERT INTO rollup_answer (caller, queue, call_at, next_all, next_queue, back_all, back_queue)"
            f" SELECT l.caller, l.queue, l.at, {nxt.format(q='')}, {nxt.format(q=same)},"
            f" {back.format(w=FCR_WINDOW_S, q='')}, {back.format(w=FCR_WINDOW_S, q=same)}"
            f" FROM queue_log l{where} AND l.event = 'CONNECT' AND l.caller <> ''"
            " ON CONFLICT (caller, queue, call_at) DO NOTHING", params)
        store.execute("UPDATE rollup_agent SET sl_used = NULL WHERE answered = 0")
        store.execute("UPDATE rollup_queue SET sl_used = NULL WHERE answered = 0")
        for at, event, agent, data in store.query(
                "SELECT l.at, l.event, l.agent, l.data FROM queue_log l" + where +
                f" AND l.event IN {_AGENT_EVENTS} AND l.agent <> '' ORDER BY l.at, l.id", params):
            for sql, p in write_sql(at, event, "", agent, None, None, None, data):
                store.execute(sql, p)
        return int(store.query(f"SELECT COUNT(*) FROM rollup_queue{bwhere}", params)[0][0])

