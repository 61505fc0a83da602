"""The wallboard: roles, the live snapshot stream, engine down, and audited one-click agent actions."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.store.models import Extension
from tests.web.conftest import FakeEngineApi, store_of

JSON = {"Accept": "application/json"}

QUEUES = [{"name": "support", "strategy": "ringall", "waiting": 2, "longest_wait": 75.4,
           "callers": [{"entry": 1, "caller": "+33123", "position": 1, "wait": 75.4, "priority": 0,
                        "callback": False}],
           "agents": {"logged-out": 0, "available": 1, "ringing": 0, "on-call": 1, "wrap-up": 0, "paused": 1},
           "service_rate": 0.1}]
KPIS = {"queue": "support", "since": 0.0, "offered": 10, "answered": 8, "abandoned": 2, "service_level": 70.0,
        "asa_s": 12.5}
AGENTS = [
    {"agent": "2001", "name": "Alice", "state": "on-call", "pause_reason": None, "device": "1001", "since": 42.0,
     "calls_today": 5, "call": "c1", "caller": "+33123", "interaction": 7, "skills": {}},
    {"agent": "2002", "name": "Bob", "state": "paused", "pause_reason": "lunch", "device": "1002", "since": 600.0,
     "calls_today": 2, "call": None, "caller": None, "interaction": None, "skills": {}},
]


@pytest.fixture
def live(app: Flask, engine_api: FakeEngineApi) -> FakeEngineApi:
    app.config["WALLBOARD_INTERVAL"] = 0.01
    engine_api.responses[("GET", "/v1/queues")] = QUEUES
    engine_api.responses[("GET", "/v1/agents")] = AGENTS
    engine_api.responses[("GET", "/v1/queues/support/kpis")] = KPIS
    return engine_api


def audit_rows(app: Flask, action: str) -> list[tuple[Any, ...]]:
    store = store_of(app)
    try:
        return store.query("SELECT username, target, before_json, after_json FROM audit_log WHERE action = ?",
                            (action,))
    finally:
        store.close()


def add_extension(app: Flask, number: str) -> None:
    store = store_of(app)
    try:
        store.put_extension(Extension(number=number, name="Supervisor desk", secret="a-long-sip-secret-1"))
    finally:
        store.close()


def set_my_extension(app: Flask, client: FlaskClient, number: str = "1090") -> None:
    add_extension(app, number)
    resp = client.post("/wallboard/my-extension", data={"extension": number, "csrf_token": client.csrf})
    assert resp.status_code == 302


def read_events(resp: Any, count: int) -> list[dict[str, Any]]:
    """The first `count` `data:` events of a streamed response (then the caller closes it)."""
    events: list[dict[str, Any]] = []
    buffer = ""
    for chunk in resp.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            for line in block.splitlines():
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: "):]))
        if len(events) >= count:
            return events
    raise AssertionError(f"the stream ended after {len(events)} events")


# -- roles ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/wallboard/", "/wallboard/stream", "/wallboard/snapshot"])
def test_agents_may_not_see_the_wallboard(agent: FlaskClient, path: str) -> None:
    assert agent.get(path).status_code == 403


def test_agents_may_not_act_on_agents(agent: FlaskClient, live: FakeEngineApi) -> None:
    for action in ("logout", "unpause", "pause", "monitor"):
        resp = agent.post(f"/wallboard/agents/2002/{action}", data={"csrf_token": agent.csrf, "reason": "1"})
        assert resp.status_code == 403
    assert agent.post("/wallboard/my-extension", data={"csrf_token": agent.csrf}).status_code == 403
    assert not [r for r in live.requests if r[0] == "POST"]


def test_logged_out_users_are_sent_to_log_in(app: Flask) -> None:
    with app.test_client() as c:
        resp = c.get("/wallboard/stream")
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


# -- the board ----------------------------------------------------------------------------------------
def test_board_shows_queues_and_agents(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    assert 'data-queue="support"' in page and 'data-agent="2001"' in page and 'data-agent="2002"' in page
    assert '<span class="state on-call">on-call</span>' in page
    assert '<span class="state paused">paused</span>' in page and ">lunch<" in page
    assert ">70%<" in page  # service level today, from the KPIs
    assert ">1:15<" in page  # longest wait 75 s
    assert ">10:00<" in page  # Bob paused for 600 s
    assert ">+33123<" in page  # Alice's caller
    assert 'id="engine-down" class="error" role="alert" hidden' in page
    assert "wallboard.js" in page and "wallboard.css" in page


def test_admin_sees_the_board_too(admin: FlaskClient, live: FakeEngineApi) -> None:
    assert admin.get("/wallboard/").status_code == 200


def test_snapshot_json(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    snap = supervisor.get("/wallboard/snapshot").get_json()
    assert snap["engine"] == "up"
    (q,) = snap["queues"]
    assert (q["name"], q["waiting"], q["available"], q["on_call"], q["paused"]) == ("support", 2, 1, 1, 1)
    assert (q["service_level"], q["answered"], q["abandoned"]) == (70.0, 8, 2)
    assert [a["agent"] for a in snap["agents"]] == ["2001", "2002"]
    assert snap["agents"][1]["pause_reason"] == "lunch"


def test_stream_yields_json_snapshots_and_ends_when_closed(app: Flask, supervisor: FlaskClient,
                                                           live: FakeEngineApi) -> None:
    resp = supervisor.get("/wallboard/stream")
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    first, second = read_events(resp, 2)
    assert first["engine"] == second["engine"] == "up"
    assert first["queues"][0]["name"] == "support" and first["agents"][0]["state"] == "on-call"
    live.responses[("GET", "/v1/agents")] = [dict(AGENTS[0], state="wrap-up"), AGENTS[1]]
    changed = read_events(resp, 3)
    assert any(e["agents"][0]["state"] == "wrap-up" for e in changed)  # live: the change arrives unasked
    assert app.extensions["wallboard"].open_streams == 1
    resp.close()  # the browser went away: the server closes the generator
    assert app.extensions["wallboard"].open_streams == 0


def test_stream_ends_by_itself_after_its_lifetime(app: Flask, supervisor: FlaskClient,
                                                  live: FakeEngineApi) -> None:
    app.config["WALLBOARD_STREAM_SECONDS"] = 0.0
    resp = supervisor.get("/wallboard/stream")
    body = resp.get_data(as_text=True)  # returns: the stream ended (EventSource will reconnect)
    assert body.startswith("retry: 2000\n\n") and body.count("data: ") == 1
    assert app.extensions["wallboard"].open_streams == 0


def test_kpis_are_fetched_less_often_than_the_live_counts(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    resp = supervisor.get("/wallboard/stream")
    read_events(resp, 4)
    resp.close()
    asked = [p for m, p, _ in live.requests if m == "GET"]
    assert asked.count("/v1/queues/support/kpis") == 1 and asked.count("/v1/queues") >= 3


def test_engine_down_is_shown_and_streamed(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    live.responses[("GET", "/v1/queues")] = ApiUnavailable("connection refused")
    page = supervisor.get("/wallboard/")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-engine="down"' in text and "Engine not running." in text
    assert 'id="engine-down" class="error" role="alert" >' in text  # shown, not hidden
    resp = supervisor.get("/wallboard/stream")
    (down,) = read_events(resp, 1)
    assert down["engine"] == "down" and down["queues"] == [] and down["agents"] == []
    live.responses[("GET", "/v1/queues")] = QUEUES  # the engine is back: so is the board
    assert any(e["engine"] == "up" for e in read_events(resp, 3))
    resp.close()


def test_engine_without_an_api_file_counts_as_down(tmp_path: Any) -> None:
    from web import create_app

    app = create_app(tmp_path, testing=True, secret_key="k")  # no api_client, no api.json
    with app.app_context():
        from web.wallboard import BoardFeed, ask

        snap = BoardFeed(1.0).snapshot(ask, 0.0)
    assert snap["engine"] == "down"


def test_a_removed_queue_shows_no_kpis(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    live.responses[("GET", "/v1/queues/support/kpis")] = ApiError(404, "no queue support")
    snap = supervisor.get("/wallboard/snapshot").get_json()
    assert snap["engine"] == "up" and snap["queues"][0]["service_level"] is None


# -- actions ---------------------------------------------------------------------------------------------
def test_my_extension_is_checked_remembered_and_audited(app: Flask, supervisor: FlaskClient) -> None:
    resp = supervisor.post("/wallboard/my-extension", data={"extension": "", "csrf_token": supervisor.csrf})
    assert resp.status_code == 400
    resp = supervisor.post("/wallboard/my-extension", data={"extension": "1090", "csrf_token": supervisor.csrf},
                           headers=JSON)
    assert resp.status_code == 400 and "not an extension" in resp.get_json()["error"]
    set_my_extension(app, supervisor, "1090")
    assert 'id="my-extension" value="1090"' in supervisor.get("/wallboard/").get_data(as_text=True)
    (row,) = audit_rows(app, "wallboard.my_extension")
    assert row[0] == "super" and json.loads(row[3]) == "1090"


def test_monitor_rings_my_extension_and_is_audited(app: Flask, supervisor: FlaskClient,
                                                   live: FakeEngineApi) -> None:
    set_my_extension(app, supervisor)
    for mode in ("listen", "whisper", "barge"):
        live.responses[("POST", "/v1/agents/2001/monitor")] = {"call": "m1", "agent": "2001", "device": "1090",
                                                              "mode": mode}
        resp = supervisor.post("/wallboard/agents/2001/monitor", headers=JSON,
                               data={"mode": mode, "csrf_token": supervisor.csrf})
        assert resp.status_code == 200 and resp.get_json()["ok"] is True
        assert ("POST", "/v1/agents/2001/monitor", {"device": "1090", "mode": mode}) in live.requests
        (row,) = audit_rows(app, f"agent.{mode}")
        assert row[:2] == ("super", "2001")
        assert json.loads(row[2])["state"] == "on-call" and json.loads(row[3])["call"] == "m1"


def test_monitor_needs_my_extension_and_a_known_mode(app: Flask, supervisor: FlaskClient,
                                                     live: FakeEngineApi) -> None:
    resp = supervisor.post("/wallboard/agents/2001/monitor", data={"mode": "listen", "csrf_token": supervisor.csrf},
                           headers=JSON)
    assert resp.status_code == 400 and "my extension" in resp.get_json()["error"]
    set_my_extension(app, supervisor)
    resp = supervisor.post("/wallboard/agents/2001/monitor", data={"mode": "spy", "csrf_token": supervisor.csrf})
    assert resp.status_code == 400 and "spy" in resp.get_data(as_text=True)
    assert not [r for r in live.requests if r[0] == "POST"]


def test_pause_with_a_reason_code_or_name(app: Flask, supervisor: FlaskClient, live: FakeEngineApi) -> None:
    live.responses[("POST", "/v1/agents/2001/pause")] = {"agent": "2001", "state": "paused",
                                                        "pause_reason": "lunch"}
    for reason in ("2", "lunch"):
        resp = supervisor.post("/wallboard/agents/2001/pause", data={"reason": reason, "csrf_token": supervisor.csrf})
        assert resp.status_code == 302  # a form post without JS: back to the board with a message
    assert [b for m, p, b in live.requests if p == "/v1/agents/2001/pause"] == [{"reason": "2"}] * 2
    rows = audit_rows(app, "agent.pause")
    assert len(rows) == 2 and json.loads(rows[0][3])["pause_reason"] == "lunch"


def test_unknown_pause_reason_is_400_and_nothing_is_sent(app: Flask, supervisor: FlaskClient,
                                                         live: FakeEngineApi) -> None:
    resp = supervisor.post("/wallboard/agents/2001/pause", data={"reason": "nap", "csrf_token": supervisor.csrf},
                           headers=JSON)
    assert resp.status_code == 400 and "nap" in resp.get_json()["error"]
    assert not [r for r in live.requests if r[0] == "POST"] and not audit_rows(app, "agent.pause")


@pytest.mark.parametrize("action", ["unpause", "logout"])
def test_unpause_and_logout(app: Flask, supervisor: FlaskClient, live: FakeEngineApi, action: str) -> None:
    live.responses[("POST", f"/v1/agents/2002/{action}")] = {"agent": "2002", "state": "available",
                                                            "pause_reason": None}
    resp = supervisor.post(f"/wallboard/agents/2002/{action}", data={"csrf_token": supervisor.csrf}, headers=JSON)
    assert resp.status_code == 200
    assert ("POST", f"/v1/agents/2002/{action}", {}) in live.requests
    (row,) = audit_rows(app, f"agent.{action}")
    assert json.loads(row[2]) == {"state": "paused", "pause_reason": "lunch", "device": "1002"}


def test_engine_refusal_is_passed_on_and_not_audited(app: Flask, supervisor: FlaskClient,
                                                     live: FakeEngineApi) -> None:
    live.responses[("POST", "/v1/agents/2001/pause")] = ApiError(409, "agent 2001 is on-call: cannot pause now")
    resp = supervisor.post("/wallboard/agents/2001/pause", data={"reason": "1", "csrf_token": supervisor.csrf},
                           headers=JSON)
    assert resp.status_code == 409 and "cannot pause now" in resp.get_json()["error"]
    assert not audit_rows(app, "agent.pause")


def test_actions_when_the_engine_is_down(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    live.responses[("GET", "/v1/agents")] = ApiUnavailable("refused")
    resp = supervisor.post("/wallboard/agents/2001/logout", data={"csrf_token": supervisor.csrf}, headers=JSON)
    assert resp.status_code == 503 and "not running" in resp.get_json()["error"]


def test_unknown_agent_and_unknown_action(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    resp = supervisor.post("/wallboard/agents/9999/logout", data={"csrf_token": supervisor.csrf}, headers=JSON)
    assert resp.status_code == 404
    resp = supervisor.post("/wallboard/agents/2001/explode", data={"csrf_token": supervisor.csrf}, headers=JSON)
    assert resp.status_code == 404
    assert not [r for r in live.requests if r[0] == "POST"]


def test_actions_need_the_csrf_token(supervisor: FlaskClient, live: FakeEngineApi) -> None:
    resp = supervisor.post("/wallboard/agents/2001/logout", headers=JSON)
    assert resp.status_code == 400
    assert not [r for r in live.requests if r[0] == "POST"]


def test_streams_are_capped_per_login_and_in_total(app: Flask, supervisor: FlaskClient, admin: FlaskClient,
                                                   live: FakeEngineApi) -> None:
    app.config.update(WALLBOARD_STREAMS_PER_SESSION=2, WALLBOARD_STREAMS_TOTAL=3)
    first, second = supervisor.get("/wallboard/stream"), supervisor.get("/wallboard/stream")
    third = supervisor.get("/wallboard/stream")
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert "per login" in third.get_data(as_text=True) and third.headers["Retry-After"]
    other = admin.get("/wallboard/stream")  # another login still gets one: the total is 3
    assert other.status_code == 200
    full = admin.get("/wallboard/stream")
    assert full.status_code == 503 and "at most 3" in full.get_data(as_text=True)
    # One producer thread feeds all three streams.
    read_events(first, 2), read_events(other, 2)
    assert [t.name for t in threading.enumerate()].count("wallboard-feed") == 1
    for resp in (first, second, other):
        resp.close()
    assert app.extensions["wallboard"].open_streams == 0
    again = supervisor.get("/wallboard/stream")  # room again
    assert again.status_code == 200
    again.close()
