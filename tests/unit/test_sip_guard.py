"""ScannerGuard: counting, blocking, expiry, allowlist, persistence."""

import logging

import pytest

from appliance.sip.guard import BlockedEntry, ScannerGuard


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_blocks_after_max_failures_within_window_and_logs(caplog):
    clock, blocks = Clock(), []
    g = ScannerGuard(max_failures=3, window=60, block_seconds=900, on_block=blocks.append,
                     clock=clock)
    with caplog.at_level(logging.WARNING, logger="appliance.sip.guard"):
        assert g.record_failure("127.0.0.1", "bad password") is None
        assert g.record_failure("127.0.0.1", "bad password") is None
        assert not g.is_blocked("127.0.0.1")
        entry = g.record_failure("127.0.0.1", "bad password")
    assert entry is not None and entry.ip == "127.0.0.1" and entry.failures == 3
    assert blocks == [entry]
    assert g.is_blocked("127.0.0.1")
    assert "127.0.0.1" in caplog.text and "bad password" in caplog.text
    assert [e.ip for e in g.blocked()] == ["127.0.0.1"]
    clock.t += 900
    assert not g.is_blocked("127.0.0.1")
    assert g.blocked() == []


def test_failures_outside_window_do_not_add_up():
    clock = Clock()
    g = ScannerGuard(max_failures=3, window=10, clock=clock)
    for _ in range(5):
        g.record_failure("10.0.0.1", "x")
        clock.t += 6
    assert not g.is_blocked("10.0.0.1")


def test_success_resets_count():
    g = ScannerGuard(max_failures=2, clock=Clock())
    g.record_failure("10.0.0.2", "x")
    g.record_success("10.0.0.2")
    g.record_failure("10.0.0.2", "x")
    assert not g.is_blocked("10.0.0.2")
    g.record_failure("10.0.0.2", "x")
    assert g.is_blocked("10.0.0.2")


def test_allowlist_loopback_not_exempt_by_default():
    g = ScannerGuard(max_failures=1, clock=Clock(), allowlist=["192.168.1.0/24", "::1"])
    g.record_failure("192.168.1.50", "x")
    g.record_failure("[::1]", "x")
    assert not g.is_blocked("192.168.1.50") and not g.is_blocked("::1")
    g.record_failure("127.0.0.1", "x")
    assert g.is_blocked("127.0.0.1")


def test_ipv6_brackets_normalised_and_unblock():
    g = ScannerGuard(max_failures=1, clock=Clock())
    g.record_failure("[2001:db8::1]", "x")
    assert g.is_blocked("2001:db8::1") and g.is_blocked("[2001:db8::1]")
    assert g.unblock("[2001:db8::1]")
    assert not g.is_blocked("2001:db8::1")
    assert not g.unblock("2001:db8::1")


def test_restore_skips_expired():
    clock = Clock()
    g = ScannerGuard(clock=clock)
    g.restore([BlockedEntry("1.2.3.4", clock.t + 10, "r", 10),
               BlockedEntry("5.6.7.8", clock.t - 1, "r", 10)])
    assert g.is_blocked("1.2.3.4") and not g.is_blocked("5.6.7.8")


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        ScannerGuard(max_failures=0)
