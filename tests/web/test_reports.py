"""Reports: KPI figures from queue-log rows, charts, CSV exports, call search, recording playback."""
from __future__ import annotations

import csv
import io
import re
import time
import wave
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.store import acd, interactions, queue_log
from appliance.store.models import AgentConfig, QueueConfig
from appliance.store.queue_log import QueueEvent
from tests.web.conftest import store_of

ROUTES = ("/reports/", "/reports/kpis.csv", "/reports/calls", "/reports/calls.csv", "/reports/recordings/1.wav")


def kpi(page: str, name: str) -> str:
    m = re.search(rf'id="kpi-{name}">([^<]*)<', page)
    assert m, f"no KPI figure kpi-{name}"
    return m.group(1).strip()


def seed_queue_day(app: Flask, at: float) -> None:
    """Queue "sales" (SL threshold 40 s) with four calls: answered after 5, 30 and 50 s, one abandoned."""
    store = store_of(app)
    try:
        acd.put_agent(store, AgentConfig(agent_id="2001", name="Alice", pin="1234"))
        acd.put_queue(store, QueueConfig(name="sales", service_level_seconds=40))
        rows = [
            QueueEvent(at, "AGENT_LOGIN", agent="2001"),
            QueueEvent(at + 1, "ENTER", "c1", "sales", caller="+4930111"),
            QueueEvent(at + 6, "CONNECT", "c1", "sales", "2001", "+4930111", wait_s=5),
            QueueEvent(at + 66, "COMPLETE", "c1", "sales", "2001", "+4930111", talk_s=60, wrap_s=10),
            QueueEvent(at + 100, "ENTER", "c2", "sales", caller="+4930222"),
            QueueEvent(at + 130, "CONNECT", "c2", "sales", "2001", "+4930222", wait_s=30),
            QueueEvent(at + 250, "COMPLETE", "c2", "sales", "2001", "+4930222", talk_s=120, wrap_s=20),
            QueueEvent(at + 300, "ENTER", "c3", "sales", caller="+4930333"),
            QueueEvent(at + 350, "CONNECT", "c3", "sales", "2001", "+4930333", wait_s=50),
            QueueEvent(at + 380, "COMPLETE", "c3", "sales", "2001", "+4930333", talk_s=30, wrap_s=0),
            QueueEvent(at + 400, "ENTER", "c4", "sales", caller="+4930444"),
            QueueEvent(at + 415, "ABANDON", "c4", "sales", caller="+4930444", wait_s=15),
            QueueEvent(at + 1000, "AGENT_LOGOUT", agent="2001"),
        ]
        for ev in rows:
            queue_log.record(store, ev)
        interactions.record_survey(store, "c1", "sales", "2001", csat=5, nps=10, ces=2, at=at + 70)
        interactions.record_survey(store, "c2", "sales", "2001", csat=3, nps=5, ces=None, at=at + 260)
        store.cdr_open("c1", "+4930111", "", "100", "inbound", at + 1)
        store.cdr_open("c2", "+4930222", "", "100", "inbound", at + 100)
        store.cdr_open("o1", "200", "", "+4940999", "outbound", at + 500)
    finally:
        store.close()


def today_start() -> float:
    lt = time.localtime()
    return time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1)) + 60  # 00:01 today


@pytest.mark.parametrize("path", ROUTES)
def test_agents_get_403_on_every_route(agent: FlaskClient, path: str) -> None:
    assert agent.get(path).status_code == 403


def test_kpis_match_the_queue_log(app: Flask, supervisor: FlaskClient) -> None:
    seed_queue_day(app, today_start())
    page = supervisor.get("/reports/").get_data(as_text=True)
    # The queue's own 40 s threshold: 2 of 4 offered calls answered within it (5 s, 30 s).
    assert kpi(page, "service-level") == "50.0 %"
    assert kpi(page, "offered") == "4" and kpi(page, "answered") == "3" and kpi(page, "missed") == "1"
    assert kpi(page, "abandon-rate") == "25.0 %"
    assert kpi(page, "asa") == "28 s"  # (5 + 30 + 50) / 3
    assert kpi(page, "aht") == "1:20"  # (70 + 140 + 30) / 3 = 80 s
    assert kpi(page, "att") == "1:10"
    assert kpi(page, "inbound") == "2" and kpi(page, "outbound") == "1"
    assert kpi(page, "nps") == "0"  # one promoter, one detractor
    assert kpi(page, "csat") == "50 %"
    assert kpi(page, "occupancy") == "24.0 %"  # 240 s handled of 1000 s logged in
    assert kpi(page, "fcr") == "100.0 %"
    assert "<svg" in page and "Calls per hour of day" in page and "Service level per day" in page
    # The same figure is what the store's KPI function gives for the queue.
    store = store_of(app)
    try:
        k = queue_log.kpis(store, today_start() - 60, today_start() + 86400, "sales", sl_seconds=40)
    finally:
        store.close()
    assert f"{k.service_level:.1f} %" == kpi(page, "service-level")


def test_queue_and_agent_filters(app: Flask, admin: FlaskClient) -> None:
    seed_queue_day(app, today_start())
    page = admin.get("/reports/?queue=sales").get_data(as_text=True)
    assert kpi(page, "service-level") == "50.0 %" and "answered within 40 s" in page
    page = admin.get("/reports/?agent=2001").get_data(as_text=True)
    assert kpi(page, "answered") == "3" and kpi(page, "offered") == "3"  # the calls the agent took
    assert kpi(page, "service-level") == "66.7 %"
    resp = admin.get("/reports/?queue=nope&start=2024-13-01")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="error-queue"' in text and 'id="error-start"' in text


