"""The interval report per queue and its CSV: figures equal those worked out by hand from the queue log."""
from __future__ import annotations

import csv
import io
import time

from flask import Flask
from flask.testing import FlaskClient

from tests.web.test_reports import seed_queue_day, today_start


def test_hourly_and_daily_intervals_of_a_queue(app: Flask, supervisor: FlaskClient) -> None:
    at = today_start() + 3600  # 01:01 local: the calls fall in the 01:00 hour (and 01:00-01:15)
    seed_queue_day(app, at)
    rows = list(csv.DictReader(io.StringIO(
        supervisor.get("/reports/intervals.csv?interval=1h&queue=sales").get_data(as_text=True))))
    assert len(rows) == 24  # every hour of today, empty ones included
    hour = time.strftime("%Y-%m-%d %H:00", time.localtime(at))
    busy = [r for r in rows if int(r["offered"])]
    # By hand: 4 offered, 3 answered (waits 5, 30, 50 s), 1 abandoned; SL 40 s: 2 of 4 = 50 %;
    # ASA (5+30+50)/3 = 28.3 s; AHT (60+10 + 120+20 + 30+0)/3 = 80 s.
    assert [r["start"] for r in busy] == [hour]
    b = busy[0]
    assert (b["offered"], b["answered"], b["abandoned"], b["service_level_pct"]) == ("4", "3", "1", "50.0")
    assert abs(float(b["asa_s"]) - 85 / 3) < 0.1 and float(b["aht_s"]) == 80
    daily = supervisor.get("/reports/intervals.csv?interval=1d").get_data(as_text=True)
    days = list(csv.DictReader(io.StringIO(daily)))
    assert [(d["offered"], d["answered"]) for d in days] == [("4", "3")]
    quarters = supervisor.get("/reports/intervals?interval=15m&queue=sales&per=100")
    assert quarters.status_code == 200
    html = quarters.get_data(as_text=True)
    assert html.count("<tr data-start=") == 96 and 'id="interval-csv"' in html


def test_a_bad_interval_is_a_400_that_says_what_is_allowed(supervisor: FlaskClient) -> None:
    r = supervisor.get("/reports/intervals.csv?interval=7m")
    assert r.status_code == 400 and b"15m" in r.data
    assert supervisor.get("/reports/intervals?interval=7m").status_code == 400
