"""The local web UI (Flask): admin, wallboard, reports, agent desk.

It talks to the engine only through the control API and the database, so restarting the web
app never drops a call. `create_app` is the one way to build it (gunicorn, tests).
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from web import accounts
from web.security import security_headers
from web.context import close_store, csrf_protect, inject_template_globals, open_store


def create_app(data_dir: Path | str, *, testing: bool = False, api_client: Any = None,
               secret_key: str | None = None, tls: bool = False, db: str | Path | None = None,
               shared_dir: Path | str | None = None) -> Flask:
    """The web app for the appliance whose data lives in `data_dir` (`tls`: served over HTTPS).

    ``db``: the database (a PostgreSQL URL or a SQLite path; default `data_dir`/plateau.db);
    ``shared_dir``: where recordings/ and voicemail/ live (default `data_dir`), the directory
    every engine of the site writes them to (`plateau run --shared-dir`).
    """
    app = Flask(__name__)
    data = Path(data_dir)
    app.config.update(
        DATA_DIR=data,
        DATABASE=db or data / "plateau.db",
        SHARED_DIR=Path(shared_dir) if shared_dir else data,
        TESTING=testing,
        SECRET_KEY=secret_key or _secret_key(data),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # Never sent over plain HTTP once the UI is HTTPS (the cookie names a live session).
        SESSION_COOKIE_SECURE=tls,
        PERMANENT_SESSION_LIFETIME=8 * 3600,  # one shift
        MAX_CONTENT_LENGTH=512 * 1024 * 1024,  # a configuration backup with its recordings
        API_CLIENT=api_client,
    )
    app.before_request(open_store)
    app.before_request(csrf_protect)
    app.teardown_appcontext(close_store)
    app.after_request(security_headers)
    app.context_processor(inject_template_globals)

    from web.auth import bp as auth_bp
    from web.home import bp as home_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(home_bp)
    app.register_error_handler(HTTPException, _error_page)
    for name in ("admin", "wallboard", "reports", "agent_desk", "staffing", "quality", "system", "users", "leads"):
        _register_optional(app, name)
    return app


def _error_page(exc: HTTPException) -> tuple[str, int]:
    from flask import render_template

    return render_template("error.html", code=exc.code, name=exc.name, description=exc.description), exc.code or 500


def _register_optional(app: Flask, name: str) -> None:
    """Areas land one by one; each module that exists brings its blueprint."""
    import importlib

    try:
        module = importlib.import_module(f"web.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"web.{name}":
            raise
        return
    app.register_blueprint(module.bp)


def _secret_key(data: Path) -> str:
    """A per-appliance session key kept beside the database (mode 0600), made on first start."""
    path = data / "web_secret"
    if not path.exists():
        data.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()


def first_start(data_dir: Path | str, db: str | Path | None = None) -> str | None:
    """Create the first admin if there is no user yet; returns its one-time password."""
    from appliance.store.db import Store

    store = Store(db or Path(data_dir) / "plateau.db")
    try:
        return accounts.ensure_first_admin(store, time.time())
    finally:
        store.close()
