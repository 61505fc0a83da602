"""A discrete-event simulator of a dialling shift, to test and measure pacing offline.

Agents are logged in for the whole shift. Each placed call's fate is drawn when it is placed: a
person answers with the answer rate of that hour (``answer_schedule``) after a ring time (3 s plus
a gamma delay), or it fails fast (busy, unreachable) or rings to the no-answer timeout. An answered
call takes the longest-idle free agent; with none free it holds for the abandon threshold (2 s)
for an agent finishing wrap-up, and is abandoned (it would hear the recorded message) if none does.
Talk times are lognormal, wrap-up uniform. In preview mode each agent reads the lead (10-20 s),
dials it and waits for that call's outcome. The pacer is asked every ``pace_interval_s`` and its
calls are placed at once; its measurements come only from what the simulated calls did.
"""
from __future__ import annotations

import bisect
import collections
import enum
import heapq
import math
import random
from dataclasses import dataclass, field

from appliance.dialer.abandon import AbandonLedger
from appliance.dialer.pacing import DialerSnapshot, DialMode, Pacer, PacingStats


@dataclass(frozen=True)
class ShiftConfig:
    """One simulated shift: its agents, its leads' behaviour, and the campaign's pacing settings."""

    mode: DialMode = DialMode.PREDICTIVE
    agents: int = 20
    hours: float = 8.0
    # (from second into the shift, P(a person answers)); the first entry must start at 0.
    answer_schedule: tuple[tuple[float, float], ...] = ((0.0, 0.3),)
    ring_min_s: float = 3.0  # answered calls: ring_min_s + gamma(ring_shape, ring_scale_s)
    ring_shape: float = 2.0
    ring_scale_s: float = 3.0
    no_answer_timeout_s: float = 25.0  # 16 CFR 310.4(b)(4)(ii): ring at least 15 s before giving up
    fail_fraction: float = 0.2  # unanswered calls that fail fast (busy, unreachable) after 1-4 s
    talk_median_s: float = 120.0
    talk_sigma: float = 0.8
    wrap_s: tuple[float, float] = (10.0, 30.0)
    preview_s: tuple[float, float] = (10.0, 20.0)
    abandon_threshold_s: float = 2.0
    cap: float = 0.03
    aim: float = 0.8
    max_ratio: float = 3.0
    min_outcomes: int = 50
    pace_interval_s: float = 1.0
    seed: int = 1


@dataclass(frozen=True)
class ShiftResult:
    mode: DialMode
    agents: int
    hours: float
    occupancy: float  # talk + wrap-up time / logged-in time
    abandon_rate: float  # abandoned / answered
    placed: int
    answered: int
    abandoned: int
    connects: int
    connects_per_agent_hour: float
    decisions: int  # pacing decisions made (each logged)


class _Agent(enum.Enum):
    FREE = "free"
    PREVIEW = "preview"
    DIALING = "dialing"  # preview: waiting for the outcome of the call it placed
    TALK = "talk"
    WRAP = "wrap"


@dataclass
class _Call:
    placed: float
    answers: bool
    ring_s: float
    agent: int | None = None  # preview: the agent who dialled it
    answered_at: float = 0.0


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    target: int = field(compare=False, default=0)  # a call id or an agent index, by kind


