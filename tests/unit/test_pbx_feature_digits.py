"""Feature-code hold-back: only a code prefix waits; everything else passes on, in order."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.pbx.feature_digits import FeatureDigits, HoldState, Key

CODES = frozenset({"*1", "*2", "*3"})


class Timers:
    """A manual scheduler: timers fire when the test says so."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def __call__(self, seconds: float, fn: Callable[[], None]) -> Timers.Handle:
        cancelled = [False]
        self.pending.append((seconds, fn, cancelled))
        return Timers.Handle(cancelled)

    class Handle:
        def __init__(self, flag: list[bool]) -> None:
            self.flag = flag

        def cancel(self) -> None:
            self.flag[0] = True

    def fire_all(self) -> None:
        pending, self.pending = self.pending, []
        for _, fn, cancelled in pending:
            if not cancelled[0]:
                fn()


def _digits() -> tuple[FeatureDigits, list[str], list[str], Timers]:
    passed: list[str] = []
    acted: list[str] = []
    timers = Timers()
    fd = FeatureDigits(CODES, timers, lambda k: passed.append(k.digit), acted.append)
    return fd, passed, acted, timers


def _key(d: str) -> Key:
    return Key(d, 120, "rfc4733")


def test_a_completed_code_is_acted_on_and_swallowed() -> None:
    fd, passed, acted, timers = _digits()
    for d in "*1":
        fd.key(_key(d))
    assert (passed, acted, fd.state) == ([], ["*1"], HoldState.PASSING)
    timers.fire_all()
    assert passed == []


def test_star_and_a_non_code_digit_pass_in_order_with_their_durations() -> None:
    kept: list[Key] = []
    fd = FeatureDigits(CODES, Timers(), kept.append, lambda code: None)
    fd.key(Key("*", 90, "rfc4733"))
    assert kept == []  # held back
    fd.key(Key("5", 210, "rfc4733"))
    assert kept == [Key("*", 90, "rfc4733"), Key("5", 210, "rfc4733")]


def test_a_held_star_passes_on_at_the_timeout_and_digits_never_wait() -> None:
    fd, passed, acted, timers = _digits()
    for d in "12*":
        fd.key(_key(d))
    assert passed == ["1", "2"] and timers.pending[0][0] == pytest.approx(1.5)
    timers.fire_all()
    assert passed == ["1", "2", "*"] and fd.state is HoldState.PASSING
    fd.key(_key("3"))  # the hold ended: "3" alone is no code
    assert passed == ["1", "2", "*", "3"] and acted == []


def test_star_star_passes_the_first_and_holds_the_second() -> None:
    fd, passed, acted, timers = _digits()
    for d in "**2":
        fd.key(_key(d))
    assert passed == ["*"] and acted == ["*2"]
    timers.fire_all()  # the first hold's timer was cancelled, the second's consumed
    assert passed == ["*"]


def test_cancel_drops_a_held_prefix() -> None:
    fd, passed, _, timers = _digits()
    fd.key(_key("*"))
    fd.cancel()
    timers.fire_all()
    assert passed == [] and fd.state is HoldState.PASSING


def test_codes_must_be_a_prefix_and_one_digit() -> None:
    with pytest.raises(ValueError):
        FeatureDigits(frozenset({"*12"}), Timers(), lambda k: None, lambda c: None)
