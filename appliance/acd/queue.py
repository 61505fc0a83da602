"""A call queue: its waiting callers, the decision of which agent to offer each one, expected wait.

Callers are served by priority (a higher number is more urgent), then by arrival. The decision
is pure bookkeeping: ``next_assignment`` says which agents to ring for which callers and records
the offers on the queue entries; the engine then sends ``Offer`` to each agent and reports back
with ``offer_ended`` (no answer, cancelled) or ``answered``.

Expected wait uses the live service rate over a sliding window (not a stored average)::

    T   = min(service_window, now - created_at)          window length actually observed, s
    A   = calls answered in (now - T, now]
    N_w = distinct agents who answered those calls
    r   = A / (N_w * T / 60)                              calls per agent per minute
    expected_wait(position) = 60 * position / (r * N_staffed)   seconds

where ``N_staffed`` is the number of agents currently serving the queue (logged in and not
paused; the caller passes it). With no answer in the window the rate is unknown and the
expected wait is ``None`` (announce the position only).
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from appliance.acd.agent import Agent, AgentState
from appliance.acd.skills import Requirement, SkillRequirements, eligible
from appliance.acd.strategies import Candidate, Strategy, make_strategy

UNORDERED = 1_000_000  # configured order of an agent the queue's member list does not name


class UnknownEntry(KeyError):
    """No caller with that entry id is waiting in this queue."""


@dataclass
class QueueEntry:
    """One waiting caller."""

    entry_id: str
    caller_id: str
    priority: int
    entered_at: float
    seq: int
    ringing: set[str] = field(default_factory=set)  # agents currently offered this caller
    offer_started: float | None = None  # start of the current offer round

    @property
    def sort_key(self) -> tuple[int, float, int]:
        return (-self.priority, self.entered_at, self.seq)


@dataclass(frozen=True)
class Assignment:
    """Ring ``agent_ids`` (newly offered, best first) for the caller of ``entry_id``."""

    entry_id: str
    caller_id: str
    agent_ids: tuple[str, ...]
    requirements: tuple[Requirement, ...]


class CallQueue:
    """Waiting list, offer decisions and service-rate statistics of one queue."""

    def __init__(
        self,
        name: str,
        strategy: Strategy | str = "longest-idle",
        requirements: SkillRequirements | None = None,
        member_order: Mapping[str, int] | None = None,
        service_window: float = 900.0,
        created_at: float = 0.0,
    ) -> None:
        self.name = name
        self.strategy: Strategy = make_strategy(strategy) if isinstance(strategy, str) else strategy
        self.requirements = requirements if requirements is not None else SkillRequirements()
        self.member_order = dict(member_order or {})
        if service_window <= 0:
            raise ValueError(f"queue {name}: service_window must be > 0, got {service_window}")
        self.service_window = service_window
        self.created_at = created_at
        self._keys: list[tuple[int, float, int]] = []
        self._entries: list[QueueEntry] = []
        self._by_id: dict[str, QueueEntry] = {}
        self._seq = itertools.count()
        self._answers: deque[tuple[float, str]] = deque()

    # -- waiting list ---------------------------------------------------------------------
    def join(self, caller_id: str, now: float, priority: int = 0, entry_id: str | None = None) -> QueueEntry:
        """Add a caller; returns its entry (``entry_id`` defaults to a queue-unique one)."""
        seq = next(self._seq)
        entry_id = entry_id if entry_id is not None else f"{self.name}-{seq}"
        if entry_id in self._by_id:
            raise ValueError(f"queue {self.name}: entry {entry_id} is already waiting")
        entry = QueueEntry(entry_id, caller_id, priority, now, seq)
        index = bisect.bisect(self._keys, entry.sort_key)
        self._keys.insert(index, entry.sort_key)
        self._entries.insert(index, entry)
        self._by_id[entry_id] = entry
        return entry

    def leave(self, entry_id: str) -> QueueEntry:
        """Remove a caller (abandon, timeout, overflow or answered)."""
        entry = self._get(entry_id)
        index = bisect.bisect_left(self._keys, entry.sort_key)
        del self._keys[index]
        del self._entries[index]
        del self._by_id[entry_id]
        return entry

    def entries(self) -> list[QueueEntry]:
        """Waiting callers in service order."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def position(self, entry_id: str) -> int:
        """1-based position of a waiting caller."""
        return bisect.bisect_left(self._keys, self._get(entry_id).sort_key) + 1

    def _get(self, entry_id: str) -> QueueEntry:
        entry = self._by_id.get(entry_id)
        if entry is None:
            raise UnknownEntry(f"queue {self.name}: no waiting entry {entry_id}")
        return entry

    # -- offers -------------------------------------------------------------------------------
    def next_assignment(self, agents: Iterable[Agent], now: float, exclude: Collection[str] = (),
                        held: Collection[str] = ()) -> list[Assignment]:
        """Decide which AVAILABLE, eligible agents to offer which waiting callers, head first.

        Each caller's requirements are escalated by its own wait. No agent appears twice, nor
        is an agent offered while ringing for another caller of this queue; pass ``exclude``
        to share one decision round across queues. Callers in ``held`` (entry ids) are not
        offered this round (they wait behind another node's caller). The offers are recorded
        on the entries.
        """
        ringing_here = {agent_id for entry in self._entries for agent_id in entry.ringing}
        available = [
            a
            for a in agents
            if a.state is AgentState.AVAILABLE and a.agent_id not in exclude and a.agent_id not in ringing_here
        ]
        if not available:
            return []
        multi = self.strategy.multi
        by_id = {a.agent_id: a for a in available} if multi else {}
        pools: dict[tuple[Requirement, ...], list[Agent]] = {}
        used: set[str] = set()
        result: list[Assignment] = []
        for entry in self._entries:
            if len(used) >= len(available):
                break
            if entry.ringing and not multi:
                continue  # one agent at a time: wait for this offer's outcome
            if entry.entry_id in held:
                continue
            reqs = self.requirements.requirements_at(now - entry.entered_at)
            pool = pools.get(reqs)
            if pool is None:
                pool = pools[reqs] = [a for a in available if eligible(a.skills, reqs)]
            candidates = [self._candidate(a) for a in pool if a.agent_id not in used]
            if multi:
                # Ring-all / ring-progressively return the set that should be ringing now:
                # include the agents already ringing for this caller so the count is right.
                candidates += [self._ringing_candidate(agent_id, by_id) for agent_id in entry.ringing]
            if not candidates:
                continue
            elapsed = now - entry.offer_started if entry.offer_started is not None else 0.0
            picked = [i for i in self.strategy.select(candidates, elapsed) if i not in entry.ringing]
            if not picked:
                continue
            used.update(picked)
            entry.ringing.update(picked)
            if entry.offer_started is None:
                entry.offer_started = now
            result.append(Assignment(entry.entry_id, entry.caller_id, tuple(picked), reqs))
        return result

    def _candidate(self, agent: Agent) -> Candidate:
        return agent.candidate(self.member_order.get(agent.agent_id, UNORDERED))

    def _ringing_candidate(self, agent_id: str, by_id: Mapping[str, Agent]) -> Candidate:
        agent = by_id.get(agent_id)
        if agent is not None:
            return self._candidate(agent)
        return Candidate(agent_id, 0.0, 0, 0.0, self.member_order.get(agent_id, UNORDERED))

    def offer_ended(self, entry_id: str, agent_id: str) -> None:
        """An offer to ``agent_id`` ended unanswered; the caller keeps its place."""
        entry = self._by_id.get(entry_id)
        if entry is None:
            return  # the caller already left: nothing to undo
        entry.ringing.discard(agent_id)
        if not entry.ringing:
            entry.offer_started = None

    def answered(self, entry_id: str, agent_id: str, now: float) -> tuple[QueueEntry, set[str]]:
        """The caller was answered by ``agent_id``: remove it and count the answer.

        Returns the entry and the other agents still ringing for it (cancel their offers).
        """
        entry = self.leave(entry_id)
        self._answers.append((now, agent_id))
        others = entry.ringing - {agent_id}
        entry.ringing.clear()
        return entry, others

    # -- statistics -------------------------------------------------------------------------
    def service_rate(self, now: float) -> float | None:
        """Calls answered per agent per minute over the sliding window, or None if unknown."""
        span = min(self.service_window, now - self.created_at)
        while self._answers and self._answers[0][0] <= now - self.service_window:
            self._answers.popleft()
        if span <= 0:
            return None
        recent = [agent_id for t, agent_id in self._answers if t > now - span]
        if not recent:
            return None
        return len(recent) / (len(set(recent)) * span / 60.0)

    def expected_wait(self, position: int, staffed_agents: int, now: float) -> float | None:
        """Seconds the caller at ``position`` can expect to wait (module docstring formula)."""
        rate = self.service_rate(now)
        if rate is None or staffed_agents <= 0:
            return None
        return 60.0 * position / (rate * staffed_agents)
