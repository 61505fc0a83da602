"""The agent desk: roles, my state, the screen pop, interaction updates, click-to-call, engine down."""
from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.schema.errors import FieldError
from appliance.store import interactions
from appliance.store.models import Extension
from tests.web.conftest import FakeEngineApi, store_of

JSON = {"Accept": "application/json"}


def me(**changes: Any) -> dict[str, Any]:
    base = {"agent": "2001", "name": "Alice", "state": "available", "pause_reason": None, "device": "1001",
            "since": 30.0, "calls_today": 3, "call": None, "caller": None, "interaction": None, "skills": {}}
    return {**base, **changes}


def audit_rows(app: Flask, action: str) -> list[tuple[Any, ...]]:
    store = store_of(app)
    try:
        return store.query("SELECT username, target, before_json, after_json FROM audit_log WHERE action = ?",
                            (action,))
    finally:
        store.close()


def posts(api: FakeEngineApi) -> list[tuple[str, str, Any]]:
    return [r for r in api.requests if r[0] == "POST"]


@pytest.fixture
def desk(app: Flask, engine_api: FakeEngineApi) -> FakeEngineApi:
    """Extension 1001 exists; agent 2001 (the `agent` user) is available on it."""
    store = store_of(app)
    try:
        store.put_extension(Extension(number="1001", name="Alice's phone", secret="a-long-sip-secret-1"))
    finally:
        store.close()
    engine_api.responses[("GET", "/v1/agents")] = [me(), me(agent="2002", name="Bob")]
    return engine_api


@pytest.fixture
def on_call(app: Flask, desk: FakeEngineApi) -> dict[str, Any]:
    """Agent 2001 on a call from a known contact with two earlier interactions; the engine serves #3."""
    store = store_of(app)
    try:
        with store.transaction():
            store.execute("INSERT INTO contacts (number, name, company, email, notes, created_at)"
                        " VALUES ('+33611', 'Claire Martin', 'Acme', 'claire@acme.test', 'VIP', 0)")
        contact = int(store.query("SELECT id FROM contacts")[0][0])
        old = interactions.open_interaction(store, "+33611", "support", "old-call", time.time() - 86400,
                                            contact_id=contact)
        interactions.update_interaction(store, old, at=time.time() - 86000, status="resolved",
                                        disposition="refund", notes="sent a refund")
        current = interactions.open_interaction(store, "+33611", "support", "call-1", time.time(),
                                                contact_id=contact, ivr_path={"ivr_path": "main>billing",
                                                                              "account": "12345"})
        interactions.assign_agent(store, current, "2001", time.time())
        found = interactions.get_interaction(store, current)
    finally:
        store.close()
    assert found is not None
    record = {f: getattr(found, f) for f in found.__dataclass_fields__}
    desk.responses[("GET", "/v1/agents")] = [me(state="on-call", caller="+33611", call="c1", interaction=current)]
    desk.responses[("GET", f"/v1/interactions/{current}")] = record
    return record


# -- roles ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_supervisors_and_admins_get_403(request: pytest.FixtureRequest, role: str) -> None:
    client: FlaskClient = request.getfixturevalue(role)
    for path in ("/agent/", "/agent/state", "/agent/pop?id=1"):
        assert client.get(path).status_code == 403


def test_actions_are_for_agents_only(supervisor: FlaskClient, desk: FakeEngineApi) -> None:
    for path in ("/agent/login", "/agent/pause", "/agent/unpause", "/agent/logout", "/agent/call",
                 "/agent/interactions/1"):
        resp = supervisor.post(path, data={"csrf_token": supervisor.csrf, "extension": "1001", "reason": "1",
                                           "to": "1002", "notes": "x"})
        assert resp.status_code == 403, path
    assert not posts(desk)


