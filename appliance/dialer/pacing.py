"""Pacing: how many calls a campaign places now, from measured answer and handle times.

Three dial modes (``campaign.MODES``):

* preview: never dials by itself; the agent reads the lead, then dials or skips.
* progressive: one call per free agent, less the calls already ringing: nobody is abandoned.
* predictive: more calls than free agents, so an agent finishing a call finds a caller already
  answered. The model is explicit: answers A among the calls in flight (each with the probability
  that a call which has rung ``r`` s without answer still answers) plus N new calls (each with the
  measured answer rate p) against agents K available within a horizon (free now, plus each busy
  agent with the probability, from the measured handle-time distribution, that a call already
  ``e`` s old ends within the horizon: the early answers' ring time plus the 2 s threshold). Both are
  Poisson-binomial, computed exactly. The expected abandons E[(A - K)+] must fit the abandon
  ledger's headroom at the aimed rate; N is the largest that does, within ``max_ratio`` calls per
  available agent.

Predictive falls back to progressive on a cold start (fewer than ``min_outcomes`` measured calls)
and when the ledger has no headroom. Every decision is logged and kept in a bounded history.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import enum
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.dialer.abandon import AbandonLedger

log = logging.getLogger(__name__)


class DialMode(enum.Enum):
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


@dataclass(frozen=True)
class DialerSnapshot:
    """What the campaign looks like now: its agents and its calls."""

    agents_free: int  # logged in, idle, ready for a call
    talking_elapsed_s: tuple[float, ...] = ()  # per agent talking: seconds since the call was connected
    wrapping_elapsed_s: tuple[float, ...] = ()  # per agent in wrap-up: seconds since the call ended
    ringing_elapsed_s: tuple[float, ...] = ()  # per call placed and not yet answered or failed: seconds ringing
    waiting: int = 0  # calls answered and holding for an agent (they abandon at the threshold)


@dataclass(frozen=True)
class PacingDecision:
    """One pacing decision and everything it was computed from."""

    at: float
    mode: DialMode
    calls_to_place: int
    reason: str
    agents_free: int
    agents_soon_free: float  # expected number of busy agents free within the horizon
    in_flight: int
    waiting: int
    outcomes: int  # measured calls behind the rates below
    answer_rate: float
    mean_answer_ring_s: float
    mean_no_answer_ring_s: float
    mean_handle_s: float
    horizon_s: float
    headroom: float  # abandons the ledger allows, at the aimed rate, for the answers expected
    expected_answers: float  # among the calls in flight, waiting, and the ones to place
    expected_abandons: float
    abandon_probability: float  # expected abandons / expected answers for this decision


class PacingStats:
    """Measured call outcomes and handle times over the last ``window`` of each (a sliding window).

    A window rather than all history, so a change of answer rate in the day shows within ``window``
    calls; 300 calls is a few minutes for a large campaign.
    """

    def __init__(self, window: int = 300, handle_window: int = 300) -> None:
        if window < 1 or handle_window < 1:
            raise ValueError("window and handle_window must be at least 1")
        self._outcomes: collections.deque[tuple[bool, float]] = collections.deque(maxlen=window)
        self._handles: collections.deque[tuple[float, float]] = collections.deque(maxlen=handle_window)
        self._answered = 0
        self._sorted: tuple[list[float], list[float], np.ndarray, np.ndarray] | None = None

    def record_attempt(self, answered: bool, ring_s: float) -> None:
        """One placed call's outcome: answered by a person after ``ring_s``, or not (no answer, busy, machine)."""
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0][0]:
            self._answered -= 1
        self._outcomes.append((answered, ring_s))
        self._answered += answered
        self._sorted = None

    def record_handle(self, talk_s: float, wrap_s: float) -> None:
        """One connected call's talk time and the agent's wrap-up time after it."""
        self._handles.append((talk_s, wrap_s))
        self._sorted = None

    @property
    def outcomes(self) -> int:
        return len(self._outcomes)

    @property
    def answer_rate(self) -> float:
        return self._answered / len(self._outcomes) if self._outcomes else 0.0

    def _samples(self) -> tuple[list[float], list[float], np.ndarray, np.ndarray]:
        if self._sorted is None:
            pairs = np.array(self._handles, float).reshape(-1, 2)
            self._sorted = (sorted(r for a, r in self._outcomes if a),
                            sorted(r for a, r in self._outcomes if not a),
                            pairs, np.sort(pairs[:, 1]))
        return self._sorted

    def mean_ring_s(self, answered: bool) -> float:
        rings = self._samples()[0 if answered else 1]
        return sum(rings) / len(rings) if rings else 0.0

    def answer_ring_quantile(self, q: float) -> float:
        """The q-quantile of the ring time of answered calls (0 with none measured)."""
        rings = self._samples()[0]
        return rings[min(len(rings) - 1, int(q * len(rings)))] if rings else 0.0

    @property
    def mean_handle_s(self) -> float:
        pairs = self._samples()[2]
        return float(pairs.sum(axis=1).mean()) if len(pairs) else 0.0

    def p_answer_after(self, rung_s: float) -> float:
        """P(a call answers | it has rung ``rung_s`` without answer): Bayes on the two ring-time samples."""
        answered, unanswered = self._samples()[:2]
        p = self.answer_rate
        s_a = (len(answered) - bisect.bisect_right(answered, rung_s)) / len(answered) if answered else 0.0
        s_n = (len(unanswered) - bisect.bisect_right(unanswered, rung_s)) / len(unanswered) if unanswered else 0.0
        alive = p * s_a + (1.0 - p) * s_n
        return p * s_a / alive if alive > 0 else 0.0

    def p_free_within(self, talking_s: np.ndarray, wrapping_s: np.ndarray, horizon_s: float) -> np.ndarray:
        """P(an agent is free within ``horizon_s``) per busy agent, from the measured talk and wrap-up times.

        Talking for e s: P(talk + wrap <= e + horizon | talk > e); in wrap-up for w s:
        P(wrap <= w + horizon | wrap > w). Beyond the longest time seen there is nothing to
        condition on: then a memoryless guess with the mean.
        """
        pairs, wraps = self._samples()[2:]
        if not len(pairs):
            return np.zeros(len(talking_s) + len(wrapping_s))
        talk, handle = pairs[:, 0], pairs.sum(axis=1)
        longer = (talk[None, :] > talking_s[:, None])
        done = longer & (handle[None, :] <= talking_s[:, None] + horizon_s)
        q_talk = _conditional(longer.sum(axis=1), done.sum(axis=1), horizon_s, float(handle.mean()))
        n = len(wraps)
        w_longer = n - np.searchsorted(wraps, wrapping_s, side="right")
        w_after = n - np.searchsorted(wraps, wrapping_s + horizon_s, side="right")
        q_wrap = _conditional(w_longer, w_longer - w_after, horizon_s, float(wraps.mean()))
        return np.concatenate((q_talk, q_wrap))


