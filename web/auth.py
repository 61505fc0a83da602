"""Logging in and out, and the forced change of a one-time password."""
from __future__ import annotations

import time

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from appliance.store import web_sessions
from web import accounts
from web.context import audit, current_user, end_session, login_required, start_session, store
from web.security import safe_next

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    error = None
    target = safe_next(request.args.get("next", ""), url_for("home.index"))  # 400 before any work
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:256]
        address = request.remote_addr or ""
        user = accounts.authenticate(store(), username, request.form.get("password", ""), time.time(), address)
        if user is None:
            error = "Wrong user name or password, or the account is locked for a few minutes."
            accounts.audit(store(), time.time(), username or "?", "login.failed", address)
        else:
            start_session(user.username)
            audit("login", address)
            return redirect(target)
    return render_template("login.html", error=error), 200 if error is None else 401  # type: ignore[return-value]


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if current_user() is not None:
        audit("logout")
    end_session()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required()
def change_password() -> str | Response:
    user = current_user()
    assert user is not None  # noqa: S101 - login_required
    errors: dict[str, str] = {}
    if request.method == "POST":
        new, again = request.form.get("new_password", ""), request.form.get("new_password_again", "")
        # Every problem at once, each beside its field: the rules are the accounts' own (password_errors).
        if accounts.authenticate(store(), user.username, request.form.get("current_password", ""),
                                 time.time(), request.remote_addr or "") is None:
            errors["current_password"] = "The current password is wrong."
        for error in accounts.password_errors(new, user.username, "new_password"):
            errors[error.field] = error.msg
        if new != again:
            errors["new_password_again"] = "The two new passwords differ."
        if not errors:
            accounts.set_password(store(), user.username, new)
            audit("password.change", user.username)
            # Every other session of this user ends (a thief's stolen cookie too); this
            # browser gets a fresh one.
            web_sessions.revoke_user_sessions(store(), user.username, time.time())
            start_session(user.username)
            flash("Password changed.")
            return redirect(url_for("home.index"))
    return render_template("password.html", errors=errors, forced=user.must_change)
