"""Business hours and holidays: they live in the flows' `hours` nodes; this page lists them all.

Editing goes through the flow editor, so a change is validated and versioned like any other.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import yaml
from flask import current_app, render_template

from appliance.ivr.flow import FlowError, HoursNode, load_flow
from web.admin import bp
from web.admin.flows import flows_dir, published_names
from web.context import login_required


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
        raw: Any = yaml.safe_load(text) if not text.lstrip().startswith("{") else None
        raw_nodes = raw.get("nodes", {}) if isinstance(raw, dict) else {}
        for node in flow.nodes.values():
            if not isinstance(node, HoursNode):
                continue
            body = raw_nodes.get(node.id, {}) if isinstance(raw_nodes, dict) else {}
            opened = [str(r) for r in body.get("open", [])] or [f"{len(node.open)} range(s)"]
            holidays = [str(h) for h in body.get("holidays", [])]
            entries.append(HoursEntry(name, node.id, node.timezone, opened, holidays, node.is_open(now),
                                      node.next_open, node.next_closed))
    return entries, broken


@bp.route("/hours/")
@login_required("admin")
def hours() -> str:
    now = dt.datetime.now(dt.UTC)
    entries, broken = hours_entries(now)
    return render_template("admin/hours.html", entries=entries, broken=broken, now=now)
