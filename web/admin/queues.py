"""ACD queues: strategy, members in order, skills and escalation, limits, overflow, announcements."""
from __future__ import annotations

from typing import Any

from flask import current_app

from appliance.acd.strategies import STRATEGIES
from appliance.schema.errors import FieldError
from appliance.schema.records import QueueRecord
from appliance.store import acd
from appliance.store.models import RECORDING_MODES, QueueConfig
from web.admin import bp
from web.admin.crud import Section, register
from web.admin.forms import BOOL, DESTINATION, INT, LINES, OPTIONAL, SELECT, Field
from web.admin.routes import destination_errors, destinations
from web.context import store

_STRATEGY_HELP = {
    "ring-all": "Ring all: every free agent at once",
    "longest-idle": "Longest idle: the agent free the longest",
    "round-robin": "Round robin: the next agent after the last one offered",
    "fewest-calls": "Fewest calls: the agent with the fewest calls today",
    "least-talk-time": "Least talk time: the agent who talked least today",
    "random": "Random",
    "linear": "Linear: always in member order",
    "ring-progressively": "Ring progressively: add one agent every ring step",
}


def _agents() -> list[tuple[str, str]]:
    return [(a.agent_id, a.name) for a in acd.agents(store())]


def _sounds() -> list[tuple[str, str]]:
    folder = current_app.config["DATA_DIR"] / "sounds"
    return [(p.name, p.name) for p in sorted(folder.glob("*.wav"))] if folder.is_dir() else []


def _references(values: dict[str, Any]) -> list[FieldError]:
    """Members that are agents and an overflow that exists, reported with the model's errors."""
    agents = {a.agent_id for a in acd.agents(store())}
    errors = [FieldError(("members", i), f"agent {m!r} does not exist")
              for i, m in enumerate(values.get("members") or []) if m not in agents]
    return errors + destination_errors(values, "overflow")


FIELDS = [
    Field("name", "Identifier", placeholder="reclamations",
          help="letters without accents, digits, '_', '.', '-': used in queue:<name>, reports and URLs"),
    Field("label", "Display name", placeholder="Réclamations", help="what people read; empty: the identifier"),
    Field("number", "Internal number", OPTIONAL, help="2-8 digits phones dial to reach the queue"),
    Field("strategy", "Strategy", SELECT,
          choices=lambda: [(n, _STRATEGY_HELP.get(n, n)) for n in sorted(STRATEGIES)]),
    Field("members", "Members, in order", LINES, suggest=_agents, ordered=True,
          help="agent numbers, one per line; empty: every agent with the skills"),
    Field("skills", "Required skills", LINES, placeholder="french:3", help="one per line, minimum levels"),
    Field("escalations", "Escalation", LINES, placeholder="after 30s: french:1\nafter 90s: any",
          help="one step per line: after <seconds>s: skill:level, ... (or any)"),
    Field("ring_step_seconds", "Ring step (seconds)", INT, help="ring-progressively adds an agent this often"),
    Field("wrapup_seconds", "Wrap-up (seconds)", INT),
    Field("max_wait_seconds", "Maximum wait (seconds)", INT, help="0: no limit; then the caller overflows"),
    Field("max_callers", "Maximum callers waiting", INT, help="0: no limit"),
    Field("overflow", "Overflow destination", DESTINATION, choices=destinations, optional=True,
          placeholder="Hang up", help="where callers go when the wait or the queue is full"),
    Field("join_empty", "Callers may join while no agent is logged in", BOOL),
    Field("leave_empty", "Waiting callers overflow when the last agent logs out", BOOL),
    Field("announce_seconds", "Announce position every (seconds)", INT, help="0: never; at least 10"),
    Field("moh", "Music on hold", OPTIONAL, suggest=_sounds, help="a WAV in the prompts; empty: the default"),
    Field("callback_key", "Callback key", OPTIONAL, help="one DTMF key a caller presses to be called back"),
    Field("service_level_seconds", "Service level target (seconds)", INT),
    Field("recording", "Record calls", SELECT, choices=lambda: [(m, m) for m in RECORDING_MODES]),
    Field("survey", "Post-call survey", BOOL),
]

def _shown_name(q: QueueConfig) -> str:
    return q.name if q.label in ("", q.name) else f"{q.label} ({q.name})"


SECTION = Section(
    name="queues", title="Queues", singular="queue", record=QueueConfig, model=QueueRecord, key="name", fields=FIELDS,
    columns=[("Name", _shown_name), ("Number", lambda q: q.number or ""), ("Strategy", lambda q: q.strategy),
             ("Members", lambda q: ", ".join(q.members) or "all agents"), ("Skills", lambda q: ", ".join(q.skills)),
             ("Overflow", lambda q: q.overflow or "")],
    load_all=acd.queues, load_one=acd.get_queue, put=acd.put_queue, delete=acd.delete_queue,
    references=_references,
)
register(bp, SECTION)
