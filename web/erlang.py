"""Erlang C: how many agents a queue needs for a service-level target (pure functions).

The M/M/N queue with infinite patience (A. K. Erlang, 1917): calls arrive at random (Poisson), handle
times are exponential, nobody hangs up. It overstates the agents needed slightly when callers do
abandon, which is the safe side for a staffing plan, and it is what every call-centre planner and
published staffing table uses, so its answers can be checked against them.

Notation: A is the offered traffic in erlangs (calls per interval x AHT / interval length), N the
number of agents, AHT the average handle time in seconds, T the service-level threshold in seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_AGENTS = 10_000  # a search bound: no single queue interval needs more


def traffic_erlangs(calls: float, interval_s: float, aht_s: float) -> float:
    """Offered traffic A in erlangs: the average number of calls in progress."""
    if interval_s <= 0:
        raise ValueError(f"interval must be positive, got {interval_s}")
    if calls < 0 or aht_s < 0:
        raise ValueError("calls and AHT must not be negative")
    return calls * aht_s / interval_s


def erlang_b(agents: int, erlangs: float) -> float:
    """Blocking probability B(N, A), by the stable recurrence B(n) = A·B(n-1) / (n + A·B(n-1))."""
    if agents < 0 or erlangs < 0:
        raise ValueError("agents and traffic must not be negative")
    b = 1.0
    for n in range(1, agents + 1):
        b = erlangs * b / (n + erlangs * b)
    return b


def erlang_c(agents: int, erlangs: float) -> float:
    """Probability that a call waits, C(N, A); 1.0 when N <= A (the queue grows without bound)."""
    if erlangs == 0:
        return 0.0
    if agents <= erlangs:
        return 1.0
    b = erlang_b(agents, erlangs)
    return agents * b / (agents - erlangs * (1.0 - b))


def service_level(agents: int, erlangs: float, aht_s: float, target_s: float) -> float:
    """Fraction of calls answered within `target_s`: 1 - C(N, A)·exp(-(N - A)·T / AHT)."""
    if agents <= erlangs:
        return 0.0 if erlangs > 0 else 1.0
    if aht_s <= 0:
        return 1.0
    return 1.0 - erlang_c(agents, erlangs) * math.exp(-(agents - erlangs) * target_s / aht_s)


def asa(agents: int, erlangs: float, aht_s: float) -> float:
    """Average speed of answer in seconds, C(N, A)·AHT / (N - A); infinite when N <= A."""
    if erlangs == 0:
        return 0.0
    if agents <= erlangs:
        return math.inf
    return erlang_c(agents, erlangs) * aht_s / (agents - erlangs)


def occupancy(agents: int, erlangs: float) -> float:
    """Fraction of their time the agents spend handling calls, A / N (capped at 1)."""
    if agents <= 0:
        return 1.0 if erlangs > 0 else 0.0
    return min(1.0, erlangs / agents)


def agents_needed(erlangs: float, aht_s: float, target_sl: float, target_s: float,
                  max_occupancy: float = 1.0) -> int:
    """The fewest agents that reach `target_sl` (a fraction, 0.8 for 80 %) within `target_s`
    seconds and keep occupancy at or below `max_occupancy`; 0 for no traffic."""
    if not 0.0 < target_sl < 1.0:
        raise ValueError(f"target service level must be between 0 and 1 (exclusive), got {target_sl}")
    if not 0.0 < max_occupancy <= 1.0:
        raise ValueError(f"maximum occupancy must be in (0, 1], got {max_occupancy}")
    if erlangs <= 0:
        return 0
    n = max(1, math.floor(erlangs) + 1)  # fewer than A agents never catch up
    while n <= MAX_AGENTS:
        if occupancy(n, erlangs) <= max_occupancy and service_level(n, erlangs, aht_s, target_s) >= target_sl:
            return n
        n += 1
    raise ValueError(f"more than {MAX_AGENTS} agents needed for {erlangs:.1f} erlangs")


@dataclass(frozen=True)
class Staffing:
    """What an interval needs: agents, and the service they give."""

    calls: float
    aht_s: float
    erlangs: float
    agents: int
    service_level: float  # fraction
    asa_s: float
    occupancy: float  # fraction
    wait_probability: float


def plan(calls: float, interval_s: float, aht_s: float, target_sl: float, target_s: float,
         max_occupancy: float = 1.0) -> Staffing:
    """The staffing of one interval for `calls` offered with `aht_s` handle time."""
    a = traffic_erlangs(calls, interval_s, aht_s)
    n = agents_needed(a, aht_s, target_sl, target_s, max_occupancy)
    return Staffing(calls=calls, aht_s=aht_s, erlangs=a, agents=n,
                    service_level=service_level(n, a, aht_s, target_s) if n else 1.0,
                    asa_s=asa(n, a, aht_s) if n else 0.0, occupancy=occupancy(n, a) if n else 0.0,
                    wait_probability=erlang_c(n, a) if n else 0.0)
