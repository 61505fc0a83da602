"""Outbound campaigns: the list with live dialer figures, the settings form, start/pause, delete.

Admins configure campaigns; supervisors watch them and start or pause them (the same people who
watch the wallboard decide when the floor dials). Settings live in the store
(appliance/store/dialer.py); the form shows every error of the campaign's model
(appliance/schema/campaigns.py) beside its field, and the store checks it again before anything is
written; run state belongs to the engine, so start/pause go through its control API
(POST /v1/campaigns/<name>/start|pause). The live figures are the engine's GET /v1/campaigns,
polled by campaigns.js from `stats`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.dialer import site
from appliance.dialer.campaign import MACHINE_ACTIONS, MODES, RETRYABLE, CampaignConfig
from appliance.dialer.numbers import NumberError, check_country
from appliance.store import acd
from appliance.store import dialer as dstore
from appliance.schema.campaigns import CampaignRecord
from appliance.schema.errors import ConfigError, FieldError, RecordInvalid, invalid
from appliance.schema.types import errors_of
from appliance.store.errors import StoreError
from web.admin.forms import (
    BOOL,
    INT,
    LINES,
    SELECT,
    TEXT,
    Field,
    FormState,
    raw_of,
    read_form,
    reload_engine,
    show_errors,
    show_refusal,
)
from web.context import audit, engine, login_required, store

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")

VIEWERS = ("admin", "supervisor")  # who may watch, start and pause campaigns

_MODE_HELP = {
    "preview": "Preview: the agent sees the lead first and decides to dial or skip",
    "progressive": "Progressive: one call per free agent",
    "predictive": "Predictive: dials ahead of free agents, held under the abandon cap",
}
_MACHINE_HELP = {"hangup": "Hang up", "message": "Leave the message below"}
FLOATS = ("abandon_cap", "abandon_seconds", "max_ratio")  # typed as text, read here


def _queues() -> list[tuple[str, str]]:
    return [(q.name, q.name) for q in acd.queues(store())]


def _trunks() -> list[tuple[str, str]]:
    return [(t.name, f"{t.name} ({t.host})" if getattr(t, "host", "") else t.name) for t in store().trunks()]


def site_country() -> str:
    return site.site_country(store())


def site_zone() -> str:
    return site.site_timezone(store())


FIELDS = [
    Field("name", "Identifier", placeholder="spring-offer",
          help="letters without accents, digits, '_', '.', '-': used in URLs and reports"),
    Field("label", "Display name", placeholder="Offre de printemps", help="what people read; empty: the identifier"),
    Field("mode", "Dialling mode", SELECT, choices=lambda: [(m, _MODE_HELP[m]) for m in MODES]),
    Field("queue", "Agents' queue", SELECT, choices=_queues, help="the queue whose members take this campaign's calls"),
    Field("trunk", "Trunk", SELECT, choices=_trunks, help="where the calls go out"),
    Field("caller_id", "Caller ID", TEXT, placeholder="+33140000000",
          help="the number prospects see; empty: the trunk's"),
    Field("country", "Country of the lists", TEXT, placeholder="FR",
          help="how national numbers in imported lists are read; empty: the site's country"),
    Field("windows", "Calling windows", LINES, placeholder="mon-fri 09:00-20:00\nsat 09:00-13:00",
          help="one per line, in each lead's own time zone"),
    Field("dispositions", "Disposition codes", LINES, placeholder="sale\nnot-interested\ncallback",
          help="one per line: what the agent picks when the call ends"),
    Field("max_attempts", "Tries per lead", INT, help="1-100, whatever their outcomes"),
    Field("abandon_cap", "Abandon cap (%)", TEXT, help="0-20; 3 % is the FTC's and Ofcom's limit"),
    Field("abandon_window_hours", "Abandon rate measured over (hours)", INT,
          help="720 (30 days) for the FTC, 24 for Ofcom"),
    Field("abandon_seconds", "Abandoned after (seconds)", TEXT,
          help="an answered call with no agent within this long is abandoned (0.5-10)"),
    Field("max_ratio", "Maximum calls per free agent", TEXT, help="predictive only, 1-10"),
    Field("amd", "Detect answering machines", BOOL),
    Field("machine_action", "On an answering machine", SELECT,
          choices=lambda: [(a, _MACHINE_HELP[a]) for a in MACHINE_ACTIONS]),
    Field("machine_message", "Answering machine message", TEXT, wide=True),
    Field("abandon_message", "Message on an abandoned call", TEXT, wide=True,
          help="spoken when no agent is free; required for predictive (FTC 16 CFR 310.4(b)(4)(iii))"),
    Field("script", "Agent script", LINES, wide=True,
          help="shown on the agent desk when a lead is connected; {first_name} etc. are not replaced"),
]


# -- engine access ------------------------------------------------------------------------------------
def live_stats() -> tuple[dict[str, dict[str, Any]], str]:
    """The engine's figures per campaign name, and '' or why there are none."""
    try:
        rows = engine().request("GET", "/v1/campaigns")
    except ApiUnavailable:
        return {}, "The engine is not running: no live figures."
    except ApiError as exc:
        return {}, f"The engine did not give campaign figures: {exc.message}"
    return {str(r.get("name")): stat_view(r) for r in rows or [] if isinstance(r, dict)}, ""


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100.0 * float(value):.1f} %"


