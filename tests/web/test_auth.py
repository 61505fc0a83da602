"""Logging in: wrong passwords, lockout, CSRF, the forced change of a one-time password, roles."""
from __future__ import annotations

import re
import time
from pathlib import Path

from flask import Flask

from appliance.store.db import Store
from tests.web.conftest import PASSWORD, csrf_of, login, store_of
from web import accounts, create_app, first_start


def test_pages_need_a_login(app: Flask) -> None:
    with app.test_client() as c:
        resp = c.get("/")
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_wrong_password_then_lockout_after_five(app: Flask) -> None:
    with app.test_client() as c:
        for _ in range(accounts.LOCK_AFTER):
            resp = c.post("/login", data={"username": "admin", "password": "nope-nope-nope",
                                          "csrf_token": csrf_of(c)})
            assert resp.status_code == 401 and "Wrong user name or password" in resp.get_data(as_text=True)
        # Locked: even the right password is refused for a while.
        resp = c.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(c)})
        assert resp.status_code == 401
    store = store_of(app)
    try:
        failed = store.query("SELECT COUNT(*) FROM audit_log WHERE action = 'login.failed'")[0][0]
        assert failed == accounts.LOCK_AFTER + 1
    finally:
        store.close()


def test_post_without_csrf_token_is_refused(app: Flask) -> None:
    with app.test_client() as c:
        c.get("/login")
        resp = c.post("/login", data={"username": "admin", "password": PASSWORD})
        assert resp.status_code == 400 and "CSRF" in resp.get_data(as_text=True)


def test_first_start_forces_a_password_change(tmp_path: Path) -> None:
    data = tmp_path / "data"
    one_time = first_start(data)
    assert one_time is not None and first_start(data) is None  # printed once
    app = create_app(data, testing=True, secret_key="k")
    with app.test_client() as c:
        login(c, "admin", one_time)
        resp = c.get("/")
        assert resp.status_code == 302 and resp.headers["Location"] == "/password"
        token = csrf_of(c, "/password")
        resp = c.post("/password", data={"current_password": one_time, "new_password": "short",
                                         "new_password_again": "short", "csrf_token": token})
        assert "at least 10 characters" in resp.get_data(as_text=True)
        resp = c.post("/password", data={"current_password": one_time, "new_password": "a-better-secret",
                                         "new_password_again": "a-better-secret", "csrf_token": token})
        assert resp.status_code == 302
        assert c.get("/").status_code == 200
    store = Store(data / "plateau.db")
    try:
        user = accounts.get_user(store, "admin")
        assert user is not None and not user.must_change
        assert [r[0] for r in store.query("SELECT action FROM audit_log ORDER BY id")][-1] == "password.change"
    finally:
        store.close()


def test_open_redirect_is_refused(app: Flask) -> None:
    with app.test_client() as c:
        token = csrf_of(c)
        resp = c.post("/login?next=//evil.example/", data={"username": "admin", "password": PASSWORD,
                                                            "csrf_token": token})
        assert resp.headers["Location"] == "/"


def test_password_change_shows_every_bad_field_beside_it(app: Flask) -> None:
    c = login(app.test_client(), "admin")
    token = csrf_of(c, "/password")
    resp = c.post("/password", data={"current_password": "not-the-password", "new_password": "short",
                                     "new_password_again": "shorter", "csrf_token": token})
    page = resp.get_data(as_text=True)
    for name, error in (("current_password", "The current password is wrong."),
                        ("new_password", "at least 10 characters"),
                        ("new_password_again", "The two new passwords differ.")):
        m = re.search(rf'name="{name}"[^>]*>\s*<div class="field-error">([^<]*)</div>', page)
        assert m and error in m.group(1), (name, page)
    store = store_of(app)
    try:
        assert accounts.authenticate(store, "admin", PASSWORD, time.time()) is not None  # unchanged
    finally:
        store.close()


def test_password_hashes_are_scrypt_and_verify() -> None:
    stored = accounts.hash_password("a-long-password")
    assert stored.startswith("scrypt$") and accounts.verify_password("a-long-password", stored)
    assert not accounts.verify_password("a-long-passwore", stored)
    assert accounts.hash_password("a-long-password") != stored  # salted


def test_logout(admin) -> None:  # type: ignore[no-untyped-def]
    resp = admin.post("/logout", data={"csrf_token": admin.csrf})
    assert resp.status_code == 302 and admin.get("/").status_code == 302
    assert time.time() > 0


def test_every_page_renders_when_the_engine_never_started(tmp_path: Path) -> None:
    """No api.json at all (a fresh box): pages say the engine is down, none fails with a 500."""
    data = tmp_path / "data"
    store = Store((data / "plateau.db") if data.mkdir(parents=True) is None else data)
    try:
        for name, role, agent in (("admin", "admin", None), ("ana", "agent", "2001")):
            accounts.create_user(store, name, PASSWORD, role, time.time(), must_change=False, agent_id=agent)
    finally:
        store.close()
    app = create_app(data, testing=True, secret_key="k")
    pages = {"admin": ["/", "/admin/", "/wallboard/", "/wallboard/snapshot", "/system/", "/users/", "/reports/",
                       "/reports/calls", "/staffing/", "/quality/"],
             "ana": ["/agent/", "/agent/state"]}
    for user, paths in pages.items():
        client = login(app.test_client(), user)
        for path in paths:
            assert client.get(path).status_code < 500, path
