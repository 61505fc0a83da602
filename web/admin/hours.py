"""Business hours and holidays: they live in the flows' `hours` nodes; this page lists them all and
edits one node's time zone, weekly open ranges and holidays in a form.

A saved form changes only that node's ``timezone``/``open``/``holidays`` keys of the flow document, is
validated as a whole by the engine's own parser (`load_flow`) and is published by the flow editor's
`publish_flow`, so it is versioned, kept, audited and reloaded like any other flow change. The document
goes through a YAML round trip, so comments in that flow's file are not kept (the form says so).
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from flask import abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ivr.flow import FlowError, HoursNode, load_flow
from appliance.ivr.flow_schema import flow_message
from appliance.schema.errors import FieldError
from web.admin import bp
from web.admin.flows import FLOW_NAME_RE, flows_dir, kept_versions, publish_flow, published_names
from web.admin.forms import LINES, SELECT, Field, FormState
from web.context import login_required

# The three keys of an hours node this form owns; every other key of the document is left as it is.
HOURS_KEYS = ("timezone", "open", "holidays")
_YEARLY_RE = re.compile(r"^\d{2}-\d{2}$")


@dataclass
class HoursEntry:
    """One `hours` node of a published flow."""

    flow: str
    node: str
    timezone: str
    open: list[str]
    holidays: list[str]
    open_now: bool
    next_open: str
    next_closed: str


@functools.cache
def timezone_choices() -> list[tuple[str, str]]:
    """Every IANA zone this system knows, sorted (read once: the zone database does not change while we run)."""
    return [(z, z) for z in sorted(zoneinfo.available_timezones())]


FIELDS = [
    Field("timezone", "Time zone", SELECT, choices=timezone_choices,
          help="Open ranges and holidays are this zone's wall-clock time (summer time included)."),
    Field("open", "Open", LINES, placeholder="mon-fri 08:30-18:00\nsat 09:00-12:00",
          help="One range per line: days (mon..sun, 'mon-fri', 'mon,wed,fri') then HH:MM-HH:MM; "
               "the end may be 24:00. Closed outside these ranges."),
    Field("holidays", "Holidays (closed all day)", LINES, placeholder="2026-12-25\n05-01",
          help="One date per line: YYYY-MM-DD for that day only, MM-DD for the same day every year."),
]


def _parse_document(text: str) -> Any:
    """The flow document as data, read the way `load_flow` reads it (JSON when it starts with '{')."""
    return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)


def hours_entries(now: dt.datetime) -> tuple[list[HoursEntry], list[str]]:
    """Every hours node of every valid published flow, and the flows that could not be read."""
    entries: list[HoursEntry] = []
    broken: list[str] = []
    for name in published_names(current_app.config["DATA_DIR"]):
        text = (flows_dir() / f"{name}.yaml").read_text(encoding="utf-8")
        try:
            flow = load_flow(text)
        except FlowError:
            broken.append(name)
            continue
        raw: Any = _parse_document(text)  # load_flow just parsed it: cannot fail here
        raw_nodes = raw.get("nodes", {}) if isinstance(raw, dict) else {}
        for node in flow.nodes.values():
            if not isinstance(node, HoursNode):
                continue
            body = raw_nodes.get(node.id, {}) if isinstance(raw_nodes, dict) else {}
            opened = [str(r) for r in body.get("open", [])] or [f"{len(node.open)} range(s)"]
            holidays = [str(h) for h in body.get("holidays", []) or []]
            entries.append(HoursEntry(name, node.id, node.timezone, opened, holidays, node.is_open(now),
                                      node.next_open, node.next_closed))
    return entries, broken


def _load_node(name: str, node: str) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """The published document of flow `name`, its hours node `node` (both as data) and its version; 404 otherwise."""
    path = flows_dir() / f"{name}.yaml"
    if not FLOW_NAME_RE.match(name) or not path.is_file():
        abort(404, description=f"no flow {name!r}")
    try:
        doc = _parse_document(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, yaml.YAMLError):
        abort(404, description=f"flow {name} cannot be read: fix it in the flow editor")
    nodes = doc.get("nodes") if isinstance(doc, dict) else None
    body = nodes.get(node) if isinstance(nodes, dict) else None
    if not isinstance(body, dict) or body.get("type") != "hours":
        abort(404, description=f"flow {name} has no hours node {node!r}")
    version = doc.get("version")
    return doc, body, version if isinstance(version, int) and not isinstance(version, bool) else None


def _raw_of(body: dict[str, Any]) -> dict[str, Any]:
    """The node's three keys as form strings."""
    def lines(value: Any) -> str:
        return "\n".join(str(v) for v in value) if isinstance(value, list) else ("" if value is None else str(value))
    return {"timezone": str(body.get("timezone") or ""), "open": lines(body.get("open")),
            "holidays": lines(body.get("holidays"))}


