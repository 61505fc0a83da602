"""ACD rows in the store: agents with their skills, queues with their members, the agent
state that must survive an engine restart, and callbacks waiting for their turn.

Module functions over a `Store` (like queue_log.py) so db.py stays about the PBX core.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from appliance.schema.errors import invalid
from appliance.store.db import Store, upsert_sql
from appliance.store.errors import ConfigError
from appliance.store.models import AgentConfig, AgentStatus, QueueConfig
from appliance.store.validation import QUEUE_PREFIX, check_agent, check_queue

_AGENT_COLUMNS = ("agent_id", "name", "pin", "max_no_answer", "ring_timeout", "enabled")
# Queue columns as stored; requirements/escalations are the config lists joined by newlines.
_QUEUE_COLUMNS = (
    "name", "number", "strategy", "requirements", "escalations", "ring_step_seconds", "wrapup_seconds",
    "max_wait_seconds", "max_callers", "overflow", "join_empty", "leave_empty", "announce_seconds", "moh",
    "callback_key", "service_level_seconds", "recording", "survey", "label",
)
_QUEUE_BOOLS = ("join_empty", "leave_empty", "survey")
ENGAGED_STATES = ("ringing", "on-call", "wrap-up")  # an agent is held by a node in these (store/acd_site.py)


# -- agents --------------------------------------------------------------------------------
def agents(store: Store) -> list[AgentConfig]:
    """Every agent with its skills, by id."""
    with store.transaction(read_only=True):
        skills: dict[str, list[str]] = {}
        for agent_id, skill, level in store.query(
                "SELECT agent_id, skill, level FROM agent_skills ORDER BY agent_id, skill"):
            skills.setdefault(agent_id, []).append(f"{skill}:{level}")
        rows = store.query(f"SELECT {', '.join(_AGENT_COLUMNS)} FROM agents ORDER BY agent_id")
    return [AgentConfig(agent_id=r[0], name=r[1], pin=r[2], max_no_answer=r[3], ring_timeout=r[4],
                        enabled=bool(r[5]), skills=skills.get(r[0], [])) for r in rows]


def get_agent(store: Store, agent_id: str) -> AgentConfig | None:
    return next((a for a in agents(store) if a.agent_id == agent_id), None)


def put_agent(store: Store, agent: AgentConfig) -> None:
    """Create or update an agent (its skill rows are replaced)."""
    check_agent(agent)
    with store.transaction():
        store.config_changed()
        store.execute(upsert_sql("agents", _AGENT_COLUMNS, ("agent_id",)),
                    [getattr(agent, c) for c in _AGENT_COLUMNS])
        store.execute("DELETE FROM agent_skills WHERE agent_id = ?", (agent.agent_id,))
        for text in agent.skills:
            skill, level = text.split(":")
            store.execute("INSERT INTO agent_skills (agent_id, skill, level) VALUES (?, ?, ?)",
                        (agent.agent_id, skill, int(level)))


def delete_agent(store: Store, agent_id: str) -> bool:
    """Delete an agent (and their queue memberships and state)."""
    with store.transaction():
        store.config_changed()
        return store.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,)).rowcount > 0


# -- queues --------------------------------------------------------------------------------
def _queue_from_row(row: Sequence[Any], members: list[str]) -> QueueConfig:
    v = dict(zip(_QUEUE_COLUMNS, row, strict=True))
    for name in _QUEUE_BOOLS:
        v[name] = bool(v[name])
    v["skills"] = [s for s in v.pop("requirements").split("\n") if s]
    v["escalations"] = [s for s in v.pop("escalations").split("\n") if s]
    return QueueConfig(**v, members=members)


def queues(store: Store) -> list[QueueConfig]:
    """Every queue with its members in order, by name."""
    with store.transaction(read_only=True):
        members: dict[str, list[str]] = {}
        for queue, agent_id in store.query(
                "SELECT queue, agent_id FROM queue_members ORDER BY queue, position"):
            members.setdefault(queue, []).append(agent_id)
        rows = store.query(f"SELECT {', '.join(_QUEUE_COLUMNS)} FROM queues ORDER BY name")
    return [_queue_from_row(r, members.get(r[0], [])) for r in rows]


def get_queue(store: Store, name: str) -> QueueConfig | None:
    return next((q for q in queues(store) if q.name == name), None)


def put_queue(store: Store, queue: QueueConfig) -> None:
    """Create or update a queue; its members and overflow must exist."""
    check_queue(queue)
    with store.transaction():
        store.config_changed()
        for i, member in enumerate(queue.members):
            if not store.execute("SELECT 1 FROM agents WHERE agent_id = ?", (member,)).fetchone():
                raise invalid(f"agent {member!r} does not exist", "queue", "members", i)
        values = {c: getattr(queue, c, None) for c in _QUEUE_COLUMNS}
        values["requirements"] = "\n".join(queue.skills)
        values["escalations"] = "\n".join(queue.escalations)
        store.execute(upsert_sql("queues", _QUEUE_COLUMNS, ("name",)), [values[c] for c in _QUEUE_COLUMNS])
        if queue.overflow is not None:
            store.check_destination(queue.overflow, "queue", "overflow")
        store.execute("DELETE FROM queue_members WHERE queue = ?", (queue.name,))
        for position, member in enumerate(queue.members):
            store.execute("INSERT INTO queue_members (queue, agent_id, position) VALUES (?, ?, ?)",
                        (queue.name, member, position))


def delete_queue(store: Store, name: str) -> bool:
    """Delete a queue; refused while an inbound route or another queue's overflow sends calls to it."""
    with store.transaction():
        store.config_changed()
        target = f"{QUEUE_PREFIX}{name}"
        users = [r[0] for r in store.execute("SELECT did FROM inbound_routes WHERE destination = ?", (target,))]
        users += [f"queue {r[0]}" for r in store.execute("SELECT name FROM queues WHERE overflow = ?", (target,))]
        if users:
            raise ConfigError(f"queue {name}: {', '.join(users)} send calls to it")
        return store.execute("DELETE FROM queues WHERE name = ?", (name,)).rowcount > 0


