"""Fixtures for the web UI: an app on a fresh data directory, a client logged in per role, and a
stand-in for the engine's control API (the web app's only door into the engine)."""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError
from appliance.store.db import Store
from web import accounts, create_app

PASSWORD = "correct-horse-battery"


class FakeEngineApi:
    """Answers like ControlApiClient.request; records what was asked. Tests set `responses`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.responses: dict[tuple[str, str], Any] = {
            ("GET", "/v1/status"): {"version": "test", "calls": 0, "registrations": 0},
            ("GET", "/v1/agents"): [],
            ("GET", "/v1/queues"): [],
            ("GET", "/v1/registrations"): [],
            ("POST", "/v1/reload"): {"reloaded": True},
        }

    def request(self, method: str, path: str, body: Any = None) -> Any:
        self.requests.append((method, path, body))
        answer = self.responses.get((method, path))
        if isinstance(answer, Exception):
            raise answer
        if answer is None:
            raise ApiError(404, f"no route {method} {path} in the fake engine")
        return answer


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def engine_api() -> FakeEngineApi:
    return FakeEngineApi()


@pytest.fixture
def app(data_dir: Path, engine_api: FakeEngineApi) -> Flask:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir / "plateau.db")
    try:
        for name, role in (("admin", "admin"), ("super", "supervisor"), ("agent1", "agent")):
            accounts.create_user(store, name, PASSWORD, role, time.time(), must_change=False,
                                 agent_id="2001" if role == "agent" else None)
    finally:
        store.close()
    return create_app(data_dir, testing=True, api_client=engine_api, secret_key="test-secret")


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    page = client.get(path, follow_redirects=True).get_data(as_text=True)
    m = re.search(r'name="csrf-token" content="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page)
    assert m, f"no CSRF token on {path}"
    return m.group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> FlaskClient:
    token = csrf_of(client)
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    client.csrf = csrf_of(client, "/")  # type: ignore[attr-defined]
    return client


@pytest.fixture
def admin(app: Flask) -> FlaskClient:
    # Not `with app.test_client()`: that keeps the request context (and its cached user) open,
    # which a second client in the same test would then reuse.
    return login(app.test_client(), "admin")


@pytest.fixture
def supervisor(app: Flask) -> FlaskClient:
    # Not `with app.test_client()`: that keeps the request context (and its cached user) open,
    # which a second client in the same test would then reuse.
    return login(app.test_client(), "super")


@pytest.fixture
def agent(app: Flask) -> FlaskClient:
    # Not `with app.test_client()`: that keeps the request context (and its cached user) open,
    # which a second client in the same test would then reuse.
    return login(app.test_client(), "agent1")


def store_of(app: Flask) -> Store:
    """A store on the app's database (close it)."""
    return Store(app.config["DATABASE"])
