"""The site's ACD rows: which node holds an agent, and the callers waiting on every node.

One logical ACD across the engines that share a store (issue 14, item 4). An engine's roster
mirrors the `agent_state` rows; these functions are the parts that make it one ACD:

* **The hold.** Before a node rings an agent it reserves them: one UPDATE that succeeds only
  while the row says the agent is available and nobody holds them (rowcount 1 wins, whatever the
  number of nodes racing). The hold stays while the agent is engaged (ringing, on a call, in
  wrap-up) and goes in the same statement that writes a free state (`acd.save_agent_status`), so
  no node sees the agent free before the hold is gone. A hold is never leaked: its node touches it
  while it lives; one older than a bound (its node stopped touching) is reclaimed by any node, and
  `forget_node` frees a dead node's at once.
* **The waiting list.** Every caller waiting on any node is a row (queue, node, priority,
  arrival); `waiting` returns them in service order (priority, then arrival), each marked offered
  when some agent's hold names it. A promised callback is kept by one node (`adopt_callbacks`),
  so two nodes never call one customer back.

On SQLite (one box) the same statements run against one writer, so the code path is the same.
The engine loop runs these: like `Store.record_write`, each waits at most ``write_busy_ms`` for
another connection's write lock (the web app's) and then fails, which the roster handles.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from appliance.store.acd import ENGAGED_STATES
from appliance.store.db import Store

HOLD_BOUND_S = 30.0  # a hold not touched for this long belongs to a node that stopped


@dataclass(frozen=True)
class SiteAgent:
    """An agent's row as every node sees it: state, phone, and the node holding them (if any)."""

    agent_id: str
    state: str
    pause_reason: str | None
    device: str | None
    since: float
    held_by: str | None
    held_entry: str | None
    held_at: float | None


@dataclass(frozen=True)
class SiteCaller:
    """A caller waiting in a queue on some node; `entry` is unique on the site (node:entry id)."""

    entry: str
    queue: str
    node: str
    caller: str
    priority: int
    arrived_at: float
    callback: bool
    offered: bool = False  # an agent's hold names this entry: it is being offered now


def site_entry(node: str, entry_id: str) -> str:
    """The site-wide name of a node's queue entry (entry ids are only unique within a process)."""
    return f"{node}:{entry_id}"


# -- agents ----------------------------------------------------------------------------------
def agents(store: Store) -> dict[str, SiteAgent]:
    """Every agent's row, by id."""
    rows = store.query("SELECT agent_id, state, pause_reason, device, since, reserved_by, reserved_entry,"
                       " reserved_at FROM agent_state")
    return {r[0]: SiteAgent(*r) for r in rows}


def reserve(store: Store, agent_id: str, node: str, entry: str, now: float) -> bool:
    """Hold an available agent for `entry` on `node`; False if the row says they are not available
    or another offer holds them (one transaction: of nodes racing for one agent, one wins). Holding
    again what `node` already holds for `entry` is True."""
    with store.transaction(durable=False, busy_ms=store.write_busy_ms):
        cur = store.execute(
            "UPDATE agent_state SET reserved_by = ?, reserved_entry = ?, reserved_at = ?"
            " WHERE agent_id = ? AND state = ?"
            " AND (reserved_by IS NULL OR (reserved_by = ? AND reserved_entry = ?))",
            (node, entry, now, agent_id, "available", node, entry))
        return bool(cur.rowcount == 1)


def release(store: Store, agent_id: str, node: str) -> bool:
    """Give back `node`'s hold on an agent it did not ring after all; False if it held none."""
    with store.transaction(durable=False, busy_ms=store.write_busy_ms):
        cur = store.execute(
            "UPDATE agent_state SET reserved_by = NULL, reserved_entry = NULL, reserved_at = NULL"
            " WHERE agent_id = ? AND reserved_by = ?", (agent_id, node))
        return bool(cur.rowcount == 1)


def touch(store: Store, node: str, agent_ids: Collection[str], now: float) -> int:
    """Say that `node`'s holds on `agent_ids` are alive (their offers and calls exist here); a hold
    it no longer touches ages out (`reclaim_stale`). Returns how many were touched."""
    if not agent_ids:
        return 0
    marks = ", ".join("?" for _ in agent_ids)
    with store.transaction(durable=False, busy_ms=store.write_busy_ms):
        return int(store.execute(
            f"UPDATE agent_state SET reserved_at = ? WHERE reserved_by = ? AND agent_id IN ({marks})",
            (now, node, *agent_ids)).rowcount)


