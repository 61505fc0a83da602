"""Reports: contact-centre KPIs for a period, charts, CSV exports, call search and recording playback.

Every figure is summed from the rows (the queue log's 15-minute roll-ups, CDR, survey results)
by the store's own KPI functions, never from stored averages, so a report for any period of whole
days is exact and matches what the engine's API computes from the log.
Service level uses each queue's own threshold (`service_level_seconds`):
for "all queues" the answered-within-threshold counts of each queue are added up.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request, send_file
from markupsafe import Markup

from appliance.store import acd, interactions, recordings, rollup_reports
from appliance.store import reports as report_store
from appliance.store.models import DISPOSITIONS
from appliance.store.paging import Page, Sorts
from appliance.store.queue_log import Kpis
from appliance.store.reports import CallRow
from web import charts
from web.csv_export import csv_response
from web.context import audit, login_required, store
from web.paging import page_query, table

bp = Blueprint("reports", __name__, url_prefix="/reports")

ROLES = ("admin", "supervisor")
DEFAULT_SL_SECONDS = 20
FIRST_YEAR, LAST_YEAR = 1970, 9000  # the Unix epoch, and far from date.max
MAX_DAYS = 366  # one year per report keeps a page under a second on the appliance
MAX_CSV_ROWS = 100_000
NUMBER_RE = re.compile(r"[0-9A-Za-z+*#@._-]{1,64}")


# -- filters -----------------------------------------------------------------------------------
@dataclass
class Filters:
    """A report's period (local dates, both inclusive) and what it is narrowed to."""

    start: dt.date
    end: dt.date
    queue: str = ""
    agent: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def start_ts(self) -> float:
        return day_start(self.start)

    @property
    def end_ts(self) -> float:
        return day_start(self.end + dt.timedelta(days=1))

    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def day_start(day: dt.date) -> float:
    """Local midnight at the start of `day` (the appliance's clock is the site's)."""
    return dt.datetime.combine(day, dt.time()).timestamp()


def local_time(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts)


def parse_date(args: Mapping[str, str], name: str, default: dt.date, errors: dict[str, str]) -> dt.date:
    """A YYYY-MM-DD argument, or `default` when absent; a bad one is an error on `name`."""
    text = (args.get(name) or "").strip()
    if not text:
        return default
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        errors[name] = "a date as YYYY-MM-DD"
        return default
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        # Year 1 or 9999 overflowed the day arithmetic and the platform's mktime (a 500).
        errors[name] = f"a date between {FIRST_YEAR} and {LAST_YEAR}"
        return default
    return day


def parse_period(args: Mapping[str, str], default_days: int = 1) -> Filters:
    """Start and end dates from the query string (default: today, or the last `default_days`)."""
    errors: dict[str, str] = {}
    today = dt.date.today()
    start = parse_date(args, "start", today - dt.timedelta(days=default_days - 1), errors)
    end = parse_date(args, "end", today, errors)
    if "start" not in errors and "end" not in errors:
        if end < start:
            errors["end"] = "the end date is before the start date"
        elif (end - start).days >= MAX_DAYS:
            errors["end"] = f"a report covers at most {MAX_DAYS} days"
    if errors:
        start = end = today
    return Filters(start=start, end=end, errors=errors)


def parse_filters(args: Mapping[str, str]) -> Filters:
    """The period plus queue and agent, each checked against the configuration."""
    f = parse_period(args)
    f.queue = (args.get("queue") or "").strip()
    f.agent = (args.get("agent") or "").strip()
    if f.queue and acd.get_queue(store(), f.queue) is None:
        f.errors["queue"] = f"no queue named {f.queue!r}"
        f.queue = ""
    if f.agent and acd.get_agent(store(), f.agent) is None:
        f.errors["agent"] = f"no agent {f.agent!r}"
        f.agent = ""
    return f


# -- formatting (also used by the staffing and quality pages) -------------------------------------
def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} %"


def fmt_secs(value: float | None) -> str:
    """Seconds as "42 s" or "3:05" (minutes:seconds); "—" when unknown."""
    if value is None:
        return "—"
    if value == float("inf"):
        return "∞"
    if value < 60:
        return f"{value:.0f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes}:{seconds:02d}"


