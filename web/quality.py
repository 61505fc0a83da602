"""Quality scorecards: a supervisor listens to a recorded call and scores the agent on the checklist.

The checklist (verification, call handling, call flow / script, soft skills, resolution, 0-5 each,
plus a comment) is the `quality_scores` table of migration 7. A scorecard's total is out of 25 and
shown as a percentage; the page follows each agent week by week (weeks start on Monday).
"""
from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.store import acd, recordings
from appliance.store import quality as quality_store
from appliance.store.quality import ScoreRow
from appliance.store.recordings import RecordingRow
from web import charts
from web.context import audit, current_user, login_required, store
from web.paging import page_query, table
from web.reports import ROLES, fmt_num, fmt_pct, local_time

bp = Blueprint("quality", __name__, url_prefix="/quality")

CRITERIA = (
    ("verification", "Verification", "identified the caller as the procedure requires"),
    ("call_handling", "Call handling", "greeting, holds and transfers, closing"),
    ("call_flow", "Call flow / script", "followed the script in the right order"),
    ("soft_skills", "Soft skills", "tone, empathy, listening"),
    ("resolution", "Resolution", "solved the caller's problem or set the right next step"),
)
MAX_SCORE = quality_store.MAX_POINTS  # the table's CHECK (0..5)
MAX_COMMENT = 2000
RECENT_DAYS = 30  # recordings offered for scoring
MAX_RECENT = 200
DEFAULT_WEEKS = 12
MAX_WEEKS = 104


RecordingChoice = RecordingRow  # what a supervisor can score: a row of the recordings index
Score = ScoreRow  # one stored scorecard


def recent_recordings(since: float) -> list[RecordingChoice]:
    """Recordings with an agent, newest first: what a supervisor can score."""
    return recordings.with_agent_since(store(), since, MAX_RECENT)


def get_recording(recording_id: int) -> RecordingChoice | None:
    return recordings.get(store(), recording_id)


def scores(since: float, agent: str | None = None) -> list[Score]:
    """Scorecards since `since`, oldest first, optionally for one agent."""
    return quality_store.scores(store(), since, agent)


def week_of(ts: float) -> dt.date:
    """The Monday starting the local week of `ts`."""
    day = local_time(ts).date()
    return day - dt.timedelta(days=day.weekday())


def weekly_averages(rows: list[Score], weeks: list[dt.date]) -> dict[str, list[float | None]]:
    """Per agent, the mean score (%) of each week; None for a week without a scorecard."""
    sums: dict[str, dict[dt.date, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in rows:
        sums[s.agent][week_of(s.at)].append(s.percent)
    return {agent: [sum(v) / len(v) if (v := by_week.get(w)) else None for w in weeks]
            for agent, by_week in sorted(sums.items())}


def validate(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The scorecard a form describes, and the errors by field (nothing is stored when any)."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    text = (form.get("recording_id") or "").strip()
    rec = get_recording(int(text)) if text.isdigit() else None
    if rec is None:
        errors["recording_id"] = "choose a recorded call"
    elif not rec.agent:
        errors["recording_id"] = "this recording has no agent to score"
    for name, label, _help in CRITERIA:
        raw = (form.get(name) or "").strip()
        if not raw.isdigit() or not 0 <= int(raw) <= MAX_SCORE:
            errors[name] = f"{label}: a whole number from 0 to {MAX_SCORE}"
        else:
            values[name] = int(raw)
    comment = (form.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        errors["comment"] = f"at most {MAX_COMMENT} characters ({len(comment)} given)"
    elif "\x00" in comment:
        errors["comment"] = "contains a NUL character"
    values["comment"] = comment
    if rec is not None:
        values.update(recording_id=rec.id, call_id=rec.call_id, agent=rec.agent)
    return values, errors


def save_score(values: dict[str, Any], supervisor: str, at: float) -> int:
    return quality_store.add_score(store(), {**values, "supervisor": supervisor, "at": at})


def _page(form: Mapping[str, str], errors: dict[str, str], status: int) -> tuple[str, int]:
    now = time.time()
    agent = (request.args.get("agent") or "").strip()
    weeks_text = (request.args.get("weeks") or str(DEFAULT_WEEKS)).strip()
    n_weeks = int(weeks_text) if weeks_text.isdigit() and 1 <= int(weeks_text) <= MAX_WEEKS else DEFAULT_WEEKS
    if weeks_text != str(n_weeks):
        errors = {**errors, "weeks": f"a number of weeks from 1 to {MAX_WEEKS}"}
        status = 400
    agents = acd.agents(store())
    if agent and agent not in {a.agent_id for a in agents}:
        errors = {**errors, "agent": f"no agent {agent!r}"}
        agent, status = "", 400
    this_week = week_of(now)
    weeks = [this_week - dt.timedelta(weeks=i) for i in range(n_weeks - 1, -1, -1)]
    rows = scores(dt.datetime.combine(weeks[0], dt.time()).timestamp(), agent or None)
    averages = weekly_averages(rows, weeks)
    cards = quality_store.scores_page(store(), page_query(request.args, quality_store.SCORE_SORTS),
                                      dt.datetime.combine(weeks[0], dt.time()).timestamp(), agent or None)
    names = {a.agent_id: a.name or a.agent_id for a in agents}  # the legend shows who, not an id
    chart = charts.line_chart("Quality score per week", [w.strftime("%d %b") for w in weeks],
                              [charts.Series(names.get(a, a), v) for a, v in averages.items()], unit=" %",
                              y_max=100.0)
    recordings = recent_recordings(now - RECENT_DAYS * 86400)
    chosen = (form.get("recording_id") or request.args.get("recording") or "").strip()
    if chosen.isdigit() and all(r.id != int(chosen) for r in recordings):
        rec = get_recording(int(chosen))  # an older one linked from the call search
        if rec is not None and rec.agent:
            recordings.insert(0, rec)
    return render_template(
        "quality/index.html", form=form, errors=errors, criteria=CRITERIA, max_score=MAX_SCORE,
        recordings=recordings, chosen=chosen, rows=cards.rows, averages=averages, weeks=weeks,
        chart=chart, agents=agents, agent=agent, n_weeks=n_weeks, names={a.agent_id: a.name for a in agents},
        pct=fmt_pct, num=fmt_num, local_time=local_time,
        t=table(cards, "quality.index", {"agent": agent, "weeks": str(n_weeks)})), status


@bp.route("/")
@login_required(*ROLES)
def index() -> tuple[str, int]:
    return _page({}, {}, 200)


@bp.route("/scores", methods=["POST"])
@login_required(*ROLES)
def score() -> Response | tuple[str, int]:
    values, errors = validate(request.form)
    if errors:
        return _page(request.form, errors, 400)
    user = current_user()
    supervisor = user.username if user else "?"
    score_id = save_score(values, supervisor, time.time())
    audit("quality.score", f"score {score_id}", before=None, after={**values, "supervisor": supervisor})
    total = sum(values[c[0]] for c in CRITERIA)
    flash(f"Scorecard saved for agent {values['agent']}: {total}/{MAX_SCORE * len(CRITERIA)}.")
    return redirect(url_for("quality.index", agent=values["agent"]))

