"""The agent roster at run time: who is logged in on which phone, in which state, since when.

Every state change goes through `apply`, which runs the agent's state machine
(`appliance.acd.agent`), persists the new state (so a restart, even after kill -9, finds
agents where they were) and writes the queue-log events reports need. `reconcile` is the
"never stuck" guarantee: an agent on a call that no longer exists, ringing for an offer
nobody tracks, or in wrap-up past its timer is put right, at start-up and every few seconds.

The roster is one node's view of the site's agents (issue 14, "one logical ACD"): the rows are
the truth, `refresh` takes the changes other nodes made (an agent logged in on another engine,
ringing or talking there), and `hold` reserves an agent in the store before this node rings them
(appliance/store/acd_site.py), so no two nodes ever offer one agent two calls. `reconcile`
repairs only the agents this node holds, or nobody does: another node's call is not ours to end.
On one box (SQLite) the same path runs with one node.
"""
from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Callable, Collection

from appliance.acd.agent import (
    Agent,
    AgentEvent,
    AgentState,
    CallEnded,
    IllegalTransition,
    Login,
    Logout,
    OfferCancelled,
    Pause,
    Unpause,
    WrapUpDone,
)
from appliance.acd.skills import parse_skills
from appliance.schema.settings import PAUSE_REASONS
from appliance.store import acd as acd_store
from appliance.store import acd_site, queue_log
from appliance.store.db import Store
from appliance.store.models import AgentConfig, AgentStatus

log = logging.getLogger("plateau.acd")


