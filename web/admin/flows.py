"""IVR flows: the published documents under data/flows/, an editor that validates with the
engine's own parser, versioned atomic publishing, and the simulator on the text being edited.

Publishing keeps the replaced document as ``<name>.v<version>.yaml`` beside it (the engine reads
``<name>.yaml`` only), then writes the new one to a temporary file and renames it over the old:
rename is atomic on POSIX, so the engine never reads half a flow.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.ivr.flow import KEPT_VERSION_RE, Flow, FlowError, load_flow, published_flow_names, target_errors
from appliance.schema.errors import FieldError
from appliance.ivr.simulate import Transcript, simulate
from web.admin import bp
from web.admin.forms import reload_engine
from web.context import audit, login_required

# Names usable as an ``ivr:<flow>`` destination (appliance/schema/records.py DESTINATION_RE); no dots,
# so a flow's name never collides with a kept version ``<name>.v<version>``.
FLOW_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_KEPT_RE = KEPT_VERSION_RE
_VERSION_LINE_RE = re.compile(r"(?m)^version:[ \t]*(\d+)[ \t]*(#.*)?$")


@dataclass
class FlowSummary:
    """One published flow as the list shows it."""

    name: str
    version: int | None
    description: str
    nodes: int
    error: str | None
    kept: list[int]


def flows_dir(data_dir: Path | None = None) -> Path:
    return Path(data_dir if data_dir is not None else current_app.config["DATA_DIR"]) / "flows"


def published_names(data_dir: Path) -> list[str]:
    """Names of the published flows (not the kept versions)."""
    return published_flow_names(flows_dir(data_dir))


def kept_versions(folder: Path, name: str) -> list[int]:
    """Versions kept as ``<name>.v<version>.yaml``, newest first."""
    out = []
    for p in folder.glob(f"{name}.v*.yaml"):
        m = _KEPT_RE.match(p.stem)
        if m and m.group("name") == name:
            out.append(int(m.group("version")))
    return sorted(out, reverse=True)


def summaries(data_dir: Path) -> list[FlowSummary]:
    folder = flows_dir(data_dir)
    out = []
    for name in published_names(data_dir):
        try:
            flow = load_flow((folder / f"{name}.yaml").read_text(encoding="utf-8"))
        except FlowError as exc:
            out.append(FlowSummary(name, None, "", 0, exc.errors[0], kept_versions(folder, name)))
            continue
        out.append(FlowSummary(name, flow.version, flow.description, len(flow.nodes), None,
                               kept_versions(folder, name)))
    return out


def publish(folder: Path, name: str, text: str, previous: Flow | None) -> None:
    """Write `text` as the published ``<name>.yaml``; keep the document it replaces as a version."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    if previous is not None and path.exists():
        _atomic_write(folder / f"{name}.v{previous.version}.yaml", path.read_text(encoding="utf-8"))
    _atomic_write(path, text)


def _atomic_write(path: Path, text: str) -> None:
    # The temporary name does not end in .yaml: the engine's glob never picks it up.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _current(folder: Path, name: str) -> tuple[str | None, Flow | None]:
    path = folder / f"{name}.yaml"
    if not path.exists():
        return None, None
    text = path.read_text(encoding="utf-8")
    try:
        return text, load_flow(text)
    except FlowError:
        return text, None  # a broken published file can still be replaced


_SKELETON = """name: {name}
version: 1
description: ""
start: welcome
nodes:
  welcome:
    type: play
    prompt: "say: Welcome."
    next: bye
  bye:
    type: hangup
"""


@bp.route("/flows/")
@login_required("admin")
def flows() -> str:
    return render_template("admin/flows.html", flows=summaries(current_app.config["DATA_DIR"]), error=None,
                           new_name="")


@bp.route("/flows/new", methods=["POST"])
@login_required("admin")
def flow_new() -> Response | tuple[str, int]:
    name = request.form.get("name", "").strip()
    error = None
    if not FLOW_NAME_RE.match(name):
        error = "letters, digits, '_' or '-', up to 64 (it becomes ivr:<name>)"
    elif name == "new":
        error = "'new' is reserved: choose another name"
    elif (flows_dir() / f"{name}.yaml").exists():
        error = f"flow {name} already exists"
    if error:
        return render_template("admin/flows.html", flows=summaries(current_app.config["DATA_DIR"]),
                               error=error, new_name=name), 400
    return redirect(url_for("admin.flow_edit", name=name))


