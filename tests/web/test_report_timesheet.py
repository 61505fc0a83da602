"""The time sheet: an agent's login, logout and each pause with its reason and duration, per day."""
from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from appliance.store import acd, queue_log
from appliance.store.models import AgentConfig
from appliance.store.queue_log import QueueEvent
from tests.web.conftest import store_of
from tests.web.test_reports import today_start


def test_a_day_of_login_pauses_and_logout(app: Flask, supervisor: FlaskClient) -> None:
    at = today_start() + 8 * 3600  # 08:01 local
    store = store_of(app)
    try:
        acd.put_agent(store, AgentConfig(agent_id="2001", name="Alice", pin="1234"))
        for ev in (QueueEvent(at, "AGENT_LOGIN", agent="2001"),
                   QueueEvent(at + 600, "AGENT_PAUSE", agent="2001", data="Lunch"),
                   QueueEvent(at + 2400, "AGENT_UNPAUSE", agent="2001"),
                   QueueEvent(at + 3000, "AGENT_PAUSE", agent="2001"),
                   QueueEvent(at + 3090, "AGENT_LOGOUT", agent="2001")):
            queue_log.record(store, ev)
    finally:
        store.close()
    html = supervisor.get("/reports/timesheet?agent=2001").get_data(as_text=True)
    rows = re.findall(r'<tr class="sheet-(\w+)">\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>', html)
    # By hand: logged in 08:01:00-08:52:30; Lunch 08:11-08:41 (30 min); a pause without reason 08:51-08:52:30.
    assert [(k, w.strip(), a, b) for k, w, a, b in rows] == [
        ("login", "Logged in", "08:01:00", "08:52:30"),
        ("pause", "Pause: Lunch", "08:11:00", "08:41:00"),
        ("pause", "Pause: No reason", "08:51:00", "08:52:30")]
    assert html.count('class="card timesheet-day"') == 1


def test_an_unknown_agent_is_a_400(supervisor: FlaskClient) -> None:
    assert supervisor.get("/reports/timesheet?agent=nobody").status_code == 400
    assert supervisor.get("/reports/timesheet").status_code == 200
