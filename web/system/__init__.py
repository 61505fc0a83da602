"""System pages (admin only): health, the site's backup download, its schedule, and restore from an archive.

A restore is two steps: the upload is checked completely and a report shown (nothing written but
the pending archive, kept under data/restore-pending/ for the confirming click); "Restore now"
checks it again, applies it and asks the engine to reload.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, session, url_for
from werkzeug.wrappers import Response

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.store import acd
from web.context import audit, engine, login_required, store
from web.system import hardware as hardware_mod
from web.system import health as health_mod
from web.system import schedule as schedule_mod
from appliance.system.backup import BackupError, RestorePlan, apply_backup, check_backup, create_archive
from appliance.system.restore_diff import restore_diff

bp = Blueprint("system", __name__, url_prefix="/system")
hardware_mod.register(bp)  # the Hardware tab: /system/hardware and its refresh, hardware.json
schedule_mod.register(bp)  # the backup schedule: /system/backup/schedule

PENDING_DIR = "restore-pending"
PENDING_MAX_AGE = 3600.0  # an unconfirmed upload is dropped after an hour
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def _data_dir() -> Path:
    return Path(current_app.config["DATA_DIR"])


@bp.route("/")
@login_required("admin")
def index() -> str:
    return render_template("system/index.html",
                           health=health_mod.collect(Path(current_app.config["SHARED_DIR"]), store(), engine()))


def _backup_html(**context: Any) -> str:
    """The Backup tab: download, schedule and runs, restore (with `context`'s errors)."""
    return render_template("system/backup.html", **schedule_mod.page_context(), **context)


@bp.route("/backup", methods=["GET"])
@login_required("admin")
def backup_page() -> str:
    return _backup_html(errors=[])


@bp.route("/backup", methods=["POST"])
@login_required("admin")
def backup_download() -> Response:
    """The whole site as `plateau backup create` writes it: configuration, flows, prompts and, on
    SQLite, the database (CDRs, queue log, users, audit, scorecards, leads) and voicemail."""
    include = request.form.get("include_recordings") == "1"
    s = store()
    # Spooled on the data disk, where the database is (not /tmp, which may be small or private).
    scratch = _data_dir() / f".download-{secrets.token_hex(8)}.tar.gz"
    try:
        manifest = create_archive(scratch, s, _data_dir(), health_mod.web_version(), include_recordings=include,
                                  files_dir=Path(current_app.config["SHARED_DIR"]))
        out = open(scratch, "rb")  # noqa: SIM115 - send_file closes it
    finally:
        scratch.unlink(missing_ok=True)  # the open handle keeps the data until the download ends
    audit("backup.download", "site", after={
        "created_at": manifest["created_at"], "include_recordings": include, "files": len(manifest["files"]),
        "database": "schema_version" in manifest})
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"plateau-backup-{socket.gethostname()}-{stamp}.tar.gz"
    resp = send_file(out, mimetype="application/gzip", as_attachment=True, download_name=name)
    resp.headers["Cache-Control"] = "no-store"  # it holds SIP secrets
    return resp


def _pending_dir() -> Path:
    path = _data_dir() / PENDING_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    now = time.time()
    for old in path.glob("*.tar.gz"):
        if now - old.stat().st_mtime > PENDING_MAX_AGE:
            old.unlink(missing_ok=True)
    return path


def _current_summary() -> dict[str, Any]:
    s = store()
    flows = _data_dir() / "flows"
    return {"extensions": len(s.extensions()), "trunks": len(s.trunks()), "agents": len(acd.agents(s)),
            "queues": len(acd.queues(s)),
            "flows": sorted(p.name for p in flows.glob("*")) if flows.is_dir() else []}


@bp.route("/restore", methods=["POST"])
@login_required("admin")
def restore_check() -> tuple[str, int]:
    upload = request.files.get("archive")
    if upload is None or not upload.filename:
        return _backup_html(errors=[], field_error="Choose a backup archive (.tar.gz)."), 400
    token = secrets.token_hex(16)
    path = _pending_dir() / f"{token}.tar.gz"
    upload.save(str(path))
    try:
        with open(path, "rb") as fh:
            plan = check_backup(fh, store(), _data_dir())
    except BackupError as exc:
        path.unlink(missing_ok=True)
        audit("restore.refused", upload.filename, after={"errors": exc.errors[:50]})
        return _backup_html(errors=exc.errors, filename=upload.filename), 400
    session["restore_token"] = token
    session["restore_filename"] = upload.filename
    return _report(plan, token, upload.filename), 200


def _report(plan: RestorePlan, token: str, filename: str | None, confirm_error: str = "") -> str:
    return render_template("system/restore_report.html", plan=plan, summary=plan.summary(), token=token,
                           filename=filename, current=_current_summary(), diff=restore_diff(store(), plan),
                           confirm_error=confirm_error)


def _reload_engine() -> str:
    try:
        engine().request("POST", "/v1/reload")
    except ApiUnavailable:
        return " The engine is not running: it takes the restored configuration when it starts."
    except ApiError as exc:
        return f" The engine refused to reload ({exc.message}): restart it to take the restored configuration."
    return " The engine reloaded it."


@bp.route("/restore/apply", methods=["POST"])
@login_required("admin")
def restore_apply() -> Response | tuple[str, int]:
    token = request.form.get("token", "")
    if not _TOKEN.match(token) or session.get("restore_token") != token:
        abort(400, description="this restore is not pending any more: upload the archive again")
    path = _pending_dir() / f"{token}.tar.gz"
    if not path.exists():
        abort(400, description="this restore expired: upload the archive again")
    if request.form.get("confirm") != "yes":
        # Nothing is restored without the tick: show the same differences again, asking for it.
        with open(path, "rb") as fh:
            try:
                pending = check_backup(fh, store(), _data_dir())
            except BackupError as exc:
                return _backup_html(errors=exc.errors), 400
        return _report(pending, token, session.get("restore_filename"),
                       "Tick the box to confirm that this restore replaces the configuration."), 400
    before = _current_summary()
    try:
        with open(path, "rb") as fh:
            plan: RestorePlan = check_backup(fh, store(), _data_dir())  # again: the store may have changed
        result = apply_backup(plan, store(), _data_dir(), files_dir=Path(current_app.config["SHARED_DIR"]))
    except BackupError as exc:
        return _backup_html(errors=exc.errors), 400
    finally:
        path.unlink(missing_ok=True)
        session.pop("restore_token", None)
        session.pop("restore_filename", None)
    audit("restore.apply", plan.manifest.get("created_at", ""), before=before, after=plan.summary())
    flash(f"Backup of {plan.manifest.get('created_at')} restored: {result['extensions']} extensions, "
          f"{result['queues']} queues, {result['flows']} flows, {result['sounds']} prompts"
          + (f", {result['recordings_added']} recordings added" if result["recordings_added"] else "")
          + "." + _reload_engine())
    return redirect(url_for("system.index"))


@bp.app_template_filter("sys_bytes")
def human_bytes(n: int | float | None) -> str:
    """1536 -> "1.5 KiB"."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@bp.app_template_filter("sys_time")
def human_time(epoch: float | None) -> str:
    """An epoch as the box's local date and time, to the minute."""
    if epoch is None:
        return "–"
    return dt.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


@bp.app_template_filter("sys_duration")
def human_duration(seconds: float | None) -> str:
    """93784 -> "1 d 2 h 3 min"."""
    if seconds is None:
        return "–"
    s = int(seconds)
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {s % 60} s"