@bp.route("/flows/<name>", methods=["GET", "POST"])
@login_required("admin")
def flow_edit(name: str) -> str | Response | tuple[str, int]:
    if not FLOW_NAME_RE.match(name):
        abort(404, description=f"no flow {name!r}")
    folder = flows_dir()
    old_text, old_flow = _current(folder, name)
    text = old_text if old_text is not None else _SKELETON.format(name=name)
    sim = {"digits": "", "caller": "", "at": ""}
    errors: list[str] = []
    transcript: Transcript | None = None
    status = 200
    if request.method == "POST":
        text = request.form.get("text", "").replace("\r\n", "\n")
        sim = {k: request.form.get(k, "").strip() for k in sim}
        action = request.form.get("action", "validate")
        flow: Flow | None = None
        try:
            flow = load_flow(text)
        except FlowError as exc:
            errors = exc.errors
        if flow is not None and flow.name != name:
            errors = [f"name: must stay {name!r} (the file name; create a new flow to rename)"]
        if flow is not None:
            # What the document names must exist on this site: Check calls nothing valid that routes nowhere.
            errors += FlowError(_missing_targets(flow)).errors
        if errors:
            status = 400
        elif flow is not None and action == "test":
            transcript, sim_error = _simulate(flow, sim)
            if sim_error:
                errors, status = [sim_error], 400
        elif flow is not None and action == "save":
            try:
                publish_flow(name, text)
            except FlowError as exc:
                errors, status = exc.errors, 400
            else:
                return redirect(url_for("admin.flow_edit", name=name))
        elif flow is not None:
            flash(f"Flow {name} is valid ({len(flow.nodes)} nodes). Not published yet.")
    return render_template("admin/flow_edit.html", name=name, text=text, errors=errors, sim=sim,
                           transcript=transcript, exists=old_text is not None,
                           published=old_flow, kept=kept_versions(folder, name)), status


def checked_flow(text: str) -> Flow:
    """`text` parsed and validated, its route targets included: a queue, extension, mailbox or flow
    it sends calls to must exist (Check and publishing refuse ``queue:nosuch``). Raises FlowError."""
    flow = load_flow(text)
    errors = _missing_targets(flow)
    if errors:
        raise FlowError(errors)
    return flow


def _missing_targets(flow: Flow) -> list[FieldError]:
    from web.admin.routes import catalogue

    return target_errors(flow, catalogue())


def publish_flow(name: str, text: str, action: str | None = None) -> Flow:
    """Validate `text` and publish it as flow `name`: the one way a flow is published.

    The version is raised above the published one when the text does not already do so, the replaced
    document is kept as ``<name>.v<old>.yaml``, the write is atomic, the change is audited (as `action`,
    default ``flow.update``/``flow.create``) and the engine is asked to reload. Raises FlowError, with
    nothing written, when the document is not valid.
    """
    folder = flows_dir()
    old_text, old_flow = _current(folder, name)
    flow = checked_flow(text)
    if flow.name != name:
        raise FlowError([f"name: must stay {name!r} (the file name; create a new flow to rename)"])
    if old_flow is not None and flow.version <= old_flow.version:
        # Publishing always makes a new version: raise the number for the admin when we can.
        bumped = old_flow.version + 1
        new_text, count = _VERSION_LINE_RE.subn(f"version: {bumped}", text, count=1)
        if count != 1:
            raise FlowError([f"version: must be above the published version {old_flow.version}"])
        text, flow = new_text, load_flow(new_text)
    publish(folder, name, text, old_flow)
    audit(action or ("flow.update" if old_text is not None else "flow.create"), name,
          before=None if old_text is None else {"name": name, "version": old_flow.version if old_flow else None,
                                                "text": old_text},
          after={"name": name, "version": flow.version, "text": text})
    flash(f"Flow {name} version {flow.version} published."
          + (f" Version {old_flow.version} is kept." if old_flow is not None else ""))
    reload_engine()
    return flow


def _simulate(flow: Flow, sim: dict[str, str]) -> tuple[Transcript | None, str | None]:
    """Run the simulator in-process; the caller's keys are comma-separated, one entry per prompt."""
    if sim["at"]:
        try:
            at = dt.datetime.fromisoformat(sim["at"])  # naive: each hours node's local time
        except ValueError:
            return None, f"at: {sim['at']!r} is not a date and time"
    else:
        at = dt.datetime.now(dt.UTC)
    digits = [d.strip() for d in sim["digits"].split(",")] if sim["digits"] else []
    bad = [d for d in digits if d not in ("", "timeout") and not re.fullmatch(r"[0-9*#A-D]+", d)]
    if bad:
        return None, f"digits: {bad[0]!r} is not DTMF keys (0-9, *, #) or 'timeout'"
    return simulate(flow, digits, sim["caller"] or "anonymous", at), None


@bp.route("/flows/<name>/v<int:version>")
@login_required("admin")
def flow_version(name: str, version: int) -> str:
    path = flows_dir() / f"{name}.v{version}.yaml"
    if not FLOW_NAME_RE.match(name) or not path.is_file():
        abort(404, description=f"flow {name} has no kept version {version}")
    return render_template("admin/flow_version.html", name=name, version=version,
                           text=path.read_text(encoding="utf-8"))