def _conditional(alive: np.ndarray, ended: np.ndarray, horizon_s: float, mean_s: float) -> np.ndarray:
    fallback = 1.0 - math.exp(-horizon_s / max(mean_s, 1e-9))
    return np.where(alive > 0, ended / np.maximum(alive, 1), fallback).astype(float)


def poisson_binomial_pmf(probs: np.ndarray) -> np.ndarray:
    """Exact pmf of a sum of independent Bernoulli(probs) (DFT of the characteristic function, Hong 2013)."""
    n = len(probs)
    if n == 0:
        return np.ones(1)
    omega = 2j * np.pi * np.arange(n + 1) / (n + 1)
    factors = 1.0 - probs[:, None] + probs[:, None] * np.exp(omega)[None, :]
    pmf = np.fft.fft(np.prod(factors, axis=0)).real / (n + 1)
    pmf = np.clip(pmf, 0.0, None)
    return pmf / pmf.sum()


def binomial_pmf(n: int, p: float) -> np.ndarray:
    """Exact Binomial(n, p) pmf (log-space, so large n neither overflows nor underflows the middle)."""
    if n == 0:
        return np.ones(1)
    if p <= 0.0 or p >= 1.0:
        out = np.zeros(n + 1)
        out[0 if p <= 0.0 else n] = 1.0
        return out
    k = np.arange(1, n + 1)
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(n - k + 1) - np.log(k))))
    ks = np.arange(n + 1)
    return np.exp(log_comb + ks * math.log(p) + (n - ks) * math.log1p(-p))


