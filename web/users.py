"""Web users (admin only): create with a one-time password, change role, reset, unlock, delete; the audit
log viewer; and the per-address limit on failed logins (the account lockout stops guessing one
password, this stops one address trying many accounts)."""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.schema.accounts import ROLES
from appliance.schema.errors import RecordInvalid
from appliance.store import acd
from appliance.store import web_sessions
from appliance.store.accounts import AUDIT_SORTS
from appliance.store.paging import MAX_OFFSET
from web import accounts
from web.context import audit, current_user, login_required, store
from web.paging import page_query, table

bp = Blueprint("users", __name__, url_prefix="/users")

AUDIT_PAGE = 100


@bp.before_app_request
def throttle_logins() -> tuple[str, int] | None:
    """Refuse login attempts (429) from an address with too many recent failures."""
    if request.endpoint != "auth.login" or request.method != "POST":
        return None
    if not accounts.login_throttled(store(), request.remote_addr or "", time.time()):
        return None
    minutes = int(accounts.LOGIN_LIMIT_WINDOW // 60)
    error = (f"Too many failed logins from your address ({request.remote_addr}): wait {minutes} minutes,"
             " or ask an admin.")
    return render_template("login.html", error=error), 429


def _record(user: accounts.User) -> dict[str, Any]:
    return {"username": user.username, "role": user.role, "agent_id": user.agent_id}


def _field_errors(exc: RecordInvalid, under: str = "") -> dict[str, str]:
    """Each error beside its field (``under`` a user's row: "bob.role"); one without a field on the form."""
    errors: dict[str, str] = {}
    for error in exc.errors:
        key = f"{under}.{error.field}" if under and error.field else (error.field or "form")
        errors[key] = f"{errors[key]}; {error.msg}" if key in errors else error.msg
    return errors


def _acting() -> str:
    user = current_user()
    return user.username if user else ""


def _render_index(errors: dict[str, str] | None = None, form: dict[str, str] | None = None,
                  status: int = 200) -> tuple[str, int]:
    s = store()
    return render_template("users/index.html", users=accounts.users(s), agents=acd.agents(s),
                           roles=ROLES, errors=errors or {}, form=form or {}, now=time.time(),
                           me=_acting()), status


@bp.route("/")
@login_required("admin")
def index() -> tuple[str, int]:
    return _render_index()


@bp.route("/create", methods=["POST"])
@login_required("admin")
def create() -> Response | tuple[str, int]:
    form = {k: request.form.get(k, "").strip() for k in ("username", "role", "agent_id")}
    password = accounts.one_time_password()
    s = store()
    try:
        user = accounts.add_user(s, form["username"], password, form["role"], form["agent_id"], time.time())
    except RecordInvalid as exc:
        return _render_index(_field_errors(exc), form, 400)
    audit("user.create", user.username, after=_record(user))
    return _show_once(user.username, password, created=True)


def _show_once(username: str, password: str, created: bool) -> Response:
    """The one-time password page; never kept in a browser or proxy cache."""
    resp = make_response(render_template("users/password.html", username=username, password=password,
                                         created=created))
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _user_or_404(username: str) -> accounts.User:
    user = accounts.get_user(store(), username)
    if user is None:
        abort(404, description=f"there is no user {username!r}")
    return user


@bp.route("/<username>/role", methods=["POST"])
@login_required("admin")
def change_role(username: str) -> Response | tuple[str, int]:
    _user_or_404(username)
    role, agent_id = request.form.get("role", ""), request.form.get("agent_id", "")
    try:
        before, after = accounts.set_role(store(), username, role, agent_id)
    except RecordInvalid as exc:
        return _render_index(_field_errors(exc, under=username), status=400)
    audit("user.role", username, before=_record(before), after=_record(after))
    flash(f"{username} is now {after.role}" + (f" (agent {after.agent_id})." if after.agent_id else "."))
    return redirect(url_for("users.index"))


@bp.route("/<username>/reset", methods=["POST"])
@login_required("admin")
def reset(username: str) -> Response:
    user = _user_or_404(username)
    password = accounts.reset_password(store(), username)
    web_sessions.revoke_user_sessions(store(), username, time.time())
    audit("user.reset_password", username, before={"must_change": user.must_change, "locked": _locked(user)},
          after={"must_change": True, "locked": False})
    return _show_once(username, password, created=False)


def _locked(user: accounts.User) -> bool:
    return user.locked_until is not None and user.locked_until > time.time()


@bp.route("/<username>/unlock", methods=["POST"])
@login_required("admin")
def unlock(username: str) -> Response:
    _user_or_404(username)
    before = accounts.unlock(store(), username)
    audit("user.unlock", username, before={"failed_logins": before.failed_logins, "locked_until": before.locked_until},
          after={"failed_logins": 0, "locked_until": None})
    flash(f"{username} is unlocked.")
    return redirect(url_for("users.index"))


@bp.route("/<username>/delete", methods=["POST"])
@login_required("admin")
def delete(username: str) -> Response | tuple[str, int]:
    _user_or_404(username)
    try:
        before = accounts.delete_user(store(), username, _acting())
        web_sessions.revoke_user_sessions(store(), username, time.time())
    except RecordInvalid as exc:
        # Refusals of a deletion (yourself, the last admin) show beside the row's Delete button.
        return _render_index({f"{username}.delete": "; ".join(e.msg for e in exc.errors)}, status=400)
    audit("user.delete", username, before=_record(before))
    flash(f"User {username} deleted.")
    return redirect(url_for("users.index"))


# -- audit log ----------------------------------------------------------------------------------
def _changes(before: Any, after: Any) -> list[tuple[str, str, str, bool]] | None:
    """Field-by-field rows (field, before, after, changed) when both sides are records; else None."""
    if not isinstance(before, (dict, type(None))) or not isinstance(after, (dict, type(None))):
        return None
    if before is None and after is None:
        return []
    b, a = before or {}, after or {}
    rows = []
    for key in sorted(set(b) | set(a)):
        old = _show(b[key]) if key in b else ""
        new = _show(a[key]) if key in a else ""
        rows.append((key, old, new, before is not None and after is not None and b.get(key) != a.get(key)))
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


@bp.route("/audit")
@login_required("admin")
def audit_log() -> str:
    username = request.args.get("user", "").strip()
    action = request.args.get("action", "").strip()
    q = page_query(request.args, AUDIT_SORTS, AUDIT_PAGE)
    raw = request.args.get("offset")
    if raw is not None:
        # The older links' `offset` (rows to skip) still works. SQLite's OFFSET is a signed
        # 64-bit integer: 10^23 raised OverflowError (a 500).
        raw = raw.strip()
        if not raw.isdecimal() or len(raw) > 12 or int(raw) > MAX_OFFSET:
            abort(400, description=f"offset: a whole number from 0 to {MAX_OFFSET}")
        q = dataclasses.replace(q, offset=int(raw) // q.limit * q.limit)
    s = store()
    found = accounts.audit_page(s, q, username=username, action=action)
    names, actions = accounts.audit_facets(s)
    prefixes = sorted({a.split(".", 1)[0] for a in actions if "." in a} - set(actions))
    rows = [(e, _changes(e.before, e.after)) for e in found.rows]
    return render_template("users/audit.html", rows=rows, names=names, actions=sorted(set(actions) | set(prefixes)),
                           user=username, action=action, t=table(found, "users.audit_log",
                                                                 {"user": username, "action": action}),
                           pretty=lambda v: json.dumps(v, indent=2, ensure_ascii=False))


@bp.app_template_filter("sys_time")
def local_time(at: float) -> str:
    """An audit timestamp in the appliance's local time, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
