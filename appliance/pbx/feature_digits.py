"""In-call feature codes among the digits a party keys to the other: hold back only a prefix.

A party of an established call keys digits for the far end (a supplier's IVR, a bank's menu),
and some of our own phones also key feature codes (``*1`` record, ``*2``/``*3`` pause/resume).
Like Asterisk's ``featuredigittimeout``, only a digit that may start a code is held back: when
``*`` arrives it waits, for at most ``timeout`` seconds, for the digit that would complete a
code. A completed code is acted on and swallowed; any other digit, or the timeout, passes the
held ``*`` and then the digit on to the other party, in the order they were keyed.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from appliance.pbx.ports import Scheduler, TimerHandle

FEATURE_DIGIT_TIMEOUT_S = 1.5


@dataclass(frozen=True)
class Key:
    """One digit keyed, how long it was held (kept when it is passed on), and how it came
    (``DtmfReceived.source``: an in-band key already reached the other party as audio)."""

    digit: str
    duration_ms: int
    source: str


class HoldState(enum.Enum):
    PASSING = "passing"  # digits go straight through
    HOLDING = "holding"  # a code prefix is held, waiting for the digit that may complete it


class FeatureDigits:
    """The digits of one party: passes them on, except feature codes (see module docstring)."""

    def __init__(self, codes: frozenset[str], schedule: Scheduler, pass_on: Callable[[Key], None],
                 act: Callable[[str], None], timeout: float = FEATURE_DIGIT_TIMEOUT_S) -> None:
        if any(len(code) != 2 for code in codes):
            raise ValueError(f"feature codes are a prefix and one digit: {sorted(codes)}")
        self.codes = codes
        self.prefixes = frozenset(code[0] for code in codes)
        self.schedule = schedule
        self.pass_on = pass_on
        self.act = act
        self.timeout = timeout
        self.state = HoldState.PASSING
        self._held: Key | None = None
        self._timer: TimerHandle | None = None

    def key(self, key: Key) -> None:
        """A digit from the party."""
        if self.state is HoldState.HOLDING:
            held = self._release()
            if held.digit + key.digit in self.codes:
                self.act(held.digit + key.digit)
                return
            self.pass_on(held)
        if key.digit in self.prefixes:
            self._hold(key)
        else:
            self.pass_on(key)

    def cancel(self) -> None:
        """The call ended: drop a held prefix (there is no one left to pass it to)."""
        if self.state is HoldState.HOLDING:
            self._release()

    def _hold(self, key: Key) -> None:
        self.state = HoldState.HOLDING
        self._held = key
        self._timer = self.schedule(self.timeout, lambda: self._timed_out(key))

    def _release(self) -> Key:
        held = self._held
        if held is None:
            raise RuntimeError("feature digits: HOLDING with nothing held")
        if self._timer is not None:
            self._timer.cancel()
        self.state, self._held, self._timer = HoldState.PASSING, None, None
        return held

    def _timed_out(self, key: Key) -> None:
        if self._held is key:  # not a timer of an earlier hold that fired late
            self.pass_on(self._release())
