"""Agent selection strategies: which of the available, eligible agents a queue rings.

Every strategy has the same signature, ``select(candidates, elapsed) -> list[str]``: the
candidates are already filtered (AVAILABLE and eligible for the caller's requirements), and
``elapsed`` is how long the caller's current offer round has lasted (only ring-progressively
uses it). The result is the agent ids to ring, in preference order; single-agent strategies
return one id, ring-all every id, and an empty list means nobody. Ties always break on the
configured order and then the agent id so decisions are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Candidate:
    """What a strategy may know about an agent (a record, not the Agent object)."""

    agent_id: str
    idle_since: float  # last call end or login time: smaller = idle longer
    calls_today: int
    talk_seconds: float
    order: int = 0  # configured position in the queue (linear, ring-progressively, round-robin)


def _order_key(c: Candidate) -> tuple[int, str]:
    return (c.order, c.agent_id)


class Strategy(Protocol):
    name: str
    multi: bool  # rings several agents per caller, and may add more while they ring

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        """Agent ids to ring, best first."""
        ...


class RingAll:
    name = "ring-all"
    multi = True

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        return [c.agent_id for c in sorted(candidates, key=_order_key)]


class LongestIdle:
    name = "longest-idle"
    multi = False

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        if not candidates:
            return []
        return [min(candidates, key=lambda c: (c.idle_since, c.order, c.agent_id)).agent_id]


class RoundRobin:
    """Round-robin with memory: the next agent after the last one picked, in configured order.

    The memory is the last pick's order key, so the rotation carries on correctly when that
    agent has since left the candidate list.
    """

    name = "round-robin"
    multi = False

    def __init__(self) -> None:
        self.last: tuple[int, str] | None = None

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        if not candidates:
            return []
        after = [c for c in candidates if self.last is None or _order_key(c) > self.last]
        chosen = min(after or candidates, key=_order_key)
        self.last = _order_key(chosen)
        return [chosen.agent_id]


class FewestCalls:
    name = "fewest-calls"
    multi = False

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        if not candidates:
            return []
        return [min(candidates, key=lambda c: (c.calls_today, c.idle_since, c.order, c.agent_id)).agent_id]


class LeastTalkTime:
    name = "least-talk-time"
    multi = False

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        if not candidates:
            return []
        return [min(candidates, key=lambda c: (c.talk_seconds, c.idle_since, c.order, c.agent_id)).agent_id]


class RandomPick:
    name = "random"
    multi = False

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        if not candidates:
            return []
        # Sort first so a given seed gives the same pick whatever order the caller passes.
        return [self.rng.choice(sorted(candidates, key=_order_key)).agent_id]


class Linear:
    """Top-down: always the first available agent in configured order."""

    name = "linear"
    multi = False

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        if not candidates:
            return []
        return [min(candidates, key=_order_key).agent_id]


class RingProgressively:
    """Ring the first agent in order, then add the next one every ``step_seconds``."""

    name = "ring-progressively"
    multi = True

    def __init__(self, step_seconds: float = 10.0) -> None:
        if step_seconds <= 0:
            raise ValueError(f"step_seconds must be > 0, got {step_seconds}")
        self.step_seconds = step_seconds

    def select(self, candidates: Sequence[Candidate], elapsed: float = 0.0) -> list[str]:
        count = 1 + int(max(0.0, elapsed) // self.step_seconds)
        return [c.agent_id for c in sorted(candidates, key=_order_key)[:count]]


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    cls.name: cls
    for cls in (RingAll, LongestIdle, RoundRobin, FewestCalls, LeastTalkTime, RandomPick, Linear, RingProgressively)
}


def make_strategy(name: str, **options: Any) -> Strategy:
    """A fresh strategy instance (one per queue: round-robin and random keep state)."""
    factory = STRATEGIES.get(name)
    if factory is None:
        raise ValueError(f"unknown queue strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}")
    return factory(**options)