class ShiftSimulator:
    """Runs one shift; ``run()`` returns its figures."""

    def __init__(self, config: ShiftConfig) -> None:
        if not config.answer_schedule or config.answer_schedule[0][0] != 0.0:
            raise ValueError("answer_schedule must start at second 0")
        if config.agents < 1:
            raise ValueError(f"agents: {config.agents} is not at least 1")
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.end = config.hours * 3600.0
        self.ledger = AbandonLedger(config.cap, max(self.end, 60.0) + 3600.0,
                                    threshold_s=config.abandon_threshold_s)
        self.pacer = Pacer(config.mode, self.ledger, PacingStats(), aim=config.aim, max_ratio=config.max_ratio,
                           min_outcomes=config.min_outcomes, history=100, name=f"sim-{config.seed}")
        self._events: list[_Event] = []
        self._seq = 0
        self.state = [_Agent.FREE] * config.agents
        self.busy_since = [0.0] * config.agents
        self.wrap_since = [0.0] * config.agents
        self.free: collections.deque[int] = collections.deque(range(config.agents))
        self.ringing: set[int] = set()  # ids of calls ringing
        self.calls: dict[int, _Call] = {}
        self.waiting: collections.deque[int] = collections.deque()  # answered calls holding for an agent
        self.busy_time = 0.0
        self.placed = self.answered = self.abandoned = self.connects = 0
        self._switch_times = [t for t, _ in config.answer_schedule]

    def answer_rate(self, now: float) -> float:
        i = bisect.bisect_right(self._switch_times, now) - 1
        return self.cfg.answer_schedule[i][1]

    def run(self) -> ShiftResult:
        cfg = self.cfg
        if cfg.mode is DialMode.PREVIEW:
            for agent in range(cfg.agents):
                self._start_preview(agent, 0.0)
            self.free.clear()
        self._push(0.0, "pace")
        while self._events:
            ev = heapq.heappop(self._events)
            if ev.at > self.end:
                break
            getattr(self, f"_on_{ev.kind}")(ev.at, ev.target)
        for agent, state in enumerate(self.state):
            if state is _Agent.TALK or state is _Agent.WRAP:
                self.busy_time += self.end - self.busy_since[agent]
        hours = cfg.hours
        return ShiftResult(
            mode=cfg.mode, agents=cfg.agents, hours=hours,
            occupancy=self.busy_time / (cfg.agents * self.end),
            abandon_rate=self.abandoned / self.answered if self.answered else 0.0,
            placed=self.placed, answered=self.answered, abandoned=self.abandoned, connects=self.connects,
            connects_per_agent_hour=self.connects / (cfg.agents * hours), decisions=self.pacer.decisions)

    # --- events -----------------------------------------------------------------------------

    def _push(self, at: float, kind: str, target: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._events, _Event(at, self._seq, kind, target))

    def _on_pace(self, now: float, _: int) -> None:
        snap = DialerSnapshot(
            agents_free=len(self.free),
            talking_elapsed_s=tuple(now - self.busy_since[a] for a, s in enumerate(self.state) if s is _Agent.TALK),
            wrapping_elapsed_s=tuple(now - self.wrap_since[a] for a, s in enumerate(self.state) if s is _Agent.WRAP),
            ringing_elapsed_s=tuple(now - self.calls[c].placed for c in self.ringing),
            waiting=len(self.waiting))
        decision = self.pacer.decide(now, snap)
        for _ in range(decision.calls_to_place):
            self._place(now, None)
        self._push(now + self.cfg.pace_interval_s, "pace")

    def _place(self, now: float, agent: int | None) -> None:
        cfg, rng = self.cfg, self.rng
        answers = rng.random() < self.answer_rate(now)
        if answers:
            ring = cfg.ring_min_s + rng.gammavariate(cfg.ring_shape, cfg.ring_scale_s)
            ring = min(ring, cfg.no_answer_timeout_s)
        elif rng.random() < cfg.fail_fraction:
            ring = rng.uniform(1.0, 4.0)
        else:
            ring = cfg.no_answer_timeout_s
        self.placed += 1
        cid = self.placed
        self.calls[cid] = _Call(now, answers, ring, agent)
        self.ringing.add(cid)
        self._push(now + ring, "outcome", cid)

    def _on_outcome(self, now: float, cid: int) -> None:
        call = self.calls[cid]
        self.ringing.discard(cid)
        self.pacer.stats.record_attempt(call.answers, call.ring_s)
        if not call.answers:
            del self.calls[cid]
            if call.agent is not None:
                self._start_preview(call.agent, now)
            return
        self.answered += 1
        call.answered_at = now
        if call.agent is not None:
            self._connect(cid, call.agent, now)
        elif self.free:
            self._connect(cid, self.free.popleft(), now)
        else:
            self.waiting.append(cid)
            self._push(now + self.cfg.abandon_threshold_s, "threshold", cid)

    def _on_threshold(self, now: float, cid: int) -> None:
        if cid in self.calls and cid in self.waiting:
            self.waiting.remove(cid)
            del self.calls[cid]
            self.abandoned += 1
            self.ledger.record(now, abandoned=True)  # it hears the recorded message and is released

    def _connect(self, cid: int, agent: int, now: float) -> None:
        call = self.calls.pop(cid)
        self.ledger.record_answered(now, now - call.answered_at)
        self.connects += 1
        cfg = self.cfg
        talk = cfg.talk_median_s * math.exp(self.rng.gauss(0.0, cfg.talk_sigma))
        self.state[agent] = _Agent.TALK
        self.busy_since[agent] = now
        self._push(now + talk, "talk_end", agent)

    def _on_talk_end(self, now: float, agent: int) -> None:
        self.state[agent] = _Agent.WRAP
        self.wrap_since[agent] = now
        self._push(now + self.rng.uniform(*self.cfg.wrap_s), "wrap_end", agent)

    def _on_wrap_end(self, now: float, agent: int) -> None:
        self.pacer.stats.record_handle(self.wrap_since[agent] - self.busy_since[agent], now - self.wrap_since[agent])
        self.busy_time += min(now, self.end) - self.busy_since[agent]
        self.busy_since[agent] = now
        self._agent_free(agent, now)

    def _agent_free(self, agent: int, now: float) -> None:
        if self.cfg.mode is DialMode.PREVIEW:
            self._start_preview(agent, now)
        elif self.waiting:
            self._connect(self.waiting.popleft(), agent, now)
        else:
            self.state[agent] = _Agent.FREE
            self.free.append(agent)

    def _start_preview(self, agent: int, now: float) -> None:
        self.state[agent] = _Agent.PREVIEW
        self._push(now + self.rng.uniform(*self.cfg.preview_s), "preview_done", agent)

    def _on_preview_done(self, now: float, agent: int) -> None:
        self.state[agent] = _Agent.DIALING
        self._place(now, agent)


def simulate_shift(config: ShiftConfig) -> ShiftResult:
    """Simulate one shift (deterministic for a given config, seed included)."""
    return ShiftSimulator(config).run()