def fmt_num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# -- the KPI report ------------------------------------------------------------------------------
@dataclass
class Report:
    """Everything the KPI page shows for one set of filters."""

    total: Kpis
    per_queue: list[tuple[str, int, Kpis]]  # queue, threshold (s), figures
    volume: dict[str, int]  # CDR direction -> calls
    survey: interactions.SurveyKpis
    survey_per_queue: dict[str, interactions.SurveyKpis]
    hourly_answered: list[int]
    hourly_abandoned: list[int]
    daily_sl: list[float | None]
    agent_names: dict[str, str]
    threshold: int | None  # the queue's SL threshold (s); None for all queues, each with its own

    @property
    def mean_occupancy(self) -> float | None:
        occ = self.total.occupancy
        return sum(occ.values()) / len(occ) if occ else None


def thresholds() -> dict[str, int]:
    """Each queue's service-level threshold in seconds."""
    return {q.name: q.service_level_seconds for q in acd.queues(store())}


def build_report(f: Filters) -> Report:
    """The figures of the KPI page for `f` (also the CSV export), summed in SQL from the interval
    roll-ups (appliance/store/rollup_reports.py): a year costs what a day does."""
    s = store()
    limits = thresholds()
    queue = f.queue or None
    agent = f.agent or None
    scope = rollup_reports.Scope(queue=queue, agent=agent)
    total, groups = rollup_reports.kpis(s, f.start_ts, f.end_ts, scope, limits)
    per_queue = [(name, limits.get(name, DEFAULT_SL_SECONDS), k) for name, k in sorted(groups.items())]
    volume = report_store.volume_by_direction(s, f.start_ts, f.end_ts)
    answered, abandoned = [0] * 24, [0] * 24
    for hour, c in rollup_reports.series(s, f.start_ts, f.end_ts, 60, scope).items():
        answered[hour.hour] += c.answered
        abandoned[hour.hour] += c.abandoned
    per_day = {day.date(): c for day, c in rollup_reports.series(s, f.start_ts, f.end_ts, 1440, scope).items()}
    daily = [per_day[d].service_level if d in per_day else None for d in f.days()]
    return Report(
        total=total, per_queue=per_queue, volume=volume,
        survey=interactions.survey_kpis(s, f.start_ts, f.end_ts, queue, agent),
        survey_per_queue={name: interactions.survey_kpis(s, f.start_ts, f.end_ts, name, agent)
                          for name, _t, _k in per_queue},
        hourly_answered=answered, hourly_abandoned=abandoned, daily_sl=daily,
        agent_names={a.agent_id: a.name for a in acd.agents(s)},
        threshold=limits.get(f.queue, DEFAULT_SL_SECONDS) if f.queue else None,
    )


def report_charts(f: Filters, r: Report) -> tuple[Markup, Markup]:
    hours = [f"{h:02d}" for h in range(24)]
    per_hour = charts.bar_chart("Calls per hour of day", hours, [
        charts.Series("Answered", r.hourly_answered), charts.Series("Abandoned", r.hourly_abandoned)], integer=True)
    days = [d.strftime("%d %b") for d in f.days()]
    per_day = charts.line_chart("Service level per day", days, [charts.Series("Service level", r.daily_sl)],
                                unit=" %", y_max=100.0)
    return per_hour, per_day


KPI_CSV_HEADER = ("queue", "sl_threshold_s", "offered", "answered", "missed", "abandoned", "overflowed",
                  "abandon_rate_pct", "service_level_pct", "asa_s", "att_s", "aht_s", "fcr_pct",
                  "ring_no_answer", "inbound_calls", "outbound_calls", "internal_calls", "surveys",
                  "csat_avg", "csat_pct", "nps", "ces_avg")


