"""The PIN guard on its own: counting per key, lockout, expiry, no oracle, bounded memory."""
from __future__ import annotations

from appliance.pbx.pin_guard import PinGuard, PinLockout


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_on_either_key_lock_it_and_the_lock_expires() -> None:
    clock = Clock()
    locked: list[PinLockout] = []
    guard = PinGuard(max_failures=3, window=60, lock_seconds=300, clock=clock, on_lock=locked.append)
    for source in ("ext:1001", "ext:1002"):  # two desks guessing the same agent's PIN
        assert guard.failed([source, "agent:2001"], "agent login PIN") == []
        clock.now += 1
    started = guard.failed(["ext:1003", "agent:2001"], "agent login PIN")
    assert [e.key for e in started] == ["agent:2001"] and locked == started
    assert guard.locked(["ext:9999", "agent:2001"]) is not None
    assert guard.locked(["ext:1001"]) is None  # each source only tried once
    clock.now += 301
    assert guard.locked(["agent:2001"]) is None and guard.lockouts() == []


def test_failures_outside_the_window_do_not_add_up_and_success_resets() -> None:
    clock = Clock()
    guard = PinGuard(max_failures=2, window=60, lock_seconds=300, clock=clock)
    guard.failed(["ext:1001"], "x")
    clock.now += 61
    assert guard.failed(["ext:1001"], "x") == []
    guard.succeeded(["ext:1001"])
    assert guard.failed(["ext:1001"], "x") == []
    assert len(guard.failed(["ext:1001"], "x")) == 1


def test_status_lists_the_lockouts() -> None:
    guard = PinGuard(max_failures=1, clock=Clock())
    guard.failed(["trunk:carrier:0612345678", "mailbox:1002"], "voicemail PIN")
    entry = guard.locked(["mailbox:1002"])
    assert entry is not None
    guard.refuse(entry)
    status = guard.status()
    assert [e["key"] for e in status["locked"]] == ["trunk:carrier:0612345678", "mailbox:1002"]  # type: ignore[index]
    assert status["refused_while_locked"] == 1
    assert guard.unlock("mailbox:1002") and not guard.unlock("mailbox:1002")
