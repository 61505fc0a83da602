"""System > Backup: the schedule of backups (directory, interval, retention) and the log of its runs.

The schedule is five settings (appliance/schema/settings.py `backup.*`), checked by their one
`Setting` each, every error beside its field at once; plateau-backup.timer runs what they say
(appliance/system/backup_schedule.py). A run is not started from here: the web worker must not
spend a minute gzipping the database; `systemctl start plateau-backup` runs one now.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.schema.settings import (
    BACKUP_DIR_SETTING,
    BACKUP_EVERY_SETTING,
    BACKUP_KEEP_COUNT_SETTING,
    BACKUP_KEEP_DAYS_SETTING,
    BACKUP_MOUNT_SETTING,
    SETTINGS,
)
from appliance.store import backups
from appliance.system import backup_schedule
from web.context import audit, login_required, store

# form field -> setting
FIELDS = {"directory": BACKUP_DIR_SETTING, "every_hours": BACKUP_EVERY_SETTING,
          "keep_count": BACKUP_KEEP_COUNT_SETTING, "keep_days": BACKUP_KEEP_DAYS_SETTING,
          "require_mount": BACKUP_MOUNT_SETTING}


def _current() -> dict[str, str]:
    plan = backup_schedule.schedule(store())
    return {"directory": plan.directory, "every_hours": str(plan.every_hours), "keep_count": str(plan.keep_count),
            "keep_days": str(plan.keep_days), "require_mount": "yes" if plan.require_mount else "no"}


def page_context(form: dict[str, str] | None = None, errors: dict[str, str] | None = None) -> dict[str, Any]:
    """What backup.html needs for its schedule card."""
    return {"schedule": form or _current(), "schedule_errors": errors or {},
            "runs": backups.recent_runs(store(), 10)}


def save_schedule() -> Response | tuple[str, int]:
    form = {name: request.form.get(name, "").strip() for name in FIELDS}
    form["require_mount"] = "yes" if request.form.get("require_mount") == "yes" else "no"
    errors = {}
    for name, setting in FIELDS.items():
        problem = SETTINGS[setting].error(form[name])
        if problem:
            errors[name] = problem
    if errors:
        return render_template("system/backup.html", errors=[], **page_context(form, errors)), 400
    before = _current()
    s = store()
    with s.transaction():
        for name, setting in FIELDS.items():
            if form[name]:
                s.set_setting(setting, SETTINGS[setting].text(form[name]))
            else:  # an empty directory: scheduled backups off
                s.delete_setting(setting)
    audit("backup.schedule", "backup", before=before, after=form)
    flash("Backup schedule saved." if form["directory"] else "Scheduled backups are off.")
    return redirect(url_for("system.backup_page"))


def register(bp: Blueprint) -> None:
    """Add the schedule's route to the System blueprint (admin only)."""
    bp.add_url_rule("/backup/schedule", "backup_schedule", login_required("admin")(save_schedule), methods=["POST"])