def _round(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def kpi_rows(f: Filters, r: Report) -> list[list[Any]]:
    """The KPI table: one row for the whole selection, then one per queue."""
    def row(name: str, threshold: Any, k: Kpis, survey: interactions.SurveyKpis,
            volume: Mapping[str, int] | None) -> list[Any]:
        vol = [volume.get(d, 0) for d in ("inbound", "outbound", "internal")] if volume is not None else ["", "", ""]
        return [name, threshold, k.offered, k.answered, k.missed, k.abandoned, k.overflowed,
                _round(k.abandon_rate), _round(k.service_level), _round(k.asa_s), _round(k.att_s),
                _round(k.aht_s), _round(k.fcr), k.ring_no_answer, *vol, survey.surveys,
                _round(survey.csat_avg), _round(survey.csat_pct), _round(survey.nps), _round(survey.ces_avg)]

    rows = [row(f.queue or "all queues", "per queue" if r.threshold is None else r.threshold, r.total, r.survey,
                r.volume)]
    for name, threshold, k in r.per_queue:
        rows.append(row(name, threshold, k, r.survey_per_queue[name], None))
    return rows


@bp.route("/")
@login_required(*ROLES)
def index() -> tuple[str, int]:
    f = parse_filters(request.args)
    r = build_report(f)
    per_hour, per_day = report_charts(f, r)
    return render_template(
        "reports/index.html", f=f, r=r, per_hour=per_hour, per_day=per_day,
        queues=acd.queues(store()), agents=acd.agents(store()), pct=fmt_pct, secs=fmt_secs, num=fmt_num,
        csv_args=_args(f)), 400 if f.errors else 200


def _args(f: Filters) -> dict[str, str]:
    args = {"start": f.start.isoformat(), "end": f.end.isoformat()}
    if f.queue:
        args["queue"] = f.queue
    if f.agent:
        args["agent"] = f.agent
    return args


@bp.route("/kpis.csv")
@login_required(*ROLES)
def kpis_csv() -> Response:
    f = parse_filters(request.args)
    if f.errors:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in f.errors.items()))
    r = build_report(f)
    return csv_response(f"kpis-{f.start}-{f.end}.csv", KPI_CSV_HEADER, kpi_rows(f, r))


# -- call search ---------------------------------------------------------------------------------
CALL_CSV_HEADER = ("id", "start", "caller", "caller_name", "callee", "direction", "disposition",
                   "duration_s", "billsec_s", "trunk", "call_id", "recording_id")


def call_filters(args: Mapping[str, str]) -> tuple[Filters, str, str]:
    f = parse_period(args)
    number = (args.get("number") or "").strip()
    disposition = (args.get("disposition") or "").strip()
    if number and not NUMBER_RE.fullmatch(number):
        f.errors["number"] = "digits, letters or + * # @ . _ - (up to 64)"
        number = ""
    if disposition and disposition not in DISPOSITIONS:
        f.errors["disposition"] = f"one of {', '.join(DISPOSITIONS)}"
        disposition = ""
    return f, number, disposition


def search_calls(f: Filters, number: str, disposition: str, limit: int) -> list[CallRow]:
    """Call records started in the period, newest first, with the call's first recording."""
    return report_store.search_calls(store(), f.start_ts, f.end_ts, number, disposition, limit)


@bp.route("/calls")
@login_required(*ROLES)
def calls() -> tuple[str, int]:
    f, number, disposition = call_filters(request.args)
    q = page_query(request.args, report_store.CALL_SORTS)
    page = report_store.calls_page(store(), f.start_ts, f.end_ts, q, number, disposition)
    args = {"start": f.start.isoformat(), "end": f.end.isoformat(), "number": number, "disposition": disposition}
    return render_template(
        "reports/calls.html", f=f, number=number, disposition=disposition, dispositions=DISPOSITIONS,
        t=table(page, "reports.calls", args), rows=page.rows, secs=fmt_secs, local_time=local_time,
        csv_args={k: v for k, v in args.items() if v}), 400 if f.errors else 200


@bp.route("/calls.csv")
@login_required(*ROLES)
def calls_csv() -> Response:
    f, number, disposition = call_filters(request.args)
    if f.errors:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in f.errors.items()))
    rows = search_calls(f, number, disposition, MAX_CSV_ROWS)
    return csv_response(f"calls-{f.start}-{f.end}.csv", CALL_CSV_HEADER, (
        [c.id, local_time(c.start).isoformat(sep=" ", timespec="seconds"), c.caller, c.caller_name, c.callee,
         c.direction, c.disposition or "", _round(c.duration), _round(c.billsec), c.trunk or "", c.call_id,
         c.recording_id or ""] for c in rows))


