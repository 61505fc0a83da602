"""The wallboard's floor (issue 15 item 3), against the control API's answers: time in state,
"live" only while the engine answers, busy elsewhere, unreachable phones, waiting callers, each
agent's queue and colour, who monitors whom, the supervisor's extension kept with the user, the
confirmations and the TV board."""
from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError, ApiUnavailable
from tests.peers.polling import wait_until
from tests.web.conftest import FakeEngineApi, login
from tests.web.test_wallboard import KPIS, QUEUES, add_extension

SALES = {"name": "sales", "strategy": "ringall", "waiting": 1, "longest_wait": 12.0,
         "callers": [{"entry": "a:q2", "caller": "+33611", "name": "Zoé Martin", "position": 1, "wait": 12.0,
                      "priority": 5, "callback": False}],
         "agents": {"logged-out": 0, "available": 0, "ringing": 0, "on-call": 1, "wrap-up": 0, "paused": 0,
                    "busy-elsewhere": 0}, "service_rate": None}
SUPPORT = dict(QUEUES[0], agents=dict(QUEUES[0]["agents"], **{"on-call": 0, "busy-elsewhere": 1}))
AGENTS = [
    {"agent": "2001", "name": "Alice", "state": "on-call", "pause_reason": None, "device": "1001", "since": 320.0,
     "calls_today": 3, "call": "c1", "caller": "+33611", "interaction": 7, "queue": "sales", "campaign": None,
     "reachable": True, "level": "warn", "skills": {}},
    {"agent": "2002", "name": "Bob", "state": "available", "pause_reason": None, "device": "1009", "since": 5.0,
     "calls_today": 0, "call": None, "caller": None, "interaction": None, "queue": None, "campaign": None,
     "reachable": False, "level": "ok", "skills": {}},
    {"agent": "2003", "name": "Chloé", "state": "logged-out", "pause_reason": None, "device": None, "since": None,
     "calls_today": 0, "call": None, "caller": None, "interaction": None, "queue": None, "campaign": None,
     "reachable": None, "level": "ok", "skills": {}},
]
MONITORS = [{"agent": "2001", "call": "c1", "mode": "whisper", "supervisor": "1090", "supervisor_call": "c9"}]


@pytest.fixture
def floor(app: Flask, engine_api: FakeEngineApi) -> FakeEngineApi:
    app.config["WALLBOARD_INTERVAL"] = 0.01
    engine_api.responses[("GET", "/v1/queues")] = [SALES, SUPPORT]
    engine_api.responses[("GET", "/v1/agents")] = AGENTS
    engine_api.responses[("GET", "/v1/queues/support/kpis")] = KPIS
    engine_api.responses[("GET", "/v1/queues/sales/kpis")] = dict(KPIS, queue="sales")
    engine_api.responses[("GET", "/v1/monitors")] = MONITORS
    return engine_api


def _snap(client: FlaskClient) -> dict[str, Any]:
    snap: dict[str, Any] = client.get("/wallboard/snapshot").get_json()
    return snap


