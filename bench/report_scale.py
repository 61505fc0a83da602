"""Reports at the size of a real site (issue 15): a year of a 60-agent contact centre, then
`plateau report` for a week, a month, a quarter and the year, timed and measured.

    .venv/bin/python bench/report_scale.py [--scale 1.0] [--dir DIR] [--db URL] [--seed 1]

Generates the year (at --scale 1: 60 agents, about 1.1 M calls and 4.2 M queue-log rows over
the local days of 2025; a smaller scale shrinks the calls and agents), bulk-loads it in one
transaction (`queue_log.bulk_load`), rebuilds the roll-ups (`rollups.rebuild`, as
`plateau report --rebuild`), then runs each report in a child process through `plateau report`'s
own code path (`report_cli.figures`) and prints its time (in the child), its peak Python memory
(tracemalloc) and the child's peak RSS (wait4). Exits 1 when the year is over target: 1 s and
200 MB on SQLite, 2 s on PostgreSQL (--db, an empty database: the store migrates it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if importlib.util.find_spec("appliance") is None:
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from appliance.store import acd, queue_log, rollups  # noqa: E402
from appliance.store.db import Store  # noqa: E402
from appliance.store.models import AgentConfig, QueueConfig  # noqa: E402

YEAR = 2025
QUEUES = {"sales": 20, "support": 30, "billing": 20, "claims": 40}
CALLS_PER_YEAR = 1_100_000
AGENTS = 60
PERIODS = {"week": (dt.date(YEAR, 12, 25), dt.date(YEAR, 12, 31)),
           "month": (dt.date(YEAR, 12, 1), dt.date(YEAR, 12, 31)),
           "quarter": (dt.date(YEAR, 10, 1), dt.date(YEAR, 12, 31)),
           "year": (dt.date(YEAR, 1, 1), dt.date(YEAR, 12, 31))}
TARGET_S = {"sqlite": 1.0, "postgresql": 2.0}
TARGET_MB = 200.0
_NONE = ("", None, None, None, None)  # caller, position, wait, talk, wrap


def day_rows(rng: random.Random, day: dt.date, agents: list[str], calls: int) -> Iterator[tuple[Any, ...]]:
    """One day's queue-log rows (the columns of `queue_log.bulk_load`), in time order per call."""
    open_at = dt.datetime.combine(day, dt.time(8)).timestamp()
    for agent in agents:  # a shift with a lunch break and a short one
        login = open_at + rng.uniform(-900, 900)
        yield (login, "", "", agent, "AGENT_LOGIN", "", None, None, None, None, "")
        for reason, at, length in (("lunch", 4 * 3600, 3600), ("break", 8 * 3600, 900)):
            start = login + at + rng.uniform(0, 1800)
            yield (start, "", "", agent, "AGENT_PAUSE", "", None, None, None, None, reason)
            yield (start + length * rng.uniform(0.8, 1.2), "", "", agent, "AGENT_UNPAUSE", *_NONE, "")
        yield (login + 12 * 3600 + rng.uniform(-900, 900), "", "", agent, "AGENT_LOGOUT", *_NONE, "")
    names = list(QUEUES)
    for n in range(calls):
        at = open_at + rng.uniform(0, 12 * 3600)
        call, queue = f"{day.toordinal()}-{n}", rng.choice(names)
        caller = f"+3361{rng.randrange(400_000):06d}"
        wait = rng.expovariate(1 / 25)
        yield (at, call, queue, "", "ENTER", caller, 1, None, None, None, "")
        fate = rng.random()
        if fate < 0.85:
            agent = rng.choice(agents)
            yield (at + wait * 0.3, call, queue, agent, "OFFER", caller, None, None, None, None, "")
            if rng.random() < 0.1:
                yield (at + wait * 0.6, call, queue, rng.choice(agents), "RINGNOANSWER", caller, *_NONE[1:], "")
            talk = rng.expovariate(1 / 240)
            yield (at + wait, call, queue, agent, "CONNECT", caller, None, wait, None, None, "")
            yield (at + wait + talk, call, queue, agent, "COMPLETE", caller, None, None, talk, 15.0, "")
        elif fate < 0.95:
            yield (at + wait, call, queue, "", "ABANDON", caller, 1, wait, None, None, "")
        else:
            yield (at + wait, call, queue, "", "EXITWITHTIMEOUT", caller, 1, wait, None, None, "")


def generate(store: Store, scale: float, seed: int) -> int:
    """Configure the queues and agents, bulk-load the year, rebuild the roll-ups; the rows loaded."""
    rng = random.Random(seed)
    agents = [f"{3000 + i}" for i in range(max(2, round(AGENTS * min(1.0, scale * 10))))]
    for name, sl in QUEUES.items():
        acd.put_queue(store, QueueConfig(name=name, service_level_seconds=sl))
    for agent in agents:
        acd.put_agent(store, AgentConfig(agent_id=agent, name=f"Agent {agent}", pin="1234"))
    days = [dt.date(YEAR, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    per_day = max(1, round(CALLS_PER_YEAR * scale / len(days)))
    count = 0

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal count
        for day in days:
            for row in day_rows(rng, day, agents, per_day):
                count += 1
                yield row

    queue_log.bulk_load(store, rows())
    rollups.rebuild(store)
    return count


def measure(database: str, period: str) -> dict[str, float]:
    """In the child: one report through `plateau report`'s code path; its time and Python peak."""
    import tracemalloc

    from appliance.report_cli import figures
    from appliance.store.rollup_reports import Scope

    first, last = PERIODS[period]
    start = dt.datetime.combine(first, dt.time()).timestamp()
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time()).timestamp()
    with Store(database) as store:
        tracemalloc.start()
        t0 = time.perf_counter()
        data = figures(store, start, end, Scope(), "1d")
        seconds = time.perf_counter() - t0
        _cur, peak = tracemalloc.get_traced_memory()
    return {"seconds": seconds, "python_mb": peak / 1e6, "offered": data["total"]["offered"]}


def run_child(database: str, period: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, __file__, "--measure", period, "--db", database],
                            stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"report_scale: the {period} report failed (exit {proc.returncode})")
    result: dict[str, float] = json.loads(out)
    result["rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the year's calls (default 1: 1.1 M)")
    p.add_argument("--dir", type=Path, help="where the SQLite file goes (default: a temporary directory)")
    p.add_argument("--db", help="a PostgreSQL URL (an empty database) instead of SQLite")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--measure", choices=sorted(PERIODS), help=argparse.SUPPRESS)  # the child's part
    args = p.parse_args(argv)
    if not 0 < args.scale <= 1:
        p.error("--scale is in (0, 1]")
    if args.measure:
        print(json.dumps(measure(args.db, args.measure)))
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        database = args.db or str(Path(tmp) / "plateau.db")
        t0 = time.perf_counter()
        with Store(database) as store:
            rows = generate(store, args.scale, args.seed)
            backend = store.dialect.name
        took = time.perf_counter() - t0
        print(f"generated {rows:,} queue-log rows and their roll-ups in {took:.0f} s ({backend})", flush=True)
        failed = False
        for period in PERIODS:
            r = run_child(database, period)
            over = period == "year" and (r["seconds"] > TARGET_S[backend]
                                         or (backend == "sqlite" and r["rss_mb"] > TARGET_MB))
            failed |= over
            print(f"{period:8s} {r['seconds']:7.3f} s  python peak {r['python_mb']:6.1f} MB"
                  f"  rss {r['rss_mb']:6.1f} MB  offered {int(r['offered']):,}{'  OVER TARGET' if over else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