class Pacer:
    """Decides, from a snapshot of a campaign and its measurements, how many calls to place now."""

    def __init__(self, mode: DialMode, ledger: AbandonLedger, stats: PacingStats | None = None, *,
                 aim: float = 0.8, max_ratio: float = 3.0, min_outcomes: int = 50,
                 horizon_quantile: float = 0.1, max_lines: int | None = None, history: int = 1000,
                 burst: float = 2.0, name: str = "") -> None:
        if not 0.0 < aim <= 1.0:
            raise ValueError(f"aim: {aim} is not a fraction of the cap in (0, 1]")
        if max_ratio < 1.0:
            raise ValueError(f"max_ratio: {max_ratio} is below 1 call per agent")
        if min_outcomes < 1:
            raise ValueError(f"min_outcomes: {min_outcomes} is not at least 1")
        if burst < 1.0:
            raise ValueError(f"burst: {burst} is below 1 (the cap itself)")
        self.mode = mode
        self.ledger = ledger
        self.stats = stats if stats is not None else PacingStats()
        self.aim = aim  # pace for aim x cap, so chance alone rarely carries the window over the cap
        self.max_ratio = max_ratio
        self.min_outcomes = min_outcomes
        # A window with spare headroom (a quiet month) must not be spent in one go: no single
        # decision may expect more than burst x cap of its answers to be abandoned, so abandons
        # stay spread out instead of arriving in bursts a regulator's complaint line would notice.
        self.burst = burst
        self.horizon_quantile = horizon_quantile
        self.max_lines = max_lines
        self.name = name
        self.history: collections.deque[PacingDecision] = collections.deque(maxlen=history)
        self.decisions = 0

    def decide(self, now: float, snap: DialerSnapshot) -> PacingDecision:
        """The number of calls to place now and why; logged and kept in ``history``."""
        stats = self.stats
        in_flight = len(snap.ringing_elapsed_s)
        progressive = max(0, snap.agents_free - in_flight - snap.waiting)
        ring_a = stats.mean_ring_s(True)
        # An agent counts as available if it frees before the soonest likely answer plus the threshold.
        # The static model cannot see that a call answered early finds an agent who frees late, so it
        # is credited only for the early part of the ring (measured: a horizon of the mean ring time,
        # ~11 s, held 20 agents at 79 % occupancy, the 10th percentile, ~6.5 s, at 81-82 %, both at 2.4 %
        # abandons).
        horizon = stats.answer_ring_quantile(self.horizon_quantile) + self.ledger.threshold_s
        base: dict[str, Any] = dict(at=now, mode=self.mode, agents_free=snap.agents_free, in_flight=in_flight,
                    waiting=snap.waiting, outcomes=stats.outcomes, answer_rate=stats.answer_rate,
                    mean_answer_ring_s=ring_a, mean_no_answer_ring_s=stats.mean_ring_s(False),
                    mean_handle_s=stats.mean_handle_s, horizon_s=horizon)
        if self.mode is DialMode.PREVIEW:
            decision = PacingDecision(calls_to_place=0, reason="preview: the agent places each call",
                                      agents_soon_free=0.0, headroom=0.0, expected_answers=0.0,
                                      expected_abandons=0.0, abandon_probability=0.0, **base)
        elif self.mode is DialMode.PROGRESSIVE:
            decision = self._progressive(progressive, "progressive: one call per free agent", base)
        elif stats.outcomes < self.min_outcomes:
            decision = self._progressive(
                progressive, f"cold start: {stats.outcomes} < {self.min_outcomes} outcomes, progressive", base)
        else:
            decision = self._predictive(now, snap, progressive, horizon, base)
        if self.max_lines is not None and in_flight + decision.calls_to_place > self.max_lines:
            decision = _replace(decision, max(0, self.max_lines - in_flight), f"{decision.reason}; line limit")
        self.history.append(decision)
        self.decisions += 1
        log.info("pacing %s %s: place %d (%s) free=%d soon=%.2f ringing=%d waiting=%d p=%.3f n=%d "
                 "handle=%.0fs headroom=%.2f answers=%.2f abandons=%.3f P(abandon)=%.4f",
                 self.name, self.mode.value, decision.calls_to_place, decision.reason, decision.agents_free,
                 decision.agents_soon_free, in_flight, snap.waiting, decision.answer_rate, decision.outcomes,
                 decision.mean_handle_s, decision.headroom, decision.expected_answers,
                 decision.expected_abandons, decision.abandon_probability)
        return decision

    def _progressive(self, n: int, reason: str, base: dict[str, Any]) -> PacingDecision:
        # 1:1 means every answered call has an agent kept for it: expected abandons are 0.
        return PacingDecision(calls_to_place=n, reason=reason, agents_soon_free=0.0, headroom=0.0,
                              expected_answers=0.0, expected_abandons=0.0, abandon_probability=0.0, **base)

    def _predictive(self, now: float, snap: DialerSnapshot, progressive: int, horizon: float,
                    base: dict[str, Any]) -> PacingDecision:
        stats = self.stats
        p = stats.answer_rate
        q_agents = stats.p_free_within(np.asarray(snap.talking_elapsed_s, float),
                                       np.asarray(snap.wrapping_elapsed_s, float), horizon)
        soon = float(q_agents.sum())
        p_ringing = np.array([stats.p_answer_after(r) for r in snap.ringing_elapsed_s], float)
        # Y = answers among calls already placed (those waiting answer for sure) - agents available.
        pmf_k = poisson_binomial_pmf(q_agents)  # busy agents freeing; K = agents_free + this
        pmf_x = poisson_binomial_pmf(p_ringing)
        pmf_y = np.convolve(pmf_x, pmf_k[::-1])  # index i <-> y = i - (len(pmf_k) - 1) + waiting - free
        y_offset = snap.waiting - snap.agents_free - (len(pmf_k) - 1)
        in_flight = len(p_ringing)
        placed_answers = snap.waiting + float(p_ringing.sum())
        ratio_cap = math.floor(self.max_ratio * (snap.agents_free + soon) + 1e-9) - in_flight - snap.waiting
        n_max = max(progressive, ratio_cap)
        target = self.aim * self.ledger.cap
        ys = np.arange(len(pmf_y)) + y_offset

        # g[b] = E[(b + Y)+]: abandons if the new calls bring b answers.
        g = np.clip(np.add.outer(np.arange(n_max + 1), ys), 0, None) @ pmf_y

        def expected_abandons(n: int) -> float:
            # E[(B + Y)+] with B ~ Binomial(n, p) the new calls' answers, independent of Y.
            return float(binomial_pmf(n, p) @ g[:n + 1])

        def slack(n: int) -> tuple[float, float, float]:
            answers = placed_answers + n * p
            abandons = expected_abandons(n)
            return self.ledger.headroom(now, answers, target) - abandons, answers, abandons

        s, answers, abandons = slack(progressive)
        room = s + abandons
        if s < 0 or p <= 0.0:
            why = "no headroom" if s < 0 else "no answers measured"
            n, reason = progressive, f"{why}: progressive"
        else:
            # slack(n) is concave (abandons convex in n, headroom linear), so the n with slack >= 0
            # from `progressive` up form an interval: bisect for its end.
            burst_cap = self.burst * self.ledger.cap

            def fits(n: int) -> bool:
                room_left, n_answers, n_abandons = slack(n)
                return room_left >= 0 and n_abandons <= burst_cap * n_answers

            lo, hi = progressive, n_max
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid - 1
            n = lo
            s, answers, abandons = slack(n)
            room = s + abandons
            reason = "predictive: ratio limit" if n == n_max and n > progressive else "predictive"
        return PacingDecision(calls_to_place=n, reason=reason, agents_soon_free=soon, headroom=room,
                              expected_answers=answers, expected_abandons=abandons,
                              abandon_probability=abandons / answers if answers > 0 else 0.0, **base)


def _replace(d: PacingDecision, n: int, reason: str) -> PacingDecision:
    return dataclasses.replace(d, calls_to_place=n, reason=reason)
