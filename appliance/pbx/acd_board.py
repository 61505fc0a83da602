"""What the wallboard shows of the ACD: each queue's callers on every node of the site and its
agents by state, and each agent's state, the node holding them and the call they are on here.

The distributor gathers the inputs (its queues, the roster it refreshed from the site's rows, the
site's waiting callers from appliance/store/acd_site.py); these functions only shape the answer
the control API gives (GET /v1/queues, GET /v1/agents).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from appliance.acd.agent import Agent, AgentState
from appliance.pbx.ports import QueueCall
from appliance.store.acd_site import SiteCaller


@dataclass(frozen=True)
class QueueView:
    """One queue as the board needs it: its name, strategy, members and live service rate."""

    name: str
    strategy: str
    members: Sequence[Agent]
    service_rate: float | None


def queue_board(queues: Sequence[QueueView], site: Sequence[SiteCaller], now: float) -> list[dict[str, object]]:
    """Each queue with the callers waiting in it on every node, in service order (`site` is)."""
    result: list[dict[str, object]] = []
    for q in queues:
        rows = [r for r in site if r.queue == q.name]
        result.append({
            "name": q.name,
            "strategy": q.strategy,
            "waiting": len(rows),
            "longest_wait": max((round(now - r.arrived_at, 1) for r in rows), default=0.0),
            "callers": [{"entry": r.entry, "node": r.node, "caller": r.caller, "position": i + 1,
                         "wait": round(now - r.arrived_at, 1), "priority": r.priority, "callback": r.callback}
                        for i, r in enumerate(rows)],
            "agents": {state.value: sum(1 for a in q.members if a.state is state) for state in AgentState},
            "service_rate": q.service_rate,
        })
    return result


def agent_board(agents: Iterable[Agent], calls: Mapping[str, QueueCall], held_by: Mapping[str, str | None],
                now: float) -> list[dict[str, object]]:
    """Every agent by id: state, phone, the node whose offer or call holds them, and the call
    they are on when it is this node's (`calls`)."""
    result: list[dict[str, object]] = []
    for a in sorted(agents, key=lambda a: a.agent_id):
        call = calls.get(a.agent_id)
        result.append({
            "agent": a.agent_id, "name": a.name, "state": a.state.value, "pause_reason": a.pause_reason,
            "device": a.device, "since": round(now - a.state_since, 1), "calls_today": a.calls_today,
            "call": call.id if call is not None else None,
            "caller": call.a.caller.number if call is not None else None,
            "interaction": call.interaction_id if call is not None else None,
            "skills": dict(a.skills),
            "held_by": held_by.get(a.agent_id),
        })
    return result