def stat_view(r: dict[str, Any]) -> dict[str, Any]:
    """One campaign's figures as shown (rates are fractions in the API, percents on screen)."""
    rate, cap = r.get("abandon_rate"), r.get("abandon_cap")
    over = rate is not None and cap is not None and float(rate) >= float(cap)
    return {
        "name": r.get("name", ""), "state": r.get("state") or "", "mode": r.get("mode") or "",
        "agents_free": int(r.get("agents_free") or 0), "agents_busy": int(r.get("agents_busy") or 0),
        "in_flight": int(r.get("in_flight") or 0), "placed_today": int(r.get("placed_today") or 0),
        "answered_today": int(r.get("answered_today") or 0), "abandoned_today": int(r.get("abandoned_today") or 0),
        "answer_rate": _pct(r.get("answer_rate")), "abandon_rate": _pct(rate), "abandon_cap": _pct(cap),
        "over_cap": over, "dial_rate": f"{float(r.get('dial_rate_per_min') or 0.0):.1f}",
        "last_decision": str(r.get("last_decision") or ""),
    }


def get_or_404(name: str) -> CampaignConfig:
    found = dstore.get_campaign(store(), name)
    if found is None:
        abort(404, description=f"campaign {name} does not exist")
    return found


# -- the list and its live figures -----------------------------------------------------------------
def _render_index(error: str = "", status: int = 200) -> tuple[str, int]:
    s = store()
    items = [(c, dstore.lead_counts(s, c.name)) for c in dstore.campaigns(s)]
    stats, engine_message = live_stats()
    return render_template("campaigns/index.html", items=items, stats=stats, engine_message=engine_message,
                           error=error), status


@bp.route("/")
@login_required(*VIEWERS)
def index() -> tuple[str, int]:
    return _render_index()


@bp.route("/stats")
@login_required(*VIEWERS)
def stats() -> Response:
    """Live figures for campaigns.js: {engine: up|down, message, campaigns: {name: figures}}."""
    figures, message = live_stats()
    return jsonify({"at": time.time(), "engine": "down" if message else "up", "message": message,
                    "campaigns": figures})


@bp.route("/<name>/")
@login_required(*VIEWERS)
def detail(name: str) -> str:
    c = get_or_404(name)
    s = store()
    stats, engine_message = live_stats()
    return render_template("campaigns/detail.html", c=c, counts=dstore.lead_counts(s, name),
                           lists=dstore.lead_lists(s, name), stat=stats.get(name), engine_message=engine_message,
                           decisions=dstore.audit_log(s, name, 25), when=_when)


def _when(epoch: float | None) -> str:
    return "" if not epoch else time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch))