def _free(store: Store, where: str, params: tuple[object, ...], now: float) -> list[str]:
    """Free the held agents `where` selects: available again, their hold gone (their node's calls
    and offers died with it, so there is nothing to wrap up)."""
    with store.transaction(durable=False, busy_ms=store.write_busy_ms):
        ids = [r[0] for r in store.execute(f"SELECT agent_id FROM agent_state WHERE {where}", params)]
        store.execute(
            "UPDATE agent_state SET state = CASE WHEN state IN (?, ?, ?) THEN ? ELSE state END,"
            " since = CASE WHEN state IN (?, ?, ?) THEN ? ELSE since END,"
            f" reserved_by = NULL, reserved_entry = NULL, reserved_at = NULL WHERE {where}",
            (*ENGAGED_STATES, "available", *ENGAGED_STATES, now, *params))
    return sorted(ids)


def reclaim_stale(store: Store, node: str, now: float, bound_s: float = HOLD_BOUND_S) -> list[str]:
    """Free the agents whose hold was not touched for `bound_s`: another node's (it stopped), or
    one of `node`'s own on an agent the row says is free (an offer that never rang: its engaged
    ones are its reconcile's to repair). Returns their ids."""
    return _free(store, "reserved_by IS NOT NULL AND reserved_at < ? AND (reserved_by <> ? OR state = ?)",
                 (now - bound_s, node, "available"), now)


def forget_node(store: Store, node: str, now: float) -> tuple[list[str], int]:
    """`node` is dead (the failover watch says so, or it is starting again): free the agents it
    held, drop the callers that waited on it, and let go of the callbacks it kept, for a living
    node to adopt (`adopt_callbacks`). Returns (agents freed, callers dropped)."""
    with store.transaction(durable=False, busy_ms=store.write_busy_ms):
        freed = _free(store, "reserved_by = ?", (node,), now)
        dropped = int(store.execute("DELETE FROM queue_waiting WHERE node = ?", (node,)).rowcount)
        store.execute("UPDATE queue_callbacks SET node = NULL WHERE node = ? AND done_at IS NULL", (node,))
    return freed, dropped


def adopt_callbacks(store: Store, node: str) -> list[int]:
    """Take the promised callbacks that no node keeps (one transaction: each goes to one node);
    returns their ids. The callback rows themselves are acd.py's."""
    # Read first: the engine loop asks every few seconds, and almost always nothing is unkept; the
    # write (and its wait for another connection's write lock) is only for when something is.
    if not store.query("SELECT 1 FROM queue_callbacks WHERE node IS NULL AND done_at IS NULL LIMIT 1"):
        return []
    with store.transaction(durable=False, busy_ms=store.write_busy_ms):
        return sorted(int(r[0]) for r in store.execute(
            "UPDATE queue_callbacks SET node = ? WHERE node IS NULL AND done_at IS NULL RETURNING id", (node,)))


# -- waiting callers ---------------------------------------------------------------------------
def join(store: Store, caller: SiteCaller) -> None:
    """A caller starts waiting, or their row changes (a raised priority, a callback promised):
    kept in order while the database refuses, it never fails a call."""
    store.record_write("queue_waiting", [(
        "INSERT INTO queue_waiting (entry, queue, node, caller, priority, arrived_at, callback)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry) DO UPDATE SET priority = excluded.priority,"
        " callback = excluded.callback",
        (caller.entry, caller.queue, caller.node, caller.caller, caller.priority, caller.arrived_at,
         caller.callback),
    )])


def leave(store: Store, entry: str) -> None:
    """A caller stops waiting (answered, gone, overflowed)."""
    store.record_write("queue_waiting", [("DELETE FROM queue_waiting WHERE entry = ?", (entry,))])


def waiting(store: Store, queues: Iterable[str] | None = None) -> list[SiteCaller]:
    """The site's waiting callers in service order (priority, then arrival), of `queues` or all."""
    rows = store.query(
        "SELECT w.entry, w.queue, w.node, w.caller, w.priority, w.arrived_at, w.callback,"
        " EXISTS (SELECT 1 FROM agent_state a WHERE a.reserved_entry = w.entry)"
        " FROM queue_waiting w ORDER BY w.queue, w.priority DESC, w.arrived_at, w.entry")
    wanted = None if queues is None else set(queues)
    return [SiteCaller(r[0], r[1], r[2], r[3], int(r[4]), float(r[5]), bool(r[6]), bool(r[7]))
            for r in rows if wanted is None or r[1] in wanted]