# -- recordings ----------------------------------------------------------------------------------
def recordings_root() -> Path:
    # The site's shared directory: the file may come from any engine of the site (the index
    # holds its path relative to recordings/, the same on every node).
    return Path(current_app.config["SHARED_DIR"]) / "recordings"


def recording_file(rel: str) -> Path:
    """The file of a recording whose index row says `rel`; 403 if it points outside the recordings
    directory (a row written by hand or by a bug must not become a way to read any file)."""
    root = recordings_root().resolve()
    target = (root / rel).resolve()
    if not target.is_relative_to(root):
        abort(403, description="this recording's path points outside the recordings directory")
    if not target.is_file():
        abort(404, description="the recording's file is missing (deleted by retention?)")
    return target


@bp.route("/recordings/<int:recording_id>.wav")
@login_required(*ROLES)
def recording(recording_id: int) -> Response:
    found = recordings.get(store(), recording_id)
    if found is None:
        abort(404, description=f"no recording {recording_id}")
    rel, call_id, agent, queue = found.path, found.call_id, found.agent, found.queue
    target = recording_file(rel)
    # A browser fetches a WAV in several ranges while it plays; audit the first one only.
    range_header = request.headers.get("Range", "")
    if not range_header or range_header.replace(" ", "").startswith("bytes=0-"):
        audit("recording.play", str(recording_id),
              after={"call_id": call_id, "agent": agent, "queue": queue, "path": rel})
    return send_file(target, mimetype="audio/wav", conditional=True, max_age=0)


# -- per agent -----------------------------------------------------------------------------------
# The figures come from rollup_reports.agent_figures (one row per agent, summed in SQL from the
# roll-ups), so the rows are few and are sorted here; the SQL column names are unused.
AGENT_SORTS = Sorts({k: k for k in ("agent", "calls", "aht_s", "att_s", "talk_s", "hold_s", "wrap_s",
                                    "pause_total", "logged_in_s", "occupancy")},
                    default="calls", default_descending=True, tiebreak="agent")
AGENT_CSV_HEADER = ("agent", "name", "calls", "aht_s", "att_s", "talk_s", "hold_s", "wrap_s", "pause_s",
                    "pauses_by_reason", "logged_in_s", "occupancy_pct")


def agent_rows(f: Filters) -> list[rollup_reports.AgentFigures]:
    return rollup_reports.agent_figures(store(), f.start_ts, f.end_ts,
                                        rollup_reports.Scope(queue=f.queue or None, agent=f.agent or None))


def _agent_key(sort: str, names: Mapping[str, str]) -> Any:
    def key(a: rollup_reports.AgentFigures) -> tuple[int, Any]:
        if sort == "agent":
            return (0, names.get(a.agent, a.agent).casefold())
        value = sum(a.pause_s.values()) if sort == "pause_total" else getattr(a, sort)
        return (0, value) if value is not None else (1, 0)  # no figure sorts last
    return key


@bp.route("/agents")
@login_required(*ROLES)
def agents() -> tuple[str, int]:
    f = parse_filters(request.args)
    q = page_query(request.args, AGENT_SORTS)
    names = {a.agent_id: a.name or a.agent_id for a in acd.agents(store())}
    rows = sorted(agent_rows(f), key=_agent_key(q.sort, names), reverse=q.descending)
    page = Page(rows[q.offset:q.offset + q.limit], len(rows), q)
    return render_template(
        "reports/agents.html", f=f, t=table(page, "reports.agents", _args(f)), rows=page.rows, names=names,
        queues=acd.queues(store()), agents=acd.agents(store()), pct=fmt_pct, secs=fmt_secs,
        csv_args=_args(f)), 400 if f.errors else 200


