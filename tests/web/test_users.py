"""Users admin: one-time passwords, roles and the last admin, reset, unlock, delete; the audit log viewer;
the per-address limit on failed logins."""
from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.store import acd
from appliance.store.errors import ConfigError
from appliance.store.models import AgentConfig
from tests.web.conftest import PASSWORD, csrf_of, login, store_of
from web import accounts


def _post(client: FlaskClient, path: str, **data: str) -> tuple[int, str]:
    resp = client.post(path, data={"csrf_token": client.csrf, **data})  # type: ignore[attr-defined]
    return resp.status_code, resp.get_data(as_text=True)


def _one_time(page: str) -> str:
    m = re.search(r'id="one-time-password">([A-Za-z0-9]+)<', page)
    assert m, page
    return m.group(1)


def _audit_actions(app: Flask) -> list[tuple[str, str]]:
    store = store_of(app)
    try:
        return [(r[0], r[1]) for r in store.query("SELECT action, target FROM audit_log ORDER BY id")]
    finally:
        store.close()


def _user(app: Flask, name: str) -> accounts.User | None:
    store = store_of(app)
    try:
        return accounts.get_user(store, name)
    finally:
        store.close()


@pytest.mark.parametrize("role", ["supervisor", "agent"])
def test_users_pages_are_admin_only(role: str, request: pytest.FixtureRequest) -> None:
    client = request.getfixturevalue(role)
    assert client.get("/users/").status_code == 403
    assert client.get("/users/audit").status_code == 403
    assert _post(client, "/users/create", username="x", role="admin")[0] == 403
    for action in ("role", "reset", "unlock", "delete"):
        assert _post(client, f"/users/admin/{action}", role="agent")[0] == 403


def test_list_shows_every_user(admin: FlaskClient) -> None:
    page = admin.get("/users/").get_data(as_text=True)
    for name in ("admin", "super", "agent1"):
        assert f'id="user-{name}"' in page
    assert "(you)" in page


