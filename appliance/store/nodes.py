"""The nodes table: each engine of a site, its heartbeat, and which survivor took it over when it died.

Rows of appliance/cluster/nodes.py's watch (migration 10). A node beats by updating its own row
about once a second; a peer whose beat stopped is taken over by exactly one survivor, the one whose
``UPDATE ... WHERE taken_over_by IS NULL AND heartbeat_at = <the stale beat>`` changed the row (a
beat that arrives meanwhile makes the claim change nothing, so a node that was only slow keeps its
calls). The SQL is written for SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.store.db import Store
from appliance.store.dialect import upsert_sql

_COLUMNS = ("name", "started_at", "heartbeat_at", "sip", "api", "taken_over_by", "taken_over_at")


@dataclass(frozen=True)
class Node:
    """One engine of the site as the table holds it."""

    name: str
    started_at: float
    heartbeat_at: float  # the node's own wall clock; a watch compares beats, never clocks
    sip: str = ""  # host:port of its SIP transport
    api: str = ""  # its control API's URL
    taken_over_by: str | None = None
    taken_over_at: float | None = None


def _node(row: tuple[object, ...]) -> Node:
    return Node(*row)  # type: ignore[arg-type]


def get(store: Store, name: str) -> Node | None:
    """One node's row, or None."""
    rows = store.query(f"SELECT {', '.join(_COLUMNS)} FROM nodes WHERE name = ?", (name,))
    return _node(rows[0]) if rows else None


def all_nodes(store: Store) -> list[Node]:
    """Every node of the site, by name."""
    return [_node(r) for r in store.query(f"SELECT {', '.join(_COLUMNS)} FROM nodes ORDER BY name")]


def join(store: Store, name: str, now: float, sip: str, api: str) -> Node | None:
    """Enter the site as ``name`` (a start, or a rejoin after a takeover); the row it had before."""
    with store.transaction():
        before = get(store, name)
        store.execute(upsert_sql("nodes", _COLUMNS, ("name",)), (name, now, now, sip, api, None, None))
    return before


def beat(store: Store, name: str, now: float) -> bool:
    """Stamp ``name``'s heartbeat (committed non-durably: a lost beat is the next one's job);
    False if its row is gone or a survivor took it over (the node must `join` again)."""
    with store.transaction(durable=False):
        changed = store.execute("UPDATE nodes SET heartbeat_at = ? WHERE name = ? AND taken_over_by IS NULL",
                                (now, name)).rowcount
    return bool(changed)


def claim(store: Store, name: str, by: str, stale_beat: float, now: float) -> bool:
    """Take over ``name`` for ``by`` if its heartbeat is still ``stale_beat`` and nobody took it:
    True for exactly one survivor. In the caller's transaction, with the takeover's cleanups."""
    return bool(store.execute(
        "UPDATE nodes SET taken_over_by = ?, taken_over_at = ?"
        " WHERE name = ? AND taken_over_by IS NULL AND heartbeat_at = ?",
        (by, now, name, stale_beat)).rowcount)


def leave(store: Store, name: str) -> None:
    """Remove ``name`` from the site (a clean stop: its calls were hung up and closed)."""
    with store.transaction():
        store.execute("DELETE FROM nodes WHERE name = ?", (name,))
