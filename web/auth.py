"""Logging in and out, and the forced change of a one-time password."""
from __future__ import annotations

import time

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from appliance.store.errors import ConfigError
from web import accounts
from web.context import audit, current_user, login_required, store

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        user = accounts.authenticate(store(), username, request.form.get("password", ""), time.time())
        if user is None:
            error = "Wrong user name or password, or the account is locked for a few minutes."
            accounts.audit(store(), time.time(), username or "?", "login.failed", request.remote_addr or "")
        else:
            session.clear()
            session["user"] = user.username
            session.permanent = True
            audit("login", request.remote_addr or "")
            target = request.args.get("next", "")
            if not target.startswith("/") or target.startswith("//"):
                target = url_for("home.index")
            return redirect(target)
    return render_template("login.html", error=error), 200 if error is None else 401  # type: ignore[return-value]


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if current_user() is not None:
        audit("logout")
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required()
def change_password() -> str | Response:
    user = current_user()
    assert user is not None  # noqa: S101 - login_required
    error = None
    if request.method == "POST":
        new, again = request.form.get("new_password", ""), request.form.get("new_password_again", "")
        if accounts.authenticate(store(), user.username, request.form.get("current_password", ""),
                                 time.time()) is None:
            error = "The current password is wrong."
        elif new != again:
            error = "The two new passwords differ."
        else:
            try:
                accounts.set_password(store(), user.username, new)
            except ConfigError as exc:
                error = str(exc).split(": ", 1)[-1]
            else:
                audit("password.change", user.username)
                flash("Password changed.")
                return redirect(url_for("home.index"))
    return render_template("password.html", error=error, forced=user.must_change)