def test_create_shows_a_one_time_password_that_must_be_changed(app: Flask, admin: FlaskClient) -> None:
    resp = admin.post("/users/create", data={"csrf_token": admin.csrf, "username": "carol",  # type: ignore[attr-defined]
                                             "role": "supervisor"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "shown only now" in page and resp.headers["Cache-Control"] == "no-store"
    password = _one_time(page)
    user = _user(app, "carol")
    assert user is not None and user.role == "supervisor" and user.must_change and user.agent_id is None
    assert ("user.create", "carol") in _audit_actions(app)
    c = app.test_client()
    resp = c.post("/login", data={"username": "carol", "password": password, "csrf_token": csrf_of(c)})
    assert resp.status_code == 302
    assert c.get("/").headers["Location"] == "/password"


def test_create_rejects_bad_input_and_saves_nothing(app: Flask, admin: FlaskClient) -> None:
    status, page = _post(admin, "/users/create", username="bad name!", role="admin")
    assert status == 400 and "letters, digits" in page and 'class="field-error"' in page
    status, page = _post(admin, "/users/create", username="super", role="admin")
    assert status == 400 and "already exists" in page
    status, page = _post(admin, "/users/create", username="zed", role="root")
    assert status == 400 and "is not one of" in page
    status, page = _post(admin, "/users/create", username="dave", role="agent")
    assert status == 400 and "must be linked to an ACD agent" in page
    status, page = _post(admin, "/users/create", username="dave", role="agent", agent_id="9999")
    assert status == 400 and "no ACD agent" in page
    assert _user(app, "dave") is None and _user(app, "zed") is None
    assert not [a for a in _audit_actions(app) if a[0] == "user.create"]


def _label(page: str, title: str) -> str:
    """The <label> of a form field by its title, with the error shown beside it."""
    m = re.search(rf"<label>{re.escape(title)}.*?</label>", page, re.S)
    assert m, page
    return m.group(0)


def test_create_shows_every_bad_field_beside_it(app: Flask, admin: FlaskClient) -> None:
    status, page = _post(admin, "/users/create", username="bad name!", role="root", agent_id="9999")
    assert status == 400
    assert "letters, digits" in _label(page, "User name") and "is not one of" in _label(page, "Role")
    status, page = _post(admin, "/users/create", username="super", role="agent", agent_id="9999")
    assert status == 400
    assert "already exists" in _label(page, "User name") and "no ACD agent" in _label(page, "Agent (for agents)")
    assert _user(app, "zed") is None and not [a for a in _audit_actions(app) if a[0] == "user.create"]


def test_create_agent_linked_to_an_acd_agent(app: Flask, admin: FlaskClient) -> None:
    store = store_of(app)
    try:
        acd.put_agent(store, AgentConfig("2002", "Ben", "1234"))
        acd.put_agent(store, AgentConfig("2001", "Ana", "1234"))
    finally:
        store.close()
    status, page = _post(admin, "/users/create", username="ben", role="agent", agent_id="2002")
    assert status == 200
    user = _user(app, "ben")
    assert user is not None and user.agent_id == "2002" and user.role == "agent"
    # agent1 (conftest) is already linked to 2001: one agent, one login.
    status, page = _post(admin, "/users/create", username="ana", role="agent", agent_id="2001")
    assert status == 400 and "already linked to user &#39;agent1&#39;" in page


def test_change_role_keeps_the_last_admin(app: Flask, admin: FlaskClient) -> None:
    status, page = _post(admin, "/users/admin/role", role="supervisor")
    assert status == 400 and "last admin" in page
    assert _user(app, "admin").role == "admin"  # type: ignore[union-attr]
    status, _ = _post(admin, "/users/super/role", role="admin")
    assert status == 302
    assert _user(app, "super").role == "admin"  # type: ignore[union-attr]
    store = store_of(app)
    try:
        rows = store.query("SELECT before_json, after_json FROM audit_log WHERE action = 'user.role'")
    finally:
        store.close()
    assert len(rows) == 1 and '"role": "supervisor"' in rows[0][0] and '"role": "admin"' in rows[0][1]
    # Now there are two admins: the first may step down.
    assert _post(admin, "/users/admin/role", role="supervisor")[0] == 302
    assert admin.get("/users/").status_code == 403  # takes effect at once


def test_role_change_to_agent_needs_an_agent(app: Flask, admin: FlaskClient) -> None:
    status, page = _post(admin, "/users/super/role", role="agent", agent_id="")
    assert status == 400 and "must be linked" in page
    assert _user(app, "super").role == "supervisor"  # type: ignore[union-attr]
    assert _post(admin, "/users/nobody/role", role="agent")[0] == 404


def test_delete_never_yourself_nor_the_last_admin(app: Flask, admin: FlaskClient) -> None:
    supervisor = login(app.test_client(), "super")
    status, page = _post(admin, "/users/admin/delete")
    assert status == 400 and "cannot delete yourself" in page
    assert _user(app, "admin") is not None
    assert _post(admin, "/users/super/delete")[0] == 302
    assert _user(app, "super") is None
    assert supervisor.get("/").status_code == 302  # the deleted user's session is over
    assert ("user.delete", "super") in _audit_actions(app)
    assert _post(admin, "/users/super/delete")[0] == 404
    store = store_of(app)
    try:
        with pytest.raises(ConfigError, match="last admin"):
            accounts.delete_user(store, "admin", acting="someone-else")
    finally:
        store.close()


def test_reset_password_and_unlock(app: Flask, admin: FlaskClient) -> None:
    c = app.test_client()
    for _ in range(accounts.LOCK_AFTER):
        c.post("/login", data={"username": "agent1", "password": "wrong-wrong-wrong", "csrf_token": csrf_of(c)})
    assert "locked" in admin.get("/users/").get_data(as_text=True)
    assert _post(admin, "/users/agent1/unlock")[0] == 302
    user = _user(app, "agent1")
    assert user is not None and user.locked_until is None and user.failed_logins == 0
    c = app.test_client()
    resp = c.post("/login", data={"username": "agent1", "password": PASSWORD, "csrf_token": csrf_of(c)})
    assert resp.status_code == 302
    status, page = _post(admin, "/users/agent1/reset")
    assert status == 200
    fresh = _one_time(page)
    assert _user(app, "agent1").must_change  # type: ignore[union-attr]
    c = app.test_client()
    assert c.post("/login", data={"username": "agent1", "password": PASSWORD,
                                  "csrf_token": csrf_of(c)}).status_code == 401
    assert c.post("/login", data={"username": "agent1", "password": fresh,
                                  "csrf_token": csrf_of(c)}).status_code == 302
    actions = [a for a, _ in _audit_actions(app)]
    assert "user.unlock" in actions and "user.reset_password" in actions


def test_audit_viewer_filters_newest_first_and_shows_changes(app: Flask, admin: FlaskClient) -> None:
    _post(admin, "/users/create", username="erin", role="supervisor")
    _post(admin, "/users/erin/role", role="admin")
    _post(admin, "/users/erin/delete")
    page = admin.get("/users/audit?user=admin&action=user").get_data(as_text=True)
    page = page[page.index("<tbody>"):]  # the table, not the filter menus
    assert page.index("user.delete") < page.index("user.role") < page.index("user.create")  # newest first
    assert "login" not in re.findall(r'<span class="badge">([^<]+)</span>', page)
    # The role change is shown field by field, the changed field marked.
    assert re.search(r'<tr class="changed"><td class="muted">role</td>\s*<td class="old">supervisor</td>\s*'
                     r'<td class="new">admin</td>', page)
    page = admin.get("/users/audit?action=login").get_data(as_text=True)
    page = page[page.index("<tbody>"):]
    assert "user.create" not in page and "login" in page
    assert admin.get("/users/audit?offset=x").status_code == 400
    assert admin.get("/users/audit?user=nobody").status_code == 200


def test_too_many_failed_logins_from_one_address_get_429(app: Flask) -> None:
    attacker = {"REMOTE_ADDR": "192.0.2.7"}
    c = app.test_client()
    token = csrf_of(c)
    for i in range(accounts.LOGIN_LIMIT_PER_ADDRESS):
        # Different (unknown) accounts each time: the per-account lockout never triggers.
        resp = c.post("/login", data={"username": f"guess{i}", "password": "x" * 12, "csrf_token": token},
                      environ_base=attacker)
        assert resp.status_code == 401
    resp = c.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token},
                  environ_base=attacker)
    assert resp.status_code == 429 and "Too many failed logins" in resp.get_data(as_text=True)
    c = app.test_client()  # another address is not affected
    resp = c.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": csrf_of(c)},
                  environ_base={"REMOTE_ADDR": "192.0.2.8"})
    assert resp.status_code == 302
    store = store_of(app)
    try:
        now = time.time()
        assert accounts.login_throttled(store, "192.0.2.7", now)
        assert not accounts.login_throttled(store, "192.0.2.7", now + accounts.LOGIN_LIMIT_WINDOW + 1)
    finally:
        store.close()
