"""Per-request plumbing: the database, the engine's control API, who is logged in, CSRF."""
from __future__ import annotations

import functools
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, g, redirect, request, session, url_for

from appliance.api.client import ControlApiClient
from appliance.api.facade import ApiUnavailable
from appliance.store import web_sessions
from appliance.store.db import Store
from web import accounts

F = TypeVar("F", bound=Callable[..., Any])


def open_store() -> None:
    g.store = Store(current_app.config["DATABASE"])


def close_store(_exc: BaseException | None = None) -> None:
    store = g.pop("store", None)
    if store is not None:
        store.close()


def store() -> Store:
    return g.store  # type: ignore[no-any-return]


def engine() -> Any:
    """The control API client (raises ApiUnavailable when the engine is not running)."""
    client = current_app.config.get("API_CLIENT")
    if client is None:
        try:
            client = ControlApiClient.from_data_dir(current_app.config["DATA_DIR"], timeout=5.0)
        except (OSError, ValueError) as exc:  # no api.json yet: the engine never started here
            return _EngineNeverStarted(str(exc))
    return client


class _EngineNeverStarted:
    """Stands in for the client when the engine has not written api.json: every request says so,
    the same way a stopped engine's does, so pages have one case to handle."""

    def __init__(self, why: str) -> None:
        self.why = why

    def request(self, method: str, path: str, body: Any = None) -> Any:
        raise ApiUnavailable(f"engine not running ({self.why})")


def current_user() -> accounts.User | None:
    """The logged-in user: the cookie's session token must name a live server-side session."""
    if "user" in g:
        return g.user  # type: ignore[no-any-return]
    username, token = session.get("user"), session.get("sid")
    user = None
    if username and token:
        live = web_sessions.find_session(store(), str(token), time.time())
        if live is not None and live.username == username:
            user = accounts.get_user(store(), username)
    g.user = user
    return user


def start_session(username: str) -> None:
    """Log `username` in on this browser: a fresh cookie and a new server-side session."""
    lifetime = float(current_app.permanent_session_lifetime.total_seconds())
    session.clear()  # nothing from before the login carries over (session fixation)
    session["user"] = username
    session["sid"] = web_sessions.open_session(store(), username, time.time(), lifetime)
    session.permanent = True
    g.pop("user", None)


def end_session() -> None:
    """Log out: the server-side session is revoked, so a copy of the cookie is worth nothing."""
    token = session.get("sid")
    if token:
        web_sessions.revoke_session(store(), str(token), time.time())
    session.clear()
    g.pop("user", None)


def login_required(*roles: str) -> Callable[[F], F]:
    """Only logged-in users with one of `roles` (all roles when none given); 403 otherwise.

    A user who must change their password is sent to do so first.
    """
    def wrap(view: F) -> F:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.path))
            if user.must_change and request.endpoint != "auth.change_password":
                return redirect(url_for("auth.change_password"))
            if roles and user.role not in roles:
                abort(403)
            return view(*args, **kwargs)
        return inner  # type: ignore[return-value]
    return wrap


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def csrf_protect() -> None:
    """Every state-changing request carries the session's token (form field or header)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not hmac.compare_digest(sent, session.get("csrf", "") or "\0"):
        abort(400, description="missing or wrong CSRF token: reload the page and try again")


def audit(action: str, target: str = "", before: Any = None, after: Any = None) -> None:
    user = current_user()
    accounts.audit(store(), time.time(), user.username if user else "anonymous", action, target, before, after)


def nav_endpoints() -> set[str]:
    """Endpoints that exist in this build (areas land one by one; the menu shows what is there)."""
    return {rule.endpoint for rule in current_app.url_map.iter_rules()}


def inject_template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": current_user, "nav_endpoints": nav_endpoints}