def test_no_time_in_state_shows_a_dash(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    assert "499058" not in page
    row = page[page.index('data-agent="2003"'):]
    assert '<td class="since level-ok">—</td>' in row[:row.index("</tr>")]
    assert _snap(supervisor)["agents"][2]["since"] is None


def test_live_only_while_the_engine_answers(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    assert ">● live<" in page
    floor.responses[("GET", "/v1/queues")] = ApiUnavailable("connection refused")
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    assert "● live" not in page and "engine not reachable" in page
    assert 'id="no-queues" class="muted" hidden' in page  # not "No queues": there is no answer at all


def test_a_member_busy_for_another_queue_is_busy_elsewhere(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    support = next(q for q in _snap(supervisor)["queues"] if q["name"] == "support")
    assert (support["on_call"], support["busy_elsewhere"]) == (0, 1)
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    card = page[page.index('data-queue="support"'):]
    assert '<dd class="agents-busy-elsewhere">1</dd>' in card[:card.index("</dl>")]


def test_an_agent_on_an_unregistered_phone_shows_unreachable(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    row = page[page.index('data-agent="2002"'):]
    row = row[:row.index("</tr>")]
    assert '<span class="state unreachable">unreachable</span>' in row and "available</span>" not in row
    assert _snap(supervisor)["agents"][1]["shown"] == "unreachable"
    assert '<span class="muted not-registered" > not registered</span>' in row
    paused = dict(AGENTS[1], state="paused", pause_reason="break")  # paused stays paused, phone flagged
    floor.responses[("GET", "/v1/agents")] = [AGENTS[0], paused, AGENTS[2]]
    wait_until(lambda: _snap(supervisor)["agents"][1]["shown"] == "paused", what="Bob paused")


def test_waiting_callers_list(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    waiting = _snap(supervisor)["waiting"]
    assert [(w["queue"], w["caller"], w["name"], w["position"], w["priority"]) for w in waiting] == [
        ("support", "+33123", "", 1, 0), ("sales", "+33611", "Zoé Martin", 1, 5)]  # longest wait first
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    table = page[page.index('id="waiting"'):page.index('id="no-waiting"')]
    assert "Zoé Martin" in table and "+33123" in table and "1:15" in table and "0:12" in table


def test_agents_show_their_queue_and_the_colour_of_their_time(supervisor: FlaskClient,
                                                              floor: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    row = page[page.index('data-agent="2001"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="since level-warn">5:20</td>' in row and '<td class="working">sales</td>' in row


def test_who_monitors_whom(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    (m,) = _snap(supervisor)["monitors"]
    assert (m["supervisor"], m["mode"], m["agent"], m["agent_name"]) == ("1090", "whisper", "2001", "Alice")
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    table = page[page.index('id="monitors"'):page.index('id="no-monitors"')]
    assert "1090" in table and "whisper" in table and "Alice" in table
    floor.responses[("GET", "/v1/monitors")] = ApiError(404, "no route")  # an older engine: nobody
    wait_until(lambda: _snap(supervisor)["monitors"] == [], timeout=5.0, what="no monitors from an older engine")


def test_my_extension_is_a_setting_of_the_user(app: Flask, supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    assert 'id="no-extension" class="notice" >' in page  # explained in the page, not only a tooltip
    assert "need your extension" in page
    add_extension(app, "1090")
    resp = supervisor.post("/wallboard/my-extension", data={"extension": "1090", "csrf_token": supervisor.csrf})
    assert resp.status_code == 302
    again = login(app.test_client(), "super")  # a new login, a new browser session
    page = again.get("/wallboard/").get_data(as_text=True)
    assert 'id="my-extension" value="1090"' in page and 'id="no-extension" class="notice" hidden' in page
    floor.responses[("POST", "/v1/agents/2001/monitor")] = {"call": "m1", "agent": "2001", "device": "1090",
                                                           "mode": "listen"}
    resp = again.post("/wallboard/agents/2001/monitor", data={"mode": "listen", "csrf_token": again.csrf},
                      headers={"Accept": "application/json"})
    assert resp.status_code == 200
    assert ("POST", "/v1/agents/2001/monitor", {"device": "1090", "mode": "listen"}) in floor.requests
    other = login(app.test_client(), "admin")  # another user has their own (none yet)
    assert 'id="my-extension" value=""' in other.get("/wallboard/").get_data(as_text=True)


def test_pause_and_logout_ask_for_confirmation(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    page = supervisor.get("/wallboard/").get_data(as_text=True)
    assert 'data-action="pause" data-confirm="pause"' in page and 'data-action="logout" data-confirm="logout"' in page


def test_tv_mode_has_large_figures_and_no_controls(supervisor: FlaskClient, floor: FakeEngineApi) -> None:
    resp = supervisor.get("/wallboard/tv")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert '<body class="tv">' in page and 'data-queue="support"' in page and 'data-queue="sales"' in page
    assert "<form" not in page and "<button" not in page and 'class="sidebar"' not in page
    assert "Zoé Martin" in page and "wallboard.js" in page


def test_tv_mode_is_for_supervisors(agent: FlaskClient) -> None:
    assert agent.get("/wallboard/tv").status_code == 403


# -- the agent desk shows the same truths ---------------------------------------------------------------
def test_the_desk_shows_no_time_unreachable_and_asks_before_pause_and_logout(
        agent: FlaskClient, engine_api: FakeEngineApi) -> None:
    never = dict(AGENTS[2], agent="2001", name="Agent One")
    engine_api.responses[("GET", "/v1/agents")] = [never]
    page = agent.get("/agent/").get_data(as_text=True)
    assert 'id="my-since" class="since" title="time in this state">—<' in page
    assert 'id="pause-form" data-confirm="pause"' in page and 'id="logout-form" data-confirm="logout"' in page
    engine_api.responses[("GET", "/v1/agents")] = [dict(AGENTS[1], agent="2001")]  # available, phone unregistered
    page = agent.get("/agent/").get_data(as_text=True)
    assert 'class="state unreachable" data-state="available">unreachable<' in page