class AgentError(Exception):
    """An agent request that cannot be honoured; `status` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AgentRoster:
    """Agents (state machines) keyed by id, with persistence and the queue log."""

    def __init__(self, store: Store, clock: Callable[[], float], node: str = "local") -> None:
        self.store = store
        self.clock = clock
        self.node = node  # this engine's name on the site: who holds an agent it rings
        self.agents: dict[str, Agent] = {}
        self.held_by: dict[str, str | None] = {}  # agent id -> the node holding them, as last read
        self.on_available: Callable[[Agent], None] = lambda agent: None
        self._day: dt.date | None = None  # the local day calls_today counts

    # -- configuration -------------------------------------------------------------------
    def load(self, configs: list[AgentConfig]) -> None:
        """Take a configuration snapshot; agents keep their state, removed agents are dropped."""
        known = {c.agent_id for c in configs}
        for agent_id in list(self.agents):
            if agent_id not in known:
                del self.agents[agent_id]
        for cfg in configs:
            agent = self.agents.get(cfg.agent_id)
            if agent is None:
                agent = self.agents[cfg.agent_id] = Agent(cfg.agent_id, cfg.name, cfg.pin)
            agent.name, agent.pin = cfg.name, cfg.pin
            agent.skills = parse_skills(cfg.skills)
            agent.max_no_answer, agent.ring_timeout = cfg.max_no_answer, float(cfg.ring_timeout)
            if not cfg.enabled and agent.state is not AgentState.LOGGED_OUT:
                self.apply(agent, Logout())

    def restore(self) -> None:
        """Start-up: put every agent back in its persisted state, then reconcile with the calls that
        exist now (none, after a restart: an agent who was on a call goes to wrap-up). Today's
        answered calls come from the queue log, so the board's "calls today" survives a restart."""
        now = self.clock()
        self.count_calls_today(now)
        for agent_id, status in acd_site.agents(self.store).items():
            agent = self.agents.get(agent_id)
            if agent is None:
                continue
            self.held_by[agent_id] = status.held_by
            agent.state = AgentState(status.state)
            agent.pause_reason = status.pause_reason
            agent.device = status.device
            agent.state_since = agent.idle_since = status.since
            if agent.state is AgentState.WRAP_UP:
                agent.wrapup_until = now  # its timer died with the old process: end it now
            if agent.state is not AgentState.LOGGED_OUT:
                log.info("agent %s restored %s on %s", agent_id, agent.state.value, agent.device)
        self.reconcile(on_call=(), offered=())

    def count_calls_today(self, now: float) -> None:
        """Each agent's answered calls since local midnight, as the queue log counts them.

        The log outlives the engine and holds every node's calls, so after a restart (issue 15:
        "calls today" was 0 while the queue said answered 1) and on a site the count is the
        site's. A new day starts from the log's count (0 at midnight); within a day the count
        never goes down, since this node's latest answers may still wait in the deferred writes."""
        day = dt.date.fromtimestamp(now)
        midnight = dt.datetime.combine(day, dt.time()).timestamp()
        try:
            answered = queue_log.answered_by_agent(self.store, midnight)
        except self.store.db_error as exc:
            log.warning("queue log unreadable, keeping the calls counted here: %s", exc)
            return
        new_day = day != self._day
        self._day = day
        for agent in self.agents.values():
            logged = answered.get(agent.agent_id, 0)
            agent.calls_today = logged if new_day else max(agent.calls_today, logged)

    # -- the site ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Take what other nodes changed in the site's agent rows. An agent this node holds keeps
        its state here (this node wrote it, and its timers are here); while the store is refusing
        writes or reads, the memory is the newest there is and stays."""
        if len(self.store.deferred):
            return
        try:
            rows = acd_site.agents(self.store)
        except self.store.db_error as exc:
            log.warning("agent rows unreadable, keeping this node's view: %s", exc)
            return
        for agent_id, row in rows.items():
            agent = self.agents.get(agent_id)
            if agent is None:
                continue
            self.held_by[agent_id] = row.held_by
            state = AgentState(row.state)
            if row.held_by == self.node or (state, row.pause_reason, row.device) == (
                    agent.state, agent.pause_reason, agent.device):
                continue
            log.info("agent %s: %s -> %s (site)", agent_id, agent.state.value, state.value)
            agent.state, agent.pause_reason, agent.device = state, row.pause_reason, row.device
            agent.state_since = row.since
            agent.call_id = row.held_entry
            agent.wrapup_until = None
            if state is AgentState.AVAILABLE:
                agent.idle_since = row.since
                self.on_available(agent)

    def hold(self, agent: Agent, entry: str) -> bool:
        """Reserve `agent` in the store for this node's `entry` before ringing them; False if
        another node has them (or the row says they are not available). On one box (SQLite)
        whose writes are deferred this node is the only writer and its memory decides."""
        if not self.store.shared and len(self.store.deferred):
            return agent.state is AgentState.AVAILABLE
        try:
            held = acd_site.reserve(self.store, agent.agent_id, self.node, entry, self.clock())
        except self.store.db_error as exc:
            log.warning("agent %s: cannot reserve (%s)", agent.agent_id, exc)
            return not self.store.shared and agent.state is AgentState.AVAILABLE
        if held:
            self.held_by[agent.agent_id] = self.node
        return held

    def release(self, agent: Agent) -> None:
        """Give back this node's hold on `agent` when the offer did not start after all."""
        if self.held_by.get(agent.agent_id) == self.node and agent.state is AgentState.AVAILABLE:
            try:
                acd_site.release(self.store, agent.agent_id, self.node)
            except self.store.db_error as exc:  # the hold ages out (acd_site.reclaim_stale)
                log.warning("agent %s: hold not released: %s", agent.agent_id, exc)
            self.held_by[agent.agent_id] = None

    def keep_holds(self, now: float) -> None:
        """Touch this node's holds (its offers and calls live) and free the agents of a node that
        stopped touching its own: a hold is never leaked (appliance/store/acd_site.py)."""
        try:
            engaged = [a.agent_id for a in self.agents.values()
                       if self.held_by.get(a.agent_id) == self.node and a.state.value in acd_store.ENGAGED_STATES]
            acd_site.touch(self.store, self.node, engaged, now)
            for agent_id in acd_site.reclaim_stale(self.store, self.node, now):
                log.warning("agent %s: freed from a node that stopped holding them", agent_id)
        except self.store.db_error as exc:
            log.warning("agent holds not kept: %s", exc)

    def ours(self, agent: Agent) -> bool:
        """This node holds the agent, or nobody does: its repairs are ours to make."""
        return self.held_by.get(agent.agent_id) in (None, self.node)

    # -- requests from phones and the API ----------------------------------------------------
    def get(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise AgentError(404, f"no agent {agent_id}")
        return agent

    def at_device(self, device: str) -> Agent | None:
        """The agent logged in on `device` (an extension number), if any."""
        return next((a for a in self.agents.values()
                     if a.device == device and a.state is not AgentState.LOGGED_OUT), None)

    def login(self, agent_id: str, pin: str | None, device: str) -> Agent:
        """Log `agent_id` in on `device`; `pin` None skips the check (the admin API does)."""
        self.refresh()  # the agent, or another on this phone, may be logged in on another node
        agent = self.agents.get(agent_id)
        if agent is None or (pin is not None and not hmac.compare_digest(agent.pin, pin)):
            raise AgentError(403, "wrong agent number or PIN")  # same answer for both: no enumeration
        other = self.at_device(device)
        if other is not None and other is not agent:
            raise AgentError(409, f"agent {other.agent_id} is already logged in on {device}")
        if agent.state is not AgentState.LOGGED_OUT:
            if agent.device == device:
                return agent
            if agent.state in (AgentState.RINGING, AgentState.ON_CALL):
                raise AgentError(409, f"agent {agent_id} is on a call on {agent.device}")
            self.apply(agent, Logout())  # moving desks: log out of the old phone first
        self.apply(agent, Login(device))
        return agent

    def logout(self, agent_id: str) -> Agent:
        self.refresh()
        agent = self.get(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            self.apply(agent, Logout())
        return agent

    def pause(self, agent_id: str, reason: str) -> Agent:
        self.refresh()
        agent = self.get(agent_id)
        if agent.state not in (AgentState.AVAILABLE, AgentState.WRAP_UP, AgentState.PAUSED):
            raise AgentError(409, f"agent {agent_id} is {agent.state.value}: cannot pause now")
        self.apply(agent, Pause(PAUSE_REASONS.get(reason, reason) or "break"))
        return agent

    def unpause(self, agent_id: str) -> Agent:
        self.refresh()
        agent = self.get(agent_id)
        if agent.state is AgentState.WRAP_UP:
            self.apply(agent, WrapUpDone())  # "ready" also ends wrap-up early
        elif agent.state is AgentState.PAUSED:
            self.apply(agent, Unpause())
        elif agent.state is not AgentState.AVAILABLE:
            raise AgentError(409, f"agent {agent_id} is {agent.state.value}")
        return agent

    # -- the one place states change -------------------------------------------------------
    def apply(self, agent: Agent, event: AgentEvent) -> AgentState:
        """Run `event` through the agent's state machine, persist, and log what reports need."""
        before, reason_before = agent.state, agent.pause_reason
        now = self.clock()
        try:
            after = agent.handle(event, now)
        except IllegalTransition as exc:
            log.warning("%s", exc)
            return agent.state
        if after is before and agent.pause_reason == reason_before:
            return after
        if after.value not in acd_store.ENGAGED_STATES:
            self.held_by[agent.agent_id] = None  # the row's hold goes with this write
        acd_store.save_agent_status(self.store, AgentStatus(agent.agent_id, after.value, agent.pause_reason,
                                                            agent.device, agent.state_since))
        log.info("agent %s: %s -> %s%s", agent.agent_id, before.value, after.value,
                 f" ({agent.pause_reason})" if agent.pause_reason else "")
        self._log_transition(agent, before, after, now)
        if after is AgentState.AVAILABLE:
            self.on_available(agent)
        return after

    def _log_transition(self, agent: Agent, before: AgentState, after: AgentState, now: float) -> None:
        event = None
        data = ""
        if before is AgentState.LOGGED_OUT:
            event, data = "AGENT_LOGIN", agent.device or ""
        elif after is AgentState.LOGGED_OUT:
            event = "AGENT_LOGOUT"
        elif after is AgentState.PAUSED:
            event, data = "AGENT_PAUSE", agent.pause_reason or ""
        elif before is AgentState.PAUSED:
            event = "AGENT_UNPAUSE"
        if event is not None:
            queue_log.record(self.store, queue_log.QueueEvent(at=now, event=event, agent=agent.agent_id, data=data))

    # -- never stuck -------------------------------------------------------------------------
    def reconcile(self, on_call: Collection[str], offered: Collection[str]) -> None:
        """Repair states that contradict the calls and offers the engine actually has.

        `on_call` and `offered` are the ids of agents the engine has a live call or offer for.
        An agent another node holds is that node's to repair (or, once it stops touching its
        holds, `acd_site.reclaim_stale`'s).
        """
        now = self.clock()
        for agent in self.agents.values():
            if not self.ours(agent):
                continue
            if agent.state is AgentState.ON_CALL and agent.agent_id not in on_call:
                log.warning("agent %s was on %s, which no longer exists: wrap-up", agent.agent_id, agent.call_id)
                self.apply(agent, CallEnded(0.0))
            elif agent.state is AgentState.RINGING and agent.agent_id not in offered:
                log.warning("agent %s was ringing for an offer that no longer exists", agent.agent_id)
                self.apply(agent, OfferCancelled())
            elif agent.state is AgentState.WRAP_UP and (agent.wrapup_until is None or now >= agent.wrapup_until):
                self.apply(agent, WrapUpDone())
