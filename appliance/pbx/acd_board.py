"""What the wallboard shows of the ACD: each queue's callers on every node of the site and its
agents by state, and each agent's state, the node holding them and the call they are on here.

The distributor gathers the inputs (its queues, the roster it refreshed from the site's rows, the
site's waiting callers from appliance/store/acd_site.py); these functions only shape the answer
the control API gives (GET /v1/queues, GET /v1/agents).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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


#: A queue's member who is ringing or talking for another queue: neither free nor on *this*
#: queue's calls (issue 15: the support card counted an agent on a sales call as "on call").
BUSY_ELSEWHERE = "busy-elsewhere"
BUSY = (AgentState.RINGING, AgentState.ON_CALL)


@dataclass(frozen=True)
class Thresholds:
    """Seconds in a state after which the board warns (amber) and alarms (red), per state.

    Derived from the queue's own settings where it has one (wrap-up time, service level), and
    from the usual contact-centre defaults otherwise: a queue without custom figures still colours.
    """

    warn: Mapping[str, float]
    alarm: Mapping[str, float]

    @classmethod
    def of_queue(cls, wrapup_seconds: float, service_level_seconds: float) -> Thresholds:
        wrap = max(1.0, float(wrapup_seconds))
        ring = max(1.0, float(service_level_seconds))
        return cls(warn={"ringing": ring, "on-call": 300.0, "wrap-up": wrap, "paused": 600.0},
                   alarm={"ringing": 2 * ring, "on-call": 600.0, "wrap-up": 2 * wrap, "paused": 1800.0})

    def level(self, state: str, seconds: float | None) -> str:
        """"ok", "warn" or "alarm" for `seconds` in `state` (ok when there is no time in state)."""
        if seconds is None:
            return "ok"
        if seconds >= self.alarm.get(state, float("inf")):
            return "alarm"
        if seconds >= self.warn.get(state, float("inf")):
            return "warn"
        return "ok"


DEFAULT_THRESHOLDS = Thresholds.of_queue(10, 20)


def queue_board(queues: Sequence[QueueView], site: Sequence[SiteCaller], now: float,
                busy_in: Mapping[str, str] | None = None,
                names: Callable[[str], str] = lambda number: "") -> list[dict[str, object]]:
    """Each queue with the callers waiting in it on every node, in service order (`site` is).

    `busy_in` gives the queue of each agent's current call (agent id -> queue name): a member
    busy for another queue counts as BUSY_ELSEWHERE, not as on this queue's calls. `names`
    gives a caller's contact name ("" when unknown)."""
    busy_in = busy_in or {}
    result: list[dict[str, object]] = []
    for q in queues:
        rows = [r for r in site if r.queue == q.name]
        counts = {state.value: 0 for state in AgentState}
        counts[BUSY_ELSEWHERE] = 0
        for a in q.members:
            elsewhere = a.state in BUSY and busy_in.get(a.agent_id, q.name) != q.name
            counts[BUSY_ELSEWHERE if elsewhere else a.state.value] += 1
        result.append({
            "name": q.name,
            "strategy": q.strategy,
            "waiting": len(rows),
            "longest_wait": max((round(now - r.arrived_at, 1) for r in rows), default=0.0),
            "callers": [{"entry": r.entry, "node": r.node, "caller": r.caller, "name": names(r.caller),
                         "position": i + 1, "wait": round(now - r.arrived_at, 1), "priority": r.priority,
                         "callback": r.callback}
                        for i, r in enumerate(rows)],
            "agents": counts,
            "service_rate": q.service_rate,
        })
    return result


def time_in_state(agent: Agent, now: float) -> float | None:
    """Seconds since the agent's last state change; None when they never had one (never logged
    in: `state_since` is 0, and 'now - 0' would be the time since 1970)."""
    if agent.state_since <= 0:
        return None
    return round(max(0.0, now - agent.state_since), 1)


def agent_board(agents: Iterable[Agent], calls: Mapping[str, QueueCall], held_by: Mapping[str, str | None],
                now: float, reachable: Callable[[str], bool] = lambda device: True,
                thresholds: Mapping[str, Thresholds] | None = None,
                queue_of: Mapping[str, str] | None = None) -> list[dict[str, object]]:
    """Every agent by id: state, phone, the node whose offer or call holds them, and the call
    they are on when it is this node's (`calls`).

    `reachable` says whether a logged-in agent's phone is registered (an agent on an unplugged
    phone is not "available" to anyone). `queue_of` names the queue whose call the agent is on
    (this node's or another's); its `thresholds` colour the time in state ("level")."""
    thresholds = thresholds or {}
    queue_of = queue_of or {}
    result: list[dict[str, object]] = []
    for a in sorted(agents, key=lambda a: a.agent_id):
        call = calls.get(a.agent_id)
        since = time_in_state(a, now)
        queue = queue_of.get(a.agent_id)
        logged_in = a.state is not AgentState.LOGGED_OUT and a.device is not None
        result.append({
            "agent": a.agent_id, "name": a.name, "state": a.state.value, "pause_reason": a.pause_reason,
            "device": a.device, "since": since, "calls_today": a.calls_today,
            "call": call.id if call is not None else None,
            "caller": call.a.caller.number if call is not None else None,
            "interaction": call.interaction_id if call is not None else None,
            "queue": queue,
            "campaign": (call.variables.get("campaign") or None) if call is not None else None,
            "reachable": reachable(a.device or "") if logged_in else None,
            "level": thresholds.get(queue or "", DEFAULT_THRESHOLDS).level(a.state.value, since),
            "skills": dict(a.skills),
            "held_by": held_by.get(a.agent_id),
        })
    return result