def test_end_before_start_is_a_field_error(supervisor: FlaskClient) -> None:
    resp = supervisor.get("/reports/?start=2024-05-02&end=2024-05-01")
    assert resp.status_code == 400 and "the end date is before the start date" in resp.get_data(as_text=True)
    assert supervisor.get("/reports/kpis.csv?start=2024-05-02&end=2024-05-01").status_code == 400


def test_kpi_csv(app: Flask, supervisor: FlaskClient) -> None:
    seed_queue_day(app, today_start())
    resp = supervisor.get("/reports/kpis.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["queue"] for r in rows] == ["all queues", "sales"]
    assert rows[0]["offered"] == "4" and rows[0]["service_level_pct"] == "50.0"
    assert rows[0]["inbound_calls"] == "2" and rows[0]["nps"] == "0.0"
    assert rows[1]["sl_threshold_s"] == "40" and rows[1]["asa_s"] == "28.3"


def seed_calls(app: Flask, data_dir: Path) -> int:
    """Two calls, the first recorded (a real WAV under data/recordings); returns the recording id."""
    now = time.time()
    store = store_of(app)
    try:
        first = store.cdr_open("call-1", "+4930555", "=HYPERLINK(\"x\")", "100", "inbound", now - 60)
        store.cdr_answer(first, now - 55)
        store.cdr_close(first, now - 5, "ANSWERED", "normal")
        second = store.cdr_open("call-2", "200", "Bob", "+4940777", "outbound", now - 30)
        store.cdr_close(second, now - 20, "NO ANSWER", "timeout")
        rel = "2024/05/01/call-1.wav"
        path = data_dir / "recordings" / rel
        path.parent.mkdir(parents=True)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(b"\x00\x01" * 800)
        with store.transaction():
            cur = store.execute("INSERT INTO recordings (call_id, cdr_id, path, mode, reason, agent, started_at)"
                              " VALUES (?, ?, ?, 'mixed', 'queue', '2001', ?) RETURNING id",
                              ("call-1", first, rel, now - 55))
            rec_id = int(cur.fetchone()[0])  # RETURNING: SQLite and PostgreSQL alike (tests/web/test_postgres.py)
            store.execute("INSERT INTO recordings (call_id, path, mode, reason, started_at)"
                        " VALUES ('evil', '../plateau.db', 'mixed', 'queue', ?)", (now,))
            store.execute("INSERT INTO recordings (call_id, path, mode, reason, started_at)"
                        " VALUES ('evil2', '/etc/passwd', 'mixed', 'queue', ?)", (now,))
    finally:
        store.close()
    return rec_id


def test_call_search_with_playback(app: Flask, data_dir: Path, supervisor: FlaskClient) -> None:
    rec_id = seed_calls(app, data_dir)
    page = supervisor.get("/reports/calls").get_data(as_text=True)
    assert "+4930555" in page and "+4940777" in page
    assert f'<audio controls preload="none" src="/reports/recordings/{rec_id}.wav"' in page
    page = supervisor.get("/reports/calls?number=4940").get_data(as_text=True)
    assert "+4940777" in page and "+4930555" not in page
    page = supervisor.get("/reports/calls?disposition=ANSWERED").get_data(as_text=True)
    assert "+4930555" in page and "+4940777" not in page
    resp = supervisor.get("/reports/calls?number=%27%3B--&disposition=LOST")
    assert resp.status_code == 400
    text = resp.get_data(as_text=True)
    assert 'id="error-number"' in text and 'id="error-disposition"' in text


def test_call_csv(app: Flask, data_dir: Path, admin: FlaskClient) -> None:
    rec_id = seed_calls(app, data_dir)
    resp = admin.get("/reports/calls.csv?number=30555")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(rows) == 1
    row = rows[0]
    assert row["caller"] == "+4930555" and row["disposition"] == "ANSWERED" and row["billsec_s"] == "50.0"
    assert row["recording_id"] == str(rec_id)
    assert row["caller_name"].startswith("'=")  # a formula from a SIP display name is neutralised
    assert admin.get("/reports/calls.csv?disposition=LOST").status_code == 400


def test_recording_streams_and_is_audited(app: Flask, data_dir: Path, supervisor: FlaskClient) -> None:
    rec_id = seed_calls(app, data_dir)
    resp = supervisor.get(f"/reports/recordings/{rec_id}.wav")
    assert resp.status_code == 200 and resp.mimetype == "audio/wav"
    assert resp.data[:4] == b"RIFF" and len(resp.data) == 44 + 1600
    resp = supervisor.get(f"/reports/recordings/{rec_id}.wav", headers={"Range": "bytes=100-199"})
    assert resp.status_code == 206 and len(resp.data) == 100  # the browser can seek
    store = store_of(app)
    try:
        rows = store.query("SELECT username, target, after_json FROM audit_log WHERE action = 'recording.play'")
    finally:
        store.close()
    assert len(rows) == 1 and rows[0][:2] == ("super", str(rec_id)) and "call-1" in rows[0][2]


def test_recording_path_escape_is_refused(app: Flask, data_dir: Path, supervisor: FlaskClient) -> None:
    rec_id = seed_calls(app, data_dir)
    for escaping in (rec_id + 1, rec_id + 2):  # "../plateau.db" and "/etc/passwd"
        resp = supervisor.get(f"/reports/recordings/{escaping}.wav")
        assert resp.status_code == 403
        assert b"SQLite" not in resp.data and b"root:" not in resp.data
    assert supervisor.get("/reports/recordings/999.wav").status_code == 404
    (data_dir / "recordings" / "2024/05/01/call-1.wav").unlink()
    assert supervisor.get(f"/reports/recordings/{rec_id}.wav").status_code == 404
