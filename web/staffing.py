"""Staffing: agents needed per interval of the day, by Erlang C, fed by the site's own traffic.

The traffic of a queue over a period (default: the last 7 days) is read from the queue log: calls
offered per interval of the day (averaged over the days of the period) and the average handle
time of the calls completed in it. Every figure is an editable input, so a planner can try "what
if Monday brings 30 % more calls"; the page is a GET form, nothing is stored.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from flask import Blueprint, render_template, request

from appliance.store import acd, queue_log
from web import charts, erlang
from web.context import login_required, store
from web.reports import DEFAULT_SL_SECONDS, ROLES, Filters, fmt_num, fmt_pct, fmt_secs, local_time, parse_period

bp = Blueprint("staffing", __name__, url_prefix="/staffing")

INTERVALS = (15, 30, 60)
DEFAULT_AHT_S = 180.0
EMPTY_DAY = (8 * 60, 18 * 60)  # shown when the period had no traffic: office hours to type into
MAX_CALLS = 100_000.0
MAX_AHT_S = 7200.0


@dataclass
class Params:
    """The planner's inputs."""

    queue: str
    interval_min: int
    target_pct: float
    threshold_s: float
    max_occupancy_pct: float
    default_aht_s: float


@dataclass
class Row:
    start_min: int  # minutes after midnight
    label: str
    calls: float
    aht_s: float
    measured_calls: float
    measured_aht_s: float | None
    plan: erlang.Staffing


def _number(args: Mapping[str, str], name: str, default: float, low: float, high: float,
            errors: dict[str, str], what: str) -> float:
    text = (args.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        errors[name] = f"{what}: a number from {low:g} to {high:g}"
        return default
    if not low <= value <= high or value != value:
        errors[name] = f"{what}: a number from {low:g} to {high:g}"
        return default
    return value


def parse_params(args: Mapping[str, str], errors: dict[str, str]) -> Params:
    queues = {q.name: q for q in acd.queues(store())}
    queue = (args.get("queue") or "").strip()
    if queue and queue not in queues:
        errors["queue"] = f"no queue named {queue!r}"
        queue = ""
    interval_text = (args.get("interval") or "30").strip()
    interval = int(interval_text) if interval_text.isdigit() and int(interval_text) in INTERVALS else 30
    if interval_text and not (interval_text.isdigit() and int(interval_text) in INTERVALS):
        errors["interval"] = f"one of {', '.join(map(str, INTERVALS))} minutes"
    threshold_default = float(queues[queue].service_level_seconds if queue else DEFAULT_SL_SECONDS)
    return Params(
        queue=queue, interval_min=interval,
        target_pct=_number(args, "target", 80.0, 1.0, 99.9, errors, "target service level (%)"),
        threshold_s=_number(args, "threshold", threshold_default, 1.0, 3600.0, errors, "answered within (s)"),
        max_occupancy_pct=_number(args, "max_occupancy", 100.0, 10.0, 100.0, errors, "maximum occupancy (%)"),
        default_aht_s=_number(args, "aht", DEFAULT_AHT_S, 1.0, MAX_AHT_S, errors, "AHT (s)"),
    )


def measured_traffic(f: Filters, queue: str,
                     interval_min: int) -> tuple[dict[int, float], dict[int, float], float | None]:
    """From the queue log: average calls offered per interval of the day (by the minute it starts),
    average handle time per interval, and the period's AHT."""
    evs = queue_log.events(store(), f.start_ts, f.end_ts, queue or None)
    days = len(f.days())
    offered: dict[int, int] = defaultdict(int)
    handles: dict[int, list[float]] = defaultdict(list)
    every: list[float] = []
    for e in evs:
        when = local_time(e.at)
        slot = (when.hour * 60 + when.minute) // interval_min * interval_min
        if e.event == "ENTER":
            offered[slot] += 1
        elif e.event == "COMPLETE":
            handle = (e.talk_s or 0.0) + (e.wrap_s or 0.0)
            handles[slot].append(handle)
            every.append(handle)
    calls = {slot: n / days for slot, n in offered.items()}
    aht = {slot: sum(v) / len(v) for slot, v in handles.items()}
    return calls, aht, (sum(every) / len(every) if every else None)


def build_rows(args: Mapping[str, str], p: Params, f: Filters,
               errors: dict[str, str]) -> tuple[list[Row], float | None]:
    calls, aht, period_aht = measured_traffic(f, p.queue, p.interval_min)
    default_aht = period_aht if period_aht is not None and not args.get("aht") else p.default_aht_s
    slots = sorted(set(calls) | set(aht))
    if slots:
        first, last = slots[0], slots[-1]
    else:
        first, last = EMPTY_DAY[0], EMPTY_DAY[1] - p.interval_min
    rows: list[Row] = []
    for start in range(first, last + 1, p.interval_min):
        key = f"{start // 60:02d}{start % 60:02d}"
        c = _number(args, f"calls_{key}", round(calls.get(start, 0.0), 1), 0.0, MAX_CALLS, errors, "calls")
        h = _number(args, f"aht_{key}", round(aht.get(start, default_aht), 0), 1.0, MAX_AHT_S, errors, "AHT (s)")
        try:
            plan = erlang.plan(c, p.interval_min * 60.0, h, p.target_pct / 100.0, p.threshold_s,
                               p.max_occupancy_pct / 100.0)
        except ValueError as exc:  # beyond MAX_AGENTS: say so on the row's calls
            errors[f"calls_{key}"] = str(exc)
            plan = erlang.plan(0.0, p.interval_min * 60.0, h, p.target_pct / 100.0, p.threshold_s)
        end = start + p.interval_min
        rows.append(Row(start, f"{start // 60:02d}:{start % 60:02d}–{end // 60:02d}:{end % 60:02d}", c, h,
                        round(calls.get(start, 0.0), 1), aht.get(start), plan))
    return rows, period_aht


@bp.route("/")
@login_required(*ROLES)
def index() -> tuple[str, int]:
    f = parse_period(request.args, default_days=7)
    errors = dict(f.errors)
    p = parse_params(request.args, errors)
    rows, period_aht = build_rows(request.args, p, f, errors)
    chart = charts.bar_chart("Agents needed per interval", [r.label[:5] for r in rows],
                             [charts.Series("Agents needed", [r.plan.agents for r in rows])])
    agent_hours = sum(r.plan.agents for r in rows) * p.interval_min / 60.0
    return render_template(
        "staffing/index.html", f=f, p=p, rows=rows, errors=errors, chart=chart, period_aht=period_aht,
        queues=acd.queues(store()), intervals=INTERVALS, peak=max((r.plan.agents for r in rows), default=0),
        total_calls=sum(r.calls for r in rows), agent_hours=agent_hours, days=len(f.days()),
        pct=fmt_pct, secs=fmt_secs, num=fmt_num, today=dt.date.today()), 400 if errors else 200