def test_agent_lands_on_the_desk(agent: FlaskClient, desk: FakeEngineApi) -> None:
    resp = agent.get("/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/agent/"


# -- my state ----------------------------------------------------------------------------------------------
def test_desk_shows_my_state(agent: FlaskClient, desk: FakeEngineApi) -> None:
    page = agent.get("/agent/").get_data(as_text=True)
    assert 'id="my-state" class="state available"' in page
    assert 'id="my-device">1001<' in page and 'id="my-calls-today">3<' in page
    assert "No caller yet" in page and "agent_desk.js" in page
    for code in ("1", "2", "9"):
        assert f'<option value="{code}">' in page


def test_state_json_for_polling(agent: FlaskClient, desk: FakeEngineApi) -> None:
    st = agent.get("/agent/state").get_json()
    assert st["engine"] == "up" and st["agent"]["agent"] == "2001" and st["agent"]["state"] == "available"
    assert st["interaction"] is None


def test_engine_down_is_shown(agent: FlaskClient, desk: FakeEngineApi) -> None:
    desk.responses[("GET", "/v1/agents")] = ApiUnavailable("refused")
    resp = agent.get("/agent/")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert 'data-engine="down"' in page and 'id="engine-down" class="error" role="alert" >' in page
    assert agent.get("/agent/state").get_json()["engine"] == "down"
    resp = agent.post("/agent/unpause", data={"csrf_token": agent.csrf}, headers=JSON)
    assert resp.status_code == 503 and "not running" in resp.get_json()["error"]


def test_unlinked_agent_account(app: Flask, desk: FakeEngineApi) -> None:
    from tests.web.conftest import PASSWORD, login
    from web import accounts

    store = store_of(app)
    try:
        accounts.create_user(store, "temp1", PASSWORD, "agent", time.time(), must_change=False)
    finally:
        store.close()
    with app.test_client() as c:
        login(c, "temp1")
        assert "not linked to an ACD agent" in c.get("/agent/").get_data(as_text=True)
        resp = c.post("/agent/unpause", data={"csrf_token": c.csrf})
        assert resp.status_code == 400 and not posts(desk)


# -- log in, pause, unpause, log out ---------------------------------------------------------------------
def test_login_to_an_extension(app: Flask, agent: FlaskClient, desk: FakeEngineApi) -> None:
    desk.responses[("GET", "/v1/agents")] = [me(state="logged-out", device=None)]
    desk.responses[("POST", "/v1/agents/2001/login")] = {"agent": "2001", "state": "available",
                                                        "pause_reason": None}
    resp = agent.post("/agent/login", data={"extension": "1001", "csrf_token": agent.csrf}, headers=JSON)
    assert resp.status_code == 200 and resp.get_json()["ok"]
    assert posts(desk) == [("POST", "/v1/agents/2001/login", {"device": "1001"})]
    (row,) = audit_rows(app, "agent.login")
    assert row[:2] == ("agent1", "2001")
    assert json.loads(row[2])["state"] == "logged-out" and json.loads(row[3])["state"] == "available"


def test_login_bad_extension_is_400(agent: FlaskClient, desk: FakeEngineApi) -> None:
    for extension, message in (("", "type the number"), ("9999", "not an extension"), ("10 01", "type the number")):
        resp = agent.post("/agent/login", data={"extension": extension, "csrf_token": agent.csrf}, headers=JSON)
        assert resp.status_code == 400
        assert resp.get_json()["field"] == "extension" and message in resp.get_json()["error"]
        # Without JS the desk comes back with the error beside the field.
        resp = agent.post("/agent/login", data={"extension": extension, "csrf_token": agent.csrf})
        assert resp.status_code == 400 and 'data-for="extension" >' in resp.get_data(as_text=True)
    assert not posts(desk)


def test_pause_with_reason_then_unpause_then_logout(app: Flask, agent: FlaskClient, desk: FakeEngineApi) -> None:
    for action in ("pause", "unpause", "logout"):
        desk.responses[("POST", f"/v1/agents/2001/{action}")] = {"agent": "2001", "state": "x",
                                                                "pause_reason": None}
    assert agent.post("/agent/pause", data={"reason": "3", "csrf_token": agent.csrf}).status_code == 302
    assert agent.post("/agent/unpause", data={"csrf_token": agent.csrf}).status_code == 302
    assert agent.post("/agent/logout", data={"csrf_token": agent.csrf}).status_code == 302
    assert posts(desk) == [("POST", "/v1/agents/2001/pause", {"reason": "3"}),
                           ("POST", "/v1/agents/2001/unpause", {}), ("POST", "/v1/agents/2001/logout", {})]
    for action in ("pause", "unpause", "logout"):
        assert len(audit_rows(app, f"agent.{action}")) == 1


def test_unknown_pause_reason_is_400(app: Flask, agent: FlaskClient, desk: FakeEngineApi) -> None:
    resp = agent.post("/agent/pause", data={"reason": "siesta", "csrf_token": agent.csrf}, headers=JSON)
    assert resp.status_code == 400 and resp.get_json()["field"] == "reason"
    assert not posts(desk) and not audit_rows(app, "agent.pause")


def test_engine_refusal_is_passed_on(agent: FlaskClient, desk: FakeEngineApi) -> None:
    desk.responses[("POST", "/v1/agents/2001/pause")] = ApiError(409, "agent 2001 is on-call: cannot pause now")
    resp = agent.post("/agent/pause", data={"reason": "1", "csrf_token": agent.csrf}, headers=JSON)
    assert resp.status_code == 409 and "cannot pause now" in resp.get_json()["error"]


# -- the screen pop ----------------------------------------------------------------------------------------------
def test_screen_pop_of_my_caller(agent: FlaskClient, on_call: dict[str, Any]) -> None:
    page = agent.get("/agent/").get_data(as_text=True)
    assert 'id="pop-caller">+33611<' in page
    assert "Claire Martin" in page and "Acme" in page and "claire@acme.test" in page
    assert '<span class="step">main</span><span class="step">billing</span>' in page
    assert "<th>account</th><td>12345</td>" in page
    assert "sent a refund" in page and "refund" in page  # the earlier interaction
    assert f'data-interaction="{on_call["id"]}"' in page
    st = agent.get("/agent/state").get_json()
    assert st["interaction"] == on_call["id"] and st["agent"]["caller"] == "+33611"
    fragment = agent.get(f"/agent/pop?id={on_call['id']}").get_data(as_text=True)
    assert "Claire Martin" in fragment and "<html" not in fragment


def test_pop_stays_through_wrap_up(agent: FlaskClient, desk: FakeEngineApi, on_call: dict[str, Any]) -> None:
    agent.get("/agent/state")
    desk.responses[("GET", "/v1/agents")] = [me(state="wrap-up")]  # the engine forgets the call
    assert agent.get("/agent/state").get_json()["interaction"] == on_call["id"]
    assert "Claire Martin" in agent.get("/agent/").get_data(as_text=True)


def test_someone_elses_interaction_is_403(agent: FlaskClient, desk: FakeEngineApi) -> None:
    desk.responses[("GET", "/v1/interactions/55")] = {"id": 55, "agent": "2002", "caller": "+1", "queue": "q",
                                                      "contact_id": None, "status": "open", "disposition": "",
                                                      "notes": "", "ivr_path": {}}
    assert agent.get("/agent/pop?id=55").status_code == 403
    resp = agent.post("/agent/interactions/55", data={"notes": "mine now", "csrf_token": agent.csrf})
    assert resp.status_code == 403 and not posts(desk)


# -- interaction status, disposition, notes ------------------------------------------------------------
def test_update_interaction_sends_only_the_changes(app: Flask, agent: FlaskClient, desk: FakeEngineApi,
                                                   on_call: dict[str, Any]) -> None:
    iid = on_call["id"]
    desk.responses[("POST", f"/v1/interactions/{iid}")] = {**on_call, "status": "resolved", "disposition": "sale",
                                                          "notes": "bought the premium plan"}
    resp = agent.post(f"/agent/interactions/{iid}", headers=JSON,
                      data={"status": "resolved", "disposition": "sale", "notes": "bought the premium plan",
                            "csrf_token": agent.csrf})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert posts(desk) == [("POST", f"/v1/interactions/{iid}",
                            {"status": "resolved", "disposition": "sale", "notes": "bought the premium plan"})]
    (row,) = audit_rows(app, "interaction.update")
    assert row[:2] == ("agent1", str(iid))
    assert json.loads(row[2]) == {"status": "open", "disposition": "", "notes": ""}
    assert json.loads(row[3])["disposition"] == "sale"


def test_unchanged_interaction_sends_nothing(agent: FlaskClient, desk: FakeEngineApi,
                                             on_call: dict[str, Any]) -> None:
    resp = agent.post(f"/agent/interactions/{on_call['id']}", headers=JSON,
                      data={"status": "open", "disposition": "", "notes": "", "csrf_token": agent.csrf})
    assert resp.status_code == 200 and resp.get_json()["message"] == "Nothing changed." and not posts(desk)


def test_bad_interaction_input_is_400(app: Flask, agent: FlaskClient, desk: FakeEngineApi,
                                      on_call: dict[str, Any]) -> None:
    for data, field in (({"status": "done"}, "status"), ({"disposition": "no spaces!"}, "disposition"),
                        ({"notes": "x" * 4001}, "notes")):
        resp = agent.post(f"/agent/interactions/{on_call['id']}", headers=JSON,
                          data={**data, "csrf_token": agent.csrf})
        assert resp.status_code == 400 and resp.get_json()["field"] == field
    assert not posts(desk) and not audit_rows(app, "interaction.update")


def test_every_bad_interaction_field_is_refused_at_once(agent: FlaskClient, desk: FakeEngineApi,
                                                       on_call: dict[str, Any]) -> None:
    data = {"status": "done", "disposition": "no spaces!", "csrf_token": agent.csrf}
    resp = agent.post(f"/agent/interactions/{on_call['id']}", headers=JSON, data=data)
    assert resp.status_code == 400 and set(resp.get_json()["errors"]) == {"status", "disposition"}
    resp = agent.post(f"/agent/interactions/{on_call['id']}", data=data)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert re.search(r'data-for="status" >status: &#39;done&#39; is not one of', page), page
    assert re.search(r'data-for="disposition" >disposition: a code of', page), page
    assert not posts(desk)


def test_the_engines_refusal_is_put_beside_the_fields_it_names(agent: FlaskClient, desk: FakeEngineApi,
                                                              on_call: dict[str, Any]) -> None:
    # The fields come from the refusal's FieldErrors, never from its message (here one that names none).
    desk.responses[("POST", f"/v1/interactions/{on_call['id']}")] = ApiError(
        400, "refused", [FieldError(("interaction", "notes"), "contains a NUL character"),
                         FieldError(("interaction", "status"), "'x' is not one of open")])
    resp = agent.post(f"/agent/interactions/{on_call['id']}", headers=JSON,
                      data={"notes": "bad", "status": "closed", "csrf_token": agent.csrf})
    assert resp.status_code == 400
    assert resp.get_json()["errors"] == {"notes": "interaction.notes: contains a NUL character",
                                         "status": "interaction.status: 'x' is not one of open"}


def test_written_notes_cannot_be_emptied(agent: FlaskClient, desk: FakeEngineApi, on_call: dict[str, Any]) -> None:
    desk.responses[("GET", f"/v1/interactions/{on_call['id']}")] = {**on_call, "notes": "called back"}
    resp = agent.post(f"/agent/interactions/{on_call['id']}", headers=JSON,
                      data={"notes": "", "csrf_token": agent.csrf})
    assert resp.status_code == 400 and resp.get_json()["field"] == "notes" and not posts(desk)


# -- click-to-call -------------------------------------------------------------------------------------------------
def test_click_to_call_rings_my_phone_first(app: Flask, agent: FlaskClient, desk: FakeEngineApi) -> None:
    desk.responses[("POST", "/v1/originate")] = {"call": "o1"}
    resp = agent.post("/agent/call", data={"to": "+33 6-11", "csrf_token": agent.csrf}, headers=JSON)
    assert resp.status_code == 200 and resp.get_json()["result"] == {"call": "o1"}
    assert posts(desk) == [("POST", "/v1/originate", {"from": "1001", "to": "+33611"})]
    (row,) = audit_rows(app, "agent.call")
    assert json.loads(row[3]) == {"from": "1001", "to": "+33611", "call": "o1"}


def test_click_to_call_bad_number_is_400(agent: FlaskClient, desk: FakeEngineApi) -> None:
    for number in ("", "   ", "call me", "1" * 40):
        resp = agent.post("/agent/call", data={"to": number, "csrf_token": agent.csrf}, headers=JSON)
        assert resp.status_code == 400 and resp.get_json()["field"] == "to"
    assert not posts(desk)


def test_click_to_call_needs_a_phone(agent: FlaskClient, desk: FakeEngineApi) -> None:
    desk.responses[("GET", "/v1/agents")] = [me(state="logged-out", device=None)]
    resp = agent.post("/agent/call", data={"to": "1002", "csrf_token": agent.csrf}, headers=JSON)
    assert resp.status_code == 409 and "log in at a phone" in resp.get_json()["error"] and not posts(desk)