def _numbered_lines(text: str) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based line number in the text area."""
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def _holiday_value(text: str) -> str | dt.date:
    """A holiday as the document stores it: a date (written unquoted, like a hand-made file) when it is one,
    the text otherwise (``MM-DD`` yearly days, and anything `load_flow` will refuse with its own message)."""
    if _YEARLY_RE.match(text):
        return text
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return text


def _field_errors(errors: Sequence[FieldError], node: str,
                  lines: dict[str, list[tuple[int, str]]]) -> dict[str, str]:
    """Put `load_flow`'s field errors on the form by their path: ("nodes", <node>, "open", 2) goes
    beside the open ranges, naming the line; anything about the rest of the flow goes to the top ('')."""
    out: dict[str, list[str]] = {}
    for error in errors:
        loc = error.loc
        field = str(loc[2]) if len(loc) > 2 and loc[:2] == ("nodes", node) and loc[2] in HOURS_KEYS else ""
        index = loc[3] if field and len(loc) > 3 and isinstance(loc[3], int) else None
        what = error.msg
        if index is not None and index < len(lines.get(field, [])):
            number, text = lines[field][index]
            what = f"line {number} ({text}): {what}"
        out.setdefault(field, []).append(what if field else flow_message(error))
    return {k: "; ".join(v) for k, v in out.items()}


@bp.route("/hours/")
@login_required("admin")
def hours() -> str:
    now = dt.datetime.now(dt.UTC)
    entries, broken = hours_entries(now)
    return render_template("admin/hours.html", entries=entries, broken=broken, now=now)


@bp.route("/hours/<name>/<node>", methods=["GET", "POST"])
@login_required("admin")
def hours_edit(name: str, node: str) -> str | Response | tuple[str, int]:
    doc, body, version = _load_node(name, node)
    state = FormState(raw=_raw_of(body))
    status = 200
    if request.method == "POST":
        state.raw = {k: request.form.get(k, "").replace("\r\n", "\n").strip() for k in HOURS_KEYS}
        lines = {k: _numbered_lines(state.raw[k]) for k in ("open", "holidays")}
        if state.raw["timezone"]:
            body["timezone"] = state.raw["timezone"]
        else:
            body.pop("timezone", None)  # load_flow then says "required" beside the field
        body["open"] = [text for _n, text in lines["open"]]
        if lines["holidays"]:
            body["holidays"] = [_holiday_value(text) for _n, text in lines["holidays"]]
        else:
            body.pop("holidays", None)
        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)
        try:
            publish_flow(name, text, action="hours.update")
        except FlowError as exc:
            state.errors = _field_errors(exc.fields, node, lines)
            status = 400
        else:
            return redirect(url_for("admin.hours"))
    node_now = _node_now(name, node)
    return render_template("admin/hours_edit.html", name=name, node=node, fields=FIELDS, state=state,
                           version=version, kept=kept_versions(flows_dir(), name), body=body,
                           open_now=node_now), status


def _node_now(name: str, node: str) -> bool | None:
    """Is the published node open right now? None when the published flow is not valid."""
    try:
        flow = load_flow((flows_dir() / f"{name}.yaml").read_text(encoding="utf-8"))
    except FlowError:
        return None
    current = flow.nodes.get(node)
    return current.is_open(dt.datetime.now(dt.UTC)) if isinstance(current, HoursNode) else None