# -- start / pause ----------------------------------------------------------------------------------
def _run(name: str, action: str) -> Response | tuple[str, int]:
    c = get_or_404(name)
    back = request.form.get("back") == "detail"
    try:
        result = engine().request("POST", f"/v1/campaigns/{name}/{action}")
    except ApiUnavailable:
        if action == "pause":
            # Paused in the store, so the engine does not resume it when it starts again.
            with store().transaction():
                dstore.set_campaign_state(store(), name, "paused")
                audit("campaign.pause", name, {"state": c.state}, {"state": "paused", "engine": "down"})
            flash(f"Campaign {name} paused (the engine is not running).")
            return _back(name, back)
        return _render_index(f"Campaign {name} not started: the engine is not running.", 503)
    except ApiError as exc:
        status = exc.status if 400 <= exc.status < 500 else 502
        return _render_index(f"Campaign {name} not {'started' if action == 'start' else 'paused'}: {exc.message}",
                             status)
    after = result if isinstance(result, dict) else {"result": result}
    audit(f"campaign.{action}", name, {"state": c.state}, after)
    flash(f"Campaign {name} {'started' if action == 'start' else 'paused'}.")
    return _back(name, back)


def _back(name: str, detail: bool) -> Response:
    return redirect(url_for("admin.campaigns.detail", name=name) if detail else url_for("admin.campaigns.index"))


@bp.route("/<name>/start", methods=["POST"])
@login_required(*VIEWERS)
def start(name: str) -> Response | tuple[str, int]:
    return _run(name, "start")


@bp.route("/<name>/pause", methods=["POST"])
@login_required(*VIEWERS)
def pause(name: str) -> Response | tuple[str, int]:
    return _run(name, "pause")


# -- create / edit / delete ------------------------------------------------------------------------
def _raw_of(c: CampaignConfig) -> dict[str, Any]:
    raw = raw_of(c, FIELDS)
    raw["abandon_cap"] = f"{100.0 * c.abandon_cap:g}"
    raw["script"] = c.script
    for outcome in RETRYABLE:
        minutes = c.retry_minutes.get(outcome)
        raw[f"retry_minutes.{outcome}"] = "" if minutes is None else str(minutes)
    return raw


def _read(state: FormState, existing: CampaignConfig | None) -> CampaignConfig | None:
    """The campaign the posted form describes, or None with every type error in `state`."""
    plain = [f for f in FIELDS if f.name not in FLOATS and f.name != "script"
             and not (existing is not None and f.name == "name")]
    values: dict[str, Any] = read_form(request.form, plain, state, existing)
    values["script"] = state.raw["script"] = request.form.get("script", "").replace("\r\n", "\n").strip()
    for name in FLOATS:
        text = state.raw[name] = request.form.get(name, "").strip().replace(",", ".")
        try:
            values[name] = float(text)
        except ValueError:
            state.fail(name, f"{text!r} is not a number" if text else "required")
    if "abandon_cap" in values:
        values["abandon_cap"] = round(values["abandon_cap"] / 100.0, 6)
    retry: dict[str, int] = {}
    for outcome in RETRYABLE:
        key = f"retry_minutes.{outcome}"
        text = state.raw[key] = request.form.get(key, "").strip()
        if not text:
            continue  # no rule: that outcome ends the lead
        try:
            retry[outcome] = int(text)
        except ValueError:
            state.fail(key, f"{text!r} is not a whole number of minutes")
    values["retry_minutes"] = retry
    values["country"] = (values.get("country") or "").upper()
    if values["country"]:
        try:
            check_country(values["country"])
        except NumberError as exc:
            state.fail("country", str(exc))
    if existing is not None:
        values["name"] = existing.name
        values["state"] = existing.state
        state.raw["name"] = existing.name
    full = {**dataclasses.asdict(CampaignConfig(name="", queue="", trunk="")), **values}
    _show(state, errors_of(CampaignRecord, full))
    if state.errors:
        return None
    return CampaignConfig(**values)


