"""The interval roll-ups give the figures `queue_log.compute` gives on the same log (issue 15).

Randomised queue logs over several days, queues and agents, with the awkward cases: calls
answered in one 15-minute bucket and completed in the next, callers who call back within 72 h,
calls still unknown at the end, double logins, sessions open past the period's end, a queue's
threshold changed after the fact. Written through `queue_log.record` (the roll-ups kept current)
and then recomputed by `rollups.rebuild`; both must equal compute() over the events.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import acd, queue_log, rollup_reports, rollups
from appliance.store.db import Store
from appliance.store.models import AgentConfig, QueueConfig
from appliance.store.queue_log import Kpis, QueueEvent
from appliance.store.rollup_reports import Scope

T0 = 1_700_002_800.0  # a bucket boundary (multiple of 900)
DAY = 86400.0
QUEUES = {"sales": 20, "support": 40, "billing": 15}
AGENTS = [f"20{i:02d}" for i in range(6)]


def random_log(seed: int, days: int = 4) -> list[QueueEvent]:
    rng = random.Random(seed)
    evs: list[QueueEvent] = []
    for day in range(days):
        base = T0 + day * DAY
        for agent in AGENTS:
            t = base + rng.uniform(0, 3 * 3600)
            for _session in range(rng.randint(1, 3)):
                evs.append(QueueEvent(t, "AGENT_LOGIN", agent=agent))
                if rng.random() < 0.2:  # a second login without a logout
                    t += rng.uniform(10, 600)
                    evs.append(QueueEvent(t, "AGENT_LOGIN", agent=agent))
                for _p in range(rng.randint(0, 2)):
                    t += rng.uniform(600, 7200)
                    evs.append(QueueEvent(t, "AGENT_PAUSE", agent=agent, data=rng.choice(["lunch", "break", ""])))
                    t += rng.uniform(60, 1800)
                    evs.append(QueueEvent(t, "AGENT_UNPAUSE", agent=agent))
                t += rng.uniform(600, 4 * 3600)
                if rng.random() < 0.85 or day < days - 1:  # the last day: some stay logged in
                    evs.append(QueueEvent(t, "AGENT_LOGOUT", agent=agent))
                t += rng.uniform(60, 3600)
        for n in range(rng.randint(60, 120)):
            at = base + rng.uniform(0, DAY)
            queue = rng.choice(list(QUEUES))
            call = f"d{day}-{n}"
            caller = f"06{rng.randint(0, 40):02d}" if rng.random() < 0.9 else ""
            evs.append(QueueEvent(at, "ENTER", call_id=call, queue=queue, caller=caller, position=1))
            fate = rng.random()
            wait = rng.choice([rng.uniform(0, 60), float(rng.choice([15, 20, 40]))])  # some exactly on a threshold
            agent = rng.choice(AGENTS)
            if fate < 0.65:
                if rng.random() < 0.3:
                    evs.append(QueueEvent(at + wait / 2, "RINGNOANSWER", call_id=call, queue=queue,
                                          agent=rng.choice(AGENTS)))
                evs.append(QueueEvent(at + wait, "CONNECT", call_id=call, queue=queue, agent=agent, caller=caller,
                                      wait_s=wait if rng.random() < 0.95 else None))
                talk = rng.uniform(5, 1500)
                wrap = rng.choice([rng.uniform(0, 60), None])
                if rng.random() < 0.95:
                    evs.append(QueueEvent(at + wait + talk, "COMPLETE", call_id=call, queue=queue, agent=agent,
                                          caller=caller, talk_s=talk, wrap_s=wrap))
            elif fate < 0.8:
                evs.append(QueueEvent(at + wait, "ABANDON", call_id=call, queue=queue, caller=caller, wait_s=wait))
            elif fate < 0.9:
                evs.append(QueueEvent(at + wait, rng.choice(rollups.OVERFLOWS), call_id=call, queue=queue,
                                      caller=caller, wait_s=wait))
            # else: still unknown (no outcome in the log)
    return sorted(evs, key=lambda e: e.at)


def expected(evs: list[QueueEvent], start: float, end: float, limits: dict[str, int],
             queue: str | None = None) -> tuple[Kpis, dict[str, Kpis]]:
    """What the report page computed before the roll-ups (web/reports.py build_report, by hand)."""
    period = [e for e in evs if start <= e.at < end and (queue is None or e.queue == queue)]
    later = [e for e in evs if end <= e.at < end + queue_log.FCR_WINDOW_S and (queue is None or e.queue == queue)]
    total = queue_log.compute(period, limits.get(queue or "", 20), end, later)
    groups = {q: [e for e in period if e.queue == q] for q in sorted({e.queue for e in period if e.queue})}
    per = {q: queue_log.compute(g, limits[q], end, [e for e in later if e.queue == q]) for q, g in groups.items()}
    total.answered_within_sl = sum(k.answered_within_sl for k in per.values())
    offered = sum(k.offered for k in per.values())
    total.service_level = 100.0 * total.answered_within_sl / offered if offered else None
    return total, per


def same(got: Kpis, want: Kpis) -> None:
    for f in dataclasses.fields(Kpis):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, dict):
            assert a.keys() == b.keys(), f.name
            assert a == pytest.approx(b, abs=1e-6), f.name
        elif isinstance(b, float) or isinstance(a, float):
            assert a == pytest.approx(b, abs=1e-6), f.name
        else:
            assert a == b, f.name


def seeded(store: Store, evs: list[QueueEvent]) -> None:
    for name, seconds in QUEUES.items():
        acd.put_queue(store, QueueConfig(name=name, service_level_seconds=seconds))
    for agent in AGENTS:
        acd.put_agent(store, AgentConfig(agent_id=agent, name=f"Agent {agent}", pin="1234"))
    for ev in evs:
        queue_log.record(store, ev)


PERIODS = [(T0, T0 + 4 * DAY), (T0 + DAY, T0 + 2 * DAY), (T0 + DAY + 36 * 900, T0 + DAY + 52 * 900),
           (T0 + 3 * DAY, T0 + 4 * DAY), (T0 - DAY, T0 + 5 * DAY)]


def check(store: Store, evs: list[QueueEvent], limits: dict[str, int]) -> None:
    for start, end in PERIODS:
        for queue in (None, "support"):
            total, per = rollup_reports.kpis(store, start, end, Scope(queue=queue), limits)
            want_total, want_per = expected(evs, start, end, limits, queue)
            same(total, want_total)
            assert per.keys() == want_per.keys()
            for q in per:
                same(per[q], want_per[q])
            figures = rollup_reports.agent_figures(store, start, end, Scope(queue=queue))
            assert {f.agent: f.calls for f in figures if f.calls} == want_total.calls_per_agent
            if queue is None:
                occupancy = {f.agent: f.occupancy for f in figures if f.occupancy is not None}
                assert occupancy == pytest.approx(want_total.occupancy, abs=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollups_equal_the_log_computation(tmp_path: Path, seed: int) -> None:
    evs = random_log(seed)
    with Store(tmp_path / "plateau.db") as store:
        seeded(store, evs)
        check(store, evs, dict(QUEUES))  # kept current as the events were written
        tables = ("rollup_queue", "rollup_agent", "rollup_pause", "rollup_answer")
        before = {t: sorted(store.query(f"SELECT * FROM {t}")) for t in tables}
        rollups.rebuild(store)
        check(store, evs, dict(QUEUES))
        after = {t: sorted(store.query(f"SELECT * FROM {t}")) for t in before}
        for table in before:
            assert len(after[table]) == len(before[table]), table
            for x, y in zip(after[table], before[table], strict=True):
                assert list(x) == pytest.approx(list(y), abs=1e-6) if None not in x else x == y, table


def test_a_changed_threshold_is_applied_to_past_buckets(tmp_path: Path) -> None:
    evs = random_log(7, days=2)
    with Store(tmp_path / "plateau.db") as store:
        seeded(store, evs)
        acd.put_queue(store, QueueConfig(name="support", service_level_seconds=10))
        limits = {**QUEUES, "support": 10}
        check(store, evs, limits)


def test_postgresql_rollups_equal_the_log_computation(postgres_url: str) -> None:
    evs = random_log(4, days=2)
    with Store(postgres_url) as store:
        seeded(store, evs)
        check(store, evs, dict(QUEUES))
        rollups.rebuild(store)
        check(store, evs, dict(QUEUES))


def test_a_hand_computed_day(tmp_path: Path) -> None:
    """Two calls, one agent: the figures worked out on paper."""
    log = [QueueEvent(T0 + 10, "AGENT_LOGIN", agent="2001"),
           QueueEvent(T0 + 100, "ENTER", call_id="1", queue="sales", caller="100"),
           QueueEvent(T0 + 110, "CONNECT", call_id="1", queue="sales", agent="2001", caller="100", wait_s=10),
           QueueEvent(T0 + 1000, "COMPLETE", call_id="1", queue="sales", agent="2001", talk_s=890, wrap_s=30),
           QueueEvent(T0 + 1200, "AGENT_PAUSE", agent="2001", data="lunch"),
           QueueEvent(T0 + 1500, "AGENT_UNPAUSE", agent="2001"),
           QueueEvent(T0 + 2000, "ENTER", call_id="2", queue="sales", caller="100"),
           QueueEvent(T0 + 2030, "ABANDON", call_id="2", queue="sales", caller="100", wait_s=30),
           QueueEvent(T0 + 3610, "AGENT_LOGOUT", agent="2001")]
    with Store(tmp_path / "plateau.db") as store:
        seeded(store, log)
        k, per = rollup_reports.kpis(store, T0, T0 + DAY, Scope(), {"sales": 20})
        [fig] = rollup_reports.agent_figures(store, T0, T0 + DAY)
        sheet = rollup_reports.time_sheet(store, "2001", T0, T0 + DAY)
        slots = rollup_reports.intervals(store, T0, T0 + 3600, 15, Scope(queue="sales"))
    assert (k.offered, k.answered, k.abandoned, k.missed, k.answered_within_sl) == (2, 1, 1, 1, 1)
    assert k.service_level == 50.0 and k.abandon_rate == 50.0
    assert (k.asa_s, k.att_s, k.aht_s) == (10.0, 890.0, 920.0)
    assert k.fcr == 0.0  # the caller came back 31 min later
    assert k.occupancy == {"2001": pytest.approx(100.0 * 920 / 3600)}
    assert k.calls_per_agent == {"2001": 1} and list(per) == ["sales"]
    assert (fig.calls, fig.talk_s, fig.wrap_s, fig.aht_s, fig.logged_in_s) == (1, 890.0, 30.0, 920.0, 3600.0)
    assert fig.pause_s == {"lunch": 300.0} and fig.pauses == 1 and fig.hold_s is None
    assert sheet == [rollup_reports.TimeSheetEntry("login", T0 + 10, T0 + 3610),
                     rollup_reports.TimeSheetEntry("pause", T0 + 1200, T0 + 1500, "lunch")]
    assert [(s.counts.offered, s.counts.answered, s.counts.abandoned, s.counts.completed) for s in slots] == [
        (1, 1, 0, 0), (0, 0, 0, 1), (1, 0, 1, 0), (0, 0, 0, 0)]  # answered at :01, completed at :16
    assert slots[0].counts.service_level == 100.0 and slots[2].counts.service_level == 0.0


@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The local clock of a French site (DST on 2025-03-30), put back after the test."""
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_intervals_follow_the_local_clock_across_a_dst_change(tmp_path: Path, paris: None) -> None:
    start = dt.datetime(2025, 3, 29).timestamp()
    end = dt.datetime(2025, 4, 1).timestamp()
    log = [QueueEvent(at, "ENTER", call_id=str(at), queue="sales") for at in range(int(start) + 60, int(end), 3600)]
    with Store(tmp_path / "plateau.db") as store:
        seeded(store, log)
        days = rollup_reports.intervals(store, start, end, 1440)
        hours = rollup_reports.intervals(store, start, end, 60)
    assert [dt.datetime.fromtimestamp(d.start).date().isoformat() for d in days] == [
        "2025-03-29", "2025-03-30", "2025-03-31"]
    assert [d.counts.offered for d in days] == [24, 23, 24]  # the day of 23 hours
    assert len(hours) == 71 and all(h.counts.offered == 1 for h in hours)