@bp.route("/agents.csv")
@login_required(*ROLES)
def agents_csv() -> Response:
    f = parse_filters(request.args)
    if f.errors:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in f.errors.items()))
    names = {a.agent_id: a.name for a in acd.agents(store())}
    return csv_response(f"agents-{f.start}-{f.end}.csv", AGENT_CSV_HEADER, (
        [a.agent, names.get(a.agent, ""), a.calls, _round(a.aht_s), _round(a.att_s), _round(a.talk_s),
         _round(a.hold_s), _round(a.wrap_s), _round(sum(a.pause_s.values())),
         "; ".join(f"{r or 'none'}={round(s)}" for r, s in sorted(a.pause_s.items())), _round(a.logged_in_s),
         "" if a.occupancy is None else f"{a.occupancy:.1f}"] for a in agent_rows(f)))


# -- intervals -----------------------------------------------------------------------------------
INTERVAL_SORTS = Sorts({"start": "start"}, default="start", default_descending=False, tiebreak="start")
INTERVAL_CSV_HEADER = ("start", "offered", "answered", "abandoned", "service_level_pct", "asa_s", "aht_s")


def interval_filters(args: Mapping[str, str]) -> tuple[Filters, str]:
    f = parse_filters(args)
    size = (args.get("interval") or "1h").strip()
    if size not in rollup_reports.INTERVALS:
        f.errors["interval"] = f"one of {', '.join(rollup_reports.INTERVALS)}"
        size = "1h"
    return f, size


def interval_rows(f: Filters, size: str) -> list[rollup_reports.IntervalRow]:
    return rollup_reports.intervals(store(), f.start_ts, f.end_ts, rollup_reports.INTERVALS[size],
                                    rollup_reports.Scope(queue=f.queue or None))


def interval_label(ts: float, size: str) -> str:
    return local_time(ts).strftime("%Y-%m-%d" if size == "1d" else "%Y-%m-%d %H:%M")


@bp.route("/intervals")
@login_required(*ROLES)
def intervals() -> tuple[str, int]:
    f, size = interval_filters(request.args)
    q = page_query(request.args, INTERVAL_SORTS)
    rows = interval_rows(f, size)
    if q.descending:
        rows.reverse()
    page = Page(rows[q.offset:q.offset + q.limit], len(rows), q)
    args = {**_args(f), "interval": size}
    return render_template(
        "reports/intervals.html", f=f, size=size, sizes=rollup_reports.INTERVALS,
        t=table(page, "reports.intervals", args), rows=page.rows, interval_label=interval_label,
        queues=acd.queues(store()), pct=fmt_pct, secs=fmt_secs, csv_args=args), 400 if f.errors else 200


@bp.route("/intervals.csv")
@login_required(*ROLES)
def intervals_csv() -> Response:
    f, size = interval_filters(request.args)
    if f.errors:
        abort(400, description="; ".join(f"{k}: {v}" for k, v in f.errors.items()))
    return csv_response(f"intervals-{size}-{f.start}-{f.end}.csv", INTERVAL_CSV_HEADER, (
        [interval_label(r.start, size), r.counts.offered, r.counts.answered, r.counts.abandoned,
         "" if r.counts.service_level is None else f"{r.counts.service_level:.1f}", _round(r.counts.asa_s),
         _round(r.counts.aht_s)] for r in interval_rows(f, size)))


# -- time sheet ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SheetDay:
    """One agent's day: its logins and pauses in order, with the day's totals."""

    day: dt.date
    entries: list[rollup_reports.TimeSheetEntry]

    def total(self, kind: str) -> float:
        return sum((e.end or e.start) - e.start for e in self.entries if e.kind == kind)


def time_sheet_days(f: Filters) -> list[SheetDay]:
    """The agent's time sheet, one day at a time (each day a few rows of the log, by index)."""
    if not f.agent:
        return []
    days = [SheetDay(d, rollup_reports.time_sheet(store(), f.agent, day_start(d),
                                                  day_start(d + dt.timedelta(days=1)))) for d in f.days()]
    return [d for d in days if d.entries]


@bp.route("/timesheet")
@login_required(*ROLES)
def timesheet() -> tuple[str, int]:
    f = parse_filters(request.args)
    if not f.agent and "agent" in request.args:
        f.errors.setdefault("agent", "choose an agent")
    return render_template(
        "reports/timesheet.html", f=f, days=time_sheet_days(f), agents=acd.agents(store()), secs=fmt_secs,
        local_time=local_time), 400 if f.errors else 200
