"""The supervisor's rules: a death is logged with its cause and counted, the worker restarts,
a worker that keeps dying is fatal, and the watchdog is pinged only while every part is alive
and making progress (a wedged part, alive but stuck, stops the pings)."""
from __future__ import annotations

import logging
import time

import pytest

from appliance.system.liveness import Heartbeat, PartHealth
from appliance.system.supervisor import THREAD_RESTART_BUDGET, Supervisor, judge, run_supervised


def test_a_dying_body_is_logged_counted_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    beat = Heartbeat()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        if len(runs) <= 2:
            {}["missing"]  # a real KeyError, as a parser bug would raise
        # third run: returns (the worker was told to stop)

    with caplog.at_level(logging.ERROR, "plateau.supervisor"):
        run_supervised("worker", beat, body)
    assert len(runs) == 3 and beat.deaths == 2 and beat.restarts == 2 and not beat.fatal
    assert beat.last_error == "KeyError: 'missing'"
    deaths = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
    # the same death twice: its traceback once, then one line
    assert len(deaths) == 2 and "Traceback" in deaths[0] and "Traceback" not in deaths[1]


def test_a_worker_that_keeps_dying_is_given_up_as_fatal() -> None:
    beat = Heartbeat()
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        raise OverflowError("port must be 0-65535.")

    run_supervised("worker", beat, body)
    assert len(runs) == THREAD_RESTART_BUDGET + 1 and beat.fatal
    assert judge([beat.health("worker", False, fatal=beat.fatal)], time.monotonic()).fatal


def test_a_stopping_worker_is_not_a_death() -> None:
    beat = Heartbeat()

    def body() -> None:
        raise OSError("socket closed by shutdown")

    run_supervised("worker", beat, body, should_stop=lambda: True)
    assert beat.deaths == 0


def test_pings_only_while_every_part_is_alive_and_progressing() -> None:
    now = time.monotonic()
    pings: list[float] = []
    fatal: list[str] = []
    parts = {"a": PartHealth("a", True, now), "b": PartHealth("b", True, now)}
    sup = Supervisor(stale_s=5.0, on_fatal=fatal.append, ping=lambda: pings.append(time.monotonic()))
    sup.add("test", lambda: list(parts.values()))

    assert sup.check().healthy and len(pings) == 1
    parts["b"] = PartHealth("b", True, now - 6.0)  # alive, but no progress for 6 s: wedged
    verdict = sup.check()
    assert not verdict.healthy and "b is wedged" in verdict.reason and len(pings) == 1
    parts["b"] = PartHealth("b", True, time.monotonic())  # it moves again
    assert sup.check().healthy and len(pings) == 2
    parts["a"] = PartHealth("a", False, now, deaths=1, last_error="boom")  # dead, restartable
    assert not sup.check().healthy and fatal == []
    parts["a"] = PartHealth("a", False, now, deaths=6, last_error="boom", fatal=True)
    sup.check()
    sup.check()
    assert len(fatal) == 1 and "a is dead (boom)" in fatal[0] and len(pings) == 2
    status = sup.status()
    assert status["watchdog_pings"] == 2 and status["watchdog_withheld"] == 4 and status["deaths"] == 6


def test_a_broken_reporter_is_a_dead_part_not_a_dead_supervisor() -> None:
    def broken() -> list[PartHealth]:
        raise RuntimeError("hardware manager gone")

    sup = Supervisor(ping=lambda: None)
    sup.add("hardware", broken)
    verdict = sup.check()
    assert not verdict.healthy and "hardware" in verdict.reason
