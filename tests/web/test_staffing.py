"""Staffing page: fed by the queue log, editable, Erlang C figures per interval."""
from __future__ import annotations

import re
import time

from flask import Flask
from flask.testing import FlaskClient

from appliance.store import acd, queue_log
from appliance.store.models import QueueConfig
from appliance.store.queue_log import QueueEvent
from tests.web.conftest import store_of


def seed_busy_half_hour(app: Flask) -> None:
    """100 calls between 10:00 and 10:30 today, each handled in 180 s (170 talk + 10 wrap-up)."""
    lt = time.localtime()
    ten = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 10, 0, 0, 0, 0, -1))
    store = store_of(app)
    try:
        acd.put_queue(store, QueueConfig(name="support", service_level_seconds=20))
        with store.transaction():
            for i in range(100):
                at = ten + i * 15
                queue_log.record(store, QueueEvent(at, "ENTER", f"c{i}", "support"))
                queue_log.record(store, QueueEvent(at + 5, "COMPLETE", f"c{i}", "support", "2001",
                                                   talk_s=170, wrap_s=10))
    finally:
        store.close()


def row(page: str, key: str) -> str:
    m = re.search(rf'<tr id="slot-{key}">(.*?)</tr>', page, re.S)
    assert m, f"no row {key}"
    return m.group(1)


def test_agents_get_403(agent: FlaskClient) -> None:
    assert agent.get("/staffing/").status_code == 403


def test_needed_agents_from_the_sites_traffic(app: Flask, supervisor: FlaskClient) -> None:
    seed_busy_half_hour(app)
    today = time.strftime("%Y-%m-%d")
    page = supervisor.get(f"/staffing/?queue=support&start={today}&end={today}").get_data(as_text=True)
    ten = row(page, "1000")
    assert 'name="calls_1000" type="number" step="0.1" min="0" value="100.0"' in ten
    assert 'value="180"' in ten
    assert re.search(r'class="agents">14<', ten)  # Erlang C: 10 erlangs, 80/20 -> 14 agents
    assert "88.8 %" in ten and "8 s" in ten and "71.4 %" in ten
    assert 'id="staff-peak">14<' in page and "<svg" in page


def test_inputs_are_editable(app: Flask, admin: FlaskClient) -> None:
    seed_busy_half_hour(app)
    today = time.strftime("%Y-%m-%d")
    page = admin.get(f"/staffing/?queue=support&start={today}&end={today}&calls_1000=200&target=90"
                     "&threshold=30").get_data(as_text=True)
    ten = row(page, "1000")
    assert 'value="200"' in ten
    assert re.search(r'class="agents">2[3-6]<', ten)  # 20 erlangs at 90/30


def test_bad_inputs_are_field_errors(admin: FlaskClient) -> None:
    resp = admin.get("/staffing/?target=120&interval=7&queue=nope&calls_0800=-3")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400
    for name in ("target", "interval", "queue", "calls_0800"):
        assert f'id="error-{name}"' in text, name


def test_empty_site_shows_office_hours(supervisor: FlaskClient) -> None:
    page = supervisor.get("/staffing/").get_data(as_text=True)
    assert 'id="slot-0800"' in page and 'id="slot-1730"' in page
