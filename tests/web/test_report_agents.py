"""The per-agent report page and its CSV: figures equal those worked out by hand from the queue log."""
from __future__ import annotations

import csv
import io

from flask import Flask
from flask.testing import FlaskClient

from tests.web.test_reports import seed_queue_day, today_start


def test_agent_figures_on_the_page_and_in_the_csv(app: Flask, supervisor: FlaskClient) -> None:
    seed_queue_day(app, today_start() + 3600)
    # By hand: 3 answered calls, talk 60+120+30 = 210 s, wrap 10+20+0 = 30 s, so ATT 70 s, AHT 80 s;
    # logged in from login to logout, 1000 s; occupancy (210+30)/1000 = 24 %.
    rows = list(csv.DictReader(io.StringIO(supervisor.get("/reports/agents.csv").get_data(as_text=True))))
    assert len(rows) == 1
    r = rows[0]
    assert (r["agent"], r["name"], r["calls"]) == ("2001", "Alice", "3")
    assert float(r["talk_s"]) == 210 and float(r["wrap_s"]) == 30
    assert float(r["att_s"]) == 70 and float(r["aht_s"]) == 80
    assert float(r["logged_in_s"]) == 1000 and r["occupancy_pct"] == "24.0"
    page = supervisor.get("/reports/agents?sort=occupancy&dir=desc")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-agent="2001"' in html and "<td>Alice</td>" in html and "24" in html


def test_agent_report_refuses_a_bad_sort_and_an_unknown_queue(supervisor: FlaskClient) -> None:
    assert supervisor.get("/reports/agents?sort=nope").status_code == 400
    assert supervisor.get("/reports/agents?queue=nosuch").status_code == 400
    assert supervisor.get("/reports/agents.csv?queue=nosuch").status_code == 400


def test_an_agent_login_gets_403(agent: FlaskClient) -> None:
    for path in ("/reports/agents", "/reports/agents.csv"):
        assert agent.get(path).status_code == 403
