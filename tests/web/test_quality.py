"""Quality scorecards: form validation, storage, audit, weekly averages."""
from __future__ import annotations

import re

import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from appliance.store import acd
from appliance.store.models import AgentConfig
from tests.web.conftest import store_of

GOOD = {"verification": "5", "call_handling": "4", "call_flow": "3", "soft_skills": "5", "resolution": "4",
        "comment": "Friendly, forgot to confirm the address."}


def seed_recording(app: Flask, agent: str = "2001") -> int:
    store = store_of(app)
    try:
        acd.put_agent(store, AgentConfig(agent_id="2001", name="Alice", pin="1234"))
        with store.transaction():
            cur = store.execute("INSERT INTO recordings (call_id, path, mode, reason, queue, agent, started_at)"
                              " VALUES ('call-9', '2024/05/01/x.wav', 'stereo', 'queue', 'sales', ?, ?)",
                              (agent, time.time() - 600))
            return int(cur.lastrowid or 0)
    finally:
        store.close()


def stored(app: Flask, sql: str) -> list[Any]:
    store = store_of(app)
    try:
        return store.query(sql)
    finally:
        store.close()


def test_agents_get_403(agent: FlaskClient) -> None:
    assert agent.get("/quality/").status_code == 403
    assert agent.post("/quality/scores", data={**GOOD, "csrf_token": agent.csrf}).status_code == 403  # type: ignore[attr-defined]


def test_page_offers_recent_recordings(app: Flask, supervisor: FlaskClient) -> None:
    rec = seed_recording(app)
    page = supervisor.get(f"/quality/?recording={rec}").get_data(as_text=True)
    assert f'<option value="{rec}" data-src="/reports/recordings/{rec}.wav" selected' in page
    assert f'id="recording-player" src="/reports/recordings/{rec}.wav"' in page
    for name in ("verification", "call_handling", "call_flow", "soft_skills", "resolution"):
        assert f'name="{name}"' in page


def test_a_score_is_stored_audited_and_averaged(app: Flask, supervisor: FlaskClient) -> None:
    rec = seed_recording(app)
    resp = supervisor.post("/quality/scores", data={**GOOD, "recording_id": str(rec),
                                                    "csrf_token": supervisor.csrf})  # type: ignore[attr-defined]
    assert resp.status_code == 302
    rows = stored(app, "SELECT recording_id, call_id, agent, supervisor, verification, call_handling, call_flow,"
                       " soft_skills, resolution, comment FROM quality_scores")
    assert rows == [(rec, "call-9", "2001", "super", 5, 4, 3, 5, 4, GOOD["comment"])]
    audit = stored(app, "SELECT username, after_json FROM audit_log WHERE action = 'quality.score'")
    assert len(audit) == 1 and audit[0][0] == "super" and '"verification": 5' in audit[0][1]
    page = supervisor.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Scorecard saved for agent 2001: 21/25." in page
    assert "84 %" in page  # 21 of 25 this week
    assert "<svg" in page and "<polyline" not in page  # one week: a dot, no line yet


def test_a_seven_is_refused_and_nothing_stored(app: Flask, admin: FlaskClient) -> None:
    rec = seed_recording(app)
    resp = admin.post("/quality/scores", data={**GOOD, "soft_skills": "7", "recording_id": str(rec),
                                               "csrf_token": admin.csrf})  # type: ignore[attr-defined]
    assert resp.status_code == 400
    text = resp.get_data(as_text=True)
    assert 'id="error-soft_skills"' in text and "a whole number from 0 to 5" in text
    assert 'id="error-verification"' not in text
    assert "Friendly, forgot to confirm the address." in text  # the form keeps what was typed
    assert stored(app, "SELECT COUNT(*) FROM quality_scores") == [(0,)]
    assert stored(app, "SELECT COUNT(*) FROM audit_log WHERE action = 'quality.score'") == [(0,)]


def test_missing_recording_and_bad_values(app: Flask, admin: FlaskClient) -> None:
    seed_recording(app)
    resp = admin.post("/quality/scores", data={**GOOD, "recording_id": "999", "verification": "-1",
                                               "resolution": "x", "comment": "y" * 2001,
                                               "csrf_token": admin.csrf})  # type: ignore[attr-defined]
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400
    for name in ("recording_id", "verification", "resolution", "comment"):
        assert f'id="error-{name}"' in text, name
    assert stored(app, "SELECT COUNT(*) FROM quality_scores") == [(0,)]


def test_weekly_averages_over_time(app: Flask, supervisor: FlaskClient) -> None:
    rec = seed_recording(app)
    week = 7 * 86400
    store = store_of(app)
    try:
        with store.transaction():
            for at, total in ((time.time() - week, 5), (time.time() - week, 3), (time.time(), 4)):
                store.execute("INSERT INTO quality_scores (recording_id, call_id, agent, supervisor, verification,"
                            " call_handling, call_flow, soft_skills, resolution, at)"
                            " VALUES (?, 'call-9', '2001', 'super', ?, ?, ?, ?, ?, ?)",
                            (rec, total, total, total, total, total, at))
    finally:
        store.close()
    page = supervisor.get("/quality/?agent=2001&weeks=4").get_data(as_text=True)
    assert "<polyline" in page  # two weeks: a line
    assert "80 %" in page and "80 %</td>" in page  # last week (5 and 3 average to 4/5) and this week
    resp = supervisor.get("/quality/?weeks=0&agent=nobody")
    assert resp.status_code == 400
    text = resp.get_data(as_text=True)
    assert 'id="error-weeks"' in text and 'id="error-agent"' in text


def test_the_chart_legend_names_the_agent_not_its_id(app: Flask, supervisor: FlaskClient) -> None:
    rec = seed_recording(app)
    supervisor.post("/quality/scores", data={**GOOD, "recording_id": str(rec),
                                             "csrf_token": supervisor.csrf})  # type: ignore[attr-defined]
    page = supervisor.get("/quality/").get_data(as_text=True)
    legend = re.findall(r'<text class="legend"[^>]*>([^<]*)</text>', page)
    assert legend == ["Alice"], legend