def _show(state: FormState, errors: list[FieldError] | tuple[FieldError, ...], under: tuple[str, ...] = ()) -> None:
    """The model's errors beside their fields, in the form's own words where it shows a value
    differently: the cap as a percentage, each retry rule as its own minutes field."""
    rest = []
    unreadable = set(state.errors)  # a type error stays alone beside its field (show_errors)
    for error in errors:
        loc = error.loc[len(under):]
        if loc[:1] == ("abandon_cap",) or (loc[:1] == ("retry_minutes",) and len(loc) == 2):
            name = "abandon_cap" if loc[0] == "abandon_cap" else f"retry_minutes.{loc[1]}"
            if name in unreadable:
                continue
        if loc[:1] == ("abandon_cap",):
            state.fail("abandon_cap", "must be a percentage between 0 and 20")
        elif loc[:1] == ("retry_minutes",) and len(loc) == 2:
            state.fail(f"retry_minutes.{loc[1]}", "minutes: must be in 1..43200")
        else:
            rest.append(error)
    show_errors(state, rest, FIELDS, under)


def _render_form(state: FormState, existing: CampaignConfig | None) -> str:
    return render_template("campaigns/form.html", fields=FIELDS, state=state, existing=existing,
                           retryable=RETRYABLE, retry_keys=[f"retry_minutes.{o}" for o in RETRYABLE],
                           site_country=site_country(),
                           missing=[what for what, have in (("queue", _queues()), ("trunk", _trunks())) if not have])


def _save(state: FormState, existing: CampaignConfig | None) -> Response | tuple[str, int]:
    record = _read(state, existing)
    if record is None:
        return _render_form(state, existing), 400
    try:
        with store().transaction():
            if existing is None and dstore.get_campaign(store(), record.name) is not None:
                raise invalid(f"{record.name} already exists", "campaign", "name")
            dstore.put_campaign(store(), record)
            audit(f"campaign.{'update' if existing else 'create'}", record.name,
                  dataclasses.asdict(existing) if existing else None, dataclasses.asdict(record))
    except ConfigError as exc:
        if isinstance(exc, RecordInvalid):
            _show(state, exc.errors, ("campaign",))
        else:
            show_refusal(state, exc, FIELDS, ("campaign",))
        return _render_form(state, existing), 400
    flash(f"Campaign {record.name} saved.")
    reload_engine()
    return redirect(url_for("admin.campaigns.detail", name=record.name))


@bp.route("/new", methods=["GET", "POST"])
@login_required("admin")
def new() -> str | Response | tuple[str, int]:
    defaults = CampaignConfig(name="", queue="", trunk="")
    state = FormState(raw=_raw_of(defaults))
    if request.method == "POST":
        return _save(state, None)
    return _render_form(state, None)


@bp.route("/<name>/edit", methods=["GET", "POST"])
@login_required("admin")
def edit(name: str) -> str | Response | tuple[str, int]:
    existing = get_or_404(name)
    state = FormState(raw=_raw_of(existing))
    if request.method == "POST":
        return _save(state, existing)
    return _render_form(state, existing)


@bp.route("/<name>/delete", methods=["POST"])
@login_required("admin")
def delete(name: str) -> Response | tuple[str, int]:
    existing = get_or_404(name)
    if existing.state == "running":
        return _render_index(f"Campaign {name} is running: pause it before deleting it.", 409)
    counts = dstore.lead_counts(store(), name)
    try:
        with store().transaction():
            dstore.delete_campaign(store(), name)
            audit("campaign.delete", name, {**dataclasses.asdict(existing), "leads": counts}, None)
    except StoreError as exc:
        return _render_index(f"Not deleted: {exc}", 409)
    flash(f"Campaign {name} deleted with its lists and leads.")
    reload_engine()
    return redirect(url_for("admin.campaigns.index"))


from web.admin import lead_import  # noqa: E402  (adds the list import routes to `bp`)

__all__ = ["bp", "get_or_404", "lead_import", "live_stats", "site_country", "site_zone"]
