"""`plateau report`: the report page's figures on the command line, from the queue log's roll-ups.

`plateau report --from 2026-01-01 --to 2026-12-31 [--queue Q] [--agent A] [--interval 1h]
[--format table|json|csv]` prints the KPI table of the web report (the whole selection, then each
queue), the agents' figures, and with --interval the interval rows; `--rebuild` recomputes the
roll-ups from the log (a database bulk-loaded or written by a version before them). The dates are
local days, both included, like the report page's.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from appliance.store import acd, rollup_reports, rollups
from appliance.store.db import Store
from appliance.store.errors import StoreError
from appliance.store.queue_log import Kpis
from appliance.store.rollup_reports import INTERVALS, Scope

MAX_DAYS = 366  # as the report page (web/reports.py)
KPI_FIELDS = ("offered", "answered", "missed", "abandoned", "overflowed", "answered_within_sl", "service_level",
              "abandon_rate", "asa_s", "att_s", "aht_s", "fcr", "ring_no_answer")


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from exc


def add_parser(sub: Any, data_dir: Path, db_help: str) -> None:
    """`plateau report` on the CLI's sub-parsers."""
    r = sub.add_parser("report", help="print the report page's figures for a period, or rebuild the roll-ups")
    r.add_argument("--data-dir", type=Path, default=data_dir)
    r.add_argument("--db", metavar="URL", help=db_help)
    r.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD", help="first day (local)")
    r.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="last day, included (default: --from)")
    r.add_argument("--queue", help="one queue")
    r.add_argument("--agent", help="one agent id")
    r.add_argument("--interval", choices=sorted(INTERVALS), help="also the rows per 15m, 30m, 1h or 1d")
    r.add_argument("--format", choices=("table", "json", "csv"), default="table")
    r.add_argument("--rebuild", action="store_true", help="recompute the roll-ups from the queue log, then report")


def usage_error(message: str) -> NoReturn:
    """A bad argument: said on stderr, exit 2 (as argparse does)."""
    print(f"plateau report: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _check(parser_error: Any, args: argparse.Namespace) -> tuple[dt.date, dt.date] | None:
    if args.start is None:
        if not args.rebuild:
            parser_error("--from is required (or --rebuild alone)")
        return None
    end = args.end or args.start
    if end < args.start:
        parser_error(f"--to {end} is before --from {args.start}")
    if (end - args.start).days >= MAX_DAYS:
        parser_error(f"a report covers at most {MAX_DAYS} days")
    return args.start, end


def _midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time()).timestamp()


def figures(store: Store, start: float, end: float, scope: Scope, interval: str | None) -> dict[str, Any]:
    """What `plateau report` prints, as one JSON-ready dict (the page's KPI table and more)."""
    limits = {q.name: q.service_level_seconds for q in acd.queues(store)}
    total, per = rollup_reports.kpis(store, start, end, scope, limits)
    out: dict[str, Any] = {
        "from": start, "to": end, "queue": scope.queue, "agent": scope.agent,
        "total": _kpi_dict(total, scope.queue, limits.get(scope.queue) if scope.queue else None),
        "queues": [_kpi_dict(k, name, limits.get(name, rollups.DEFAULT_SL_SECONDS)) for name, k in sorted(per.items())],
        "agents": [asdict(a) for a in rollup_reports.agent_figures(store, start, end, scope)],
    }
    if interval is not None:
        out["intervals"] = [
            {"start": dt.datetime.fromtimestamp(r.start).isoformat(timespec="minutes"), "offered": r.counts.offered,
             "answered": r.counts.answered, "abandoned": r.counts.abandoned, "service_level": r.counts.service_level,
             "asa_s": r.counts.asa_s, "aht_s": r.counts.aht_s}
            for r in rollup_reports.intervals(store, start, end, INTERVALS[interval], scope)]
    return out


def _kpi_dict(k: Kpis, queue: str | None, threshold: int | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"queue": queue if queue is not None else "all queues", "sl_threshold_s": threshold}
    d.update({f: getattr(k, f) for f in KPI_FIELDS})
    d["calls_per_agent"] = dict(k.calls_per_agent)
    d["occupancy"] = dict(k.occupancy)
    return d


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    cells = [list(columns)] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


def render(data: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True)
    kpi_cols = ("queue", "sl_threshold_s", *KPI_FIELDS)
    agent_cols = ("agent", "calls", "completed", "ring_no_answer", "talk_s", "wrap_s", "att_s", "aht_s",
                  "pauses", "logged_in_s", "occupancy")
    interval_cols = ("start", "offered", "answered", "abandoned", "service_level", "asa_s", "aht_s")
    sections = [("kpis", [data["total"], *data["queues"]], kpi_cols), ("agents", data["agents"], agent_cols)]
    if "intervals" in data:
        sections.append(("intervals", data["intervals"], interval_cols))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        for name, rows, cols in sections:
            writer.writerow([f"# {name}"])
            writer.writerow(cols)
            writer.writerows([["" if r.get(c) is None else r.get(c) for c in cols] for r in rows])
        return buf.getvalue().rstrip("\n")
    return "\n\n".join(f"{name}:\n{_table(rows, cols)}" for name, rows, cols in sections)


def cli(args: argparse.Namespace, database: str | Path) -> int:
    parser_error = usage_error
    period = _check(parser_error, args)
    try:
        with Store(database) as store:
            if args.queue and acd.get_queue(store, args.queue) is None:
                parser_error(f"--queue: no queue named {args.queue!r}")
            if args.agent and acd.get_agent(store, args.agent) is None:
                parser_error(f"--agent: no agent {args.agent!r}")
            if args.rebuild:
                t0 = time.perf_counter()
                n = rollups.rebuild(store)
                print(f"plateau report: roll-ups rebuilt ({n} queue buckets) in {time.perf_counter() - t0:.1f} s",
                      file=sys.stderr)
            if period is None:
                return 0
            start, end = _midnight(period[0]), _midnight(period[1] + dt.timedelta(days=1))
            data = figures(store, start, end, Scope(args.queue or None, args.agent or None), args.interval)
    except StoreError as exc:
        print(f"plateau report: {exc}", file=sys.stderr)
        return 1
    data["from"], data["to"] = period[0].isoformat(), period[1].isoformat()
    print(render(data, args.format))
    return 0
