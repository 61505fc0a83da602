"""The abandon-rate ledger: answered calls against abandoned ones over a rolling window.

A call is *abandoned* when a person answers it and no agent is connected within the threshold
(2 s). The US Telemarketing Sales Rule safe harbour (16 CFR 310.4(b)(4)(i)) allows at most 3 % of
the calls answered by a person to be abandoned, measured per campaign over a 30-day period;
Ofcom's persistent-misuse policy (UK) counts 3 % over 24 hours. Both are "abandoned / answered by
a live person", so machines detected by AMD are in neither count.

Memory is bounded: counts are kept per bucket (an hour for windows of a week or more, a minute
otherwise), so a 30-day ledger holds at most 721 buckets whatever the call volume. A bucket
leaves the window once all of it is older than the window, so the window is measured to within
one bucket.
"""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

FTC_WINDOW_S = 30 * 86400.0  # 16 CFR 310.4(b)(4)(i): "per campaign over a 30-day period"
OFCOM_WINDOW_S = 86400.0  # Ofcom persistent-misuse policy statement (2016): any 24-hour period
DEFAULT_CAP = 0.03
DEFAULT_THRESHOLD_S = 2.0  # 16 CFR 310.4(b)(1)(iv): connected to a sales representative within 2 s


@dataclass
class _Bucket:
    start: float
    answered: int = 0
    abandoned: int = 0


class AbandonLedger:
    """Answered and abandoned calls of one campaign over a rolling window (times in seconds)."""

    def __init__(self, cap: float = DEFAULT_CAP, window_s: float = FTC_WINDOW_S, *,
                 bucket_s: float | None = None, threshold_s: float = DEFAULT_THRESHOLD_S) -> None:
        if not 0.0 <= cap < 1.0:
            raise ValueError(f"cap: {cap} is not a fraction in [0, 1)")
        if window_s <= 0:
            raise ValueError(f"window_s: {window_s} is not a positive number of seconds")
        if bucket_s is None:
            bucket_s = 3600.0 if window_s >= 7 * 86400 else 60.0
        if not 0 < bucket_s <= window_s:
            raise ValueError(f"bucket_s: {bucket_s} is not in (0, window_s]")
        if threshold_s <= 0:
            raise ValueError(f"threshold_s: {threshold_s} is not a positive number of seconds")
        self.cap = cap
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.threshold_s = threshold_s
        self._buckets: collections.deque[_Bucket] = collections.deque()
        self._answered = 0
        self._abandoned = 0

    @classmethod
    def ftc(cls, cap: float = DEFAULT_CAP) -> AbandonLedger:
        """A ledger measured the FTC way: per campaign over 30 days, hourly buckets."""
        return cls(cap, FTC_WINDOW_S)

    @classmethod
    def ofcom(cls, cap: float = DEFAULT_CAP) -> AbandonLedger:
        """A ledger measured the Ofcom way: over 24 hours, minute buckets."""
        return cls(cap, OFCOM_WINDOW_S)

    @property
    def max_buckets(self) -> int:
        """The most buckets the ledger ever holds (its memory bound)."""
        return math.ceil(self.window_s / self.bucket_s) + 1

    def is_abandon(self, agent_wait_s: float | None) -> bool:
        """Whether an answered call whose agent came after ``agent_wait_s`` (None: never) is abandoned."""
        return agent_wait_s is None or agent_wait_s > self.threshold_s

    def record(self, now: float, abandoned: bool) -> None:
        """Count one call answered by a person at ``now``, abandoned or not."""
        self._expire(now)
        start = math.floor(now / self.bucket_s) * self.bucket_s
        if not self._buckets or start > self._buckets[-1].start:
            self._buckets.append(_Bucket(start))
        # A record older than the newest bucket (a late report) is counted in the newest one: it
        # then stays in the window a little longer, never shorter.
        bucket = self._buckets[-1]
        bucket.answered += 1
        self._answered += 1
        if abandoned:
            bucket.abandoned += 1
            self._abandoned += 1

    def record_answered(self, now: float, agent_wait_s: float | None) -> bool:
        """Count an answered call from how long it waited for an agent; returns whether it was abandoned."""
        abandoned = self.is_abandon(agent_wait_s)
        self.record(now, abandoned)
        return abandoned

    def totals(self, now: float) -> tuple[int, int]:
        """(answered, abandoned) within the window ending at ``now``."""
        self._expire(now)
        return self._answered, self._abandoned

    def rate(self, now: float) -> float:
        """Abandoned / answered over the window (0 when nothing was answered)."""
        answered, abandoned = self.totals(now)
        return abandoned / answered if answered else 0.0

    def headroom(self, now: float, expected_answers: float = 0.0, cap: float | None = None) -> float:
        """How many more abandons keep the window at or under the cap, given ``expected_answers`` more answers.

        (abandoned + h) / (answered + expected_answers) <= cap, so h = cap * (answered + expected) - abandoned;
        negative when the window is already over the cap. ``cap`` overrides the ledger's (a pacer aims lower).
        """
        answered, abandoned = self.totals(now)
        limit = self.cap if cap is None else cap
        return limit * (answered + expected_answers) - abandoned

    def _expire(self, now: float) -> None:
        horizon = now - self.window_s
        while self._buckets and self._buckets[0].start + self.bucket_s <= horizon:
            old = self._buckets.popleft()
            self._answered -= old.answered
            self._abandoned -= old.abandoned

    def __len__(self) -> int:
        return len(self._buckets)