def replace_acd(store: Store, agent_list: Sequence[AgentConfig], queue_list: Sequence[QueueConfig]) -> None:
    """Replace every agent and queue (inside the caller's transaction for a whole-config import).

    Agent state rows of agents that still exist are kept: re-importing the configuration must
    not log everybody out.
    """
    with store.transaction():
        store.config_changed()
        keep = {a.agent_id for a in agent_list}
        store.execute("DELETE FROM queue_members")
        store.execute("DELETE FROM queues")
        store.execute("DELETE FROM agent_skills")
        for (agent_id,) in store.execute("SELECT agent_id FROM agents").fetchall():
            if agent_id not in keep:
                store.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,))
        for agent in agent_list:
            put_agent(store, agent)
        # Overflows may name queues defined later in the list: insert them all, then check.
        for queue in queue_list:
            put_queue(store, _without_overflow(queue))
        for queue in queue_list:
            if queue.overflow is not None:
                put_queue(store, queue)


def _without_overflow(queue: QueueConfig) -> QueueConfig:
    from dataclasses import replace

    return replace(queue, overflow=None)


# -- agent state ---------------------------------------------------------------------------
def save_agent_status(store: Store, status: AgentStatus) -> None:
    """Persist an agent's state (not fsynced: losing the last change to a power cut is repaired
    by the reconcile at start-up, and agents change state on every call). Kept in order in memory
    while the database refuses writes (Store.record_write): an agent's state never fails a call.

    A free state (not ringing, on a call or in wrap-up) drops the node's hold on the agent in the
    same statement (appliance/store/acd_site.py), so no node sees them free and still held."""
    store.record_write("agent_state", [(
        "INSERT INTO agent_state (agent_id, state, pause_reason, device, since) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (agent_id) DO UPDATE SET state = excluded.state, pause_reason = excluded.pause_reason,"
        " device = excluded.device, since = excluded.since,"
        " reserved_by = CASE WHEN excluded.state IN (?, ?, ?) THEN agent_state.reserved_by END,"
        " reserved_entry = CASE WHEN excluded.state IN (?, ?, ?) THEN agent_state.reserved_entry END,"
        " reserved_at = CASE WHEN excluded.state IN (?, ?, ?) THEN agent_state.reserved_at END",
        (status.agent_id, status.state, status.pause_reason, status.device, status.since,
         *ENGAGED_STATES, *ENGAGED_STATES, *ENGAGED_STATES),
    )])


def agent_statuses(store: Store) -> dict[str, AgentStatus]:
    rows = store.query("SELECT agent_id, state, pause_reason, device, since FROM agent_state")
    return {r[0]: AgentStatus(*r) for r in rows}


# -- callbacks -----------------------------------------------------------------------------
def add_callback(store: Store, queue: str, number: str, name: str, priority: int, at: float,
                 call_id: str, node: str | None = None) -> int:
    """Record a caller's request to be called back (durable: the caller has hung up on our word);
    `node` is the engine whose queue keeps its place (store/acd_site.py)."""
    with store.transaction():
        cur = store.execute(
            "INSERT INTO queue_callbacks (queue, number, name, priority, requested_at, call_id, node)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id", (queue, number, name, priority, at, call_id, node))
        return int(cur.fetchone()[0])


def finish_callback(store: Store, callback_id: int, at: float, outcome: str) -> None:
    with store.transaction():
        store.execute("UPDATE queue_callbacks SET done_at = ?, outcome = ? WHERE id = ?", (at, outcome, callback_id))


def pending_callbacks(store: Store) -> list[tuple[int, str, str, str, int, float, str]]:
    """(id, queue, number, name, priority, requested_at, call_id) of callbacks not yet placed."""
    return [tuple(r) for r in store.query(
        "SELECT id, queue, number, name, priority, requested_at, call_id FROM queue_callbacks"
        " WHERE done_at IS NULL ORDER BY requested_at, id")]
