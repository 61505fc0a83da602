"""The report page's charts in real Chromium against `plateau web`: axis labels at least 11 px tall in
a desktop window and on a 390 px phone, and the calls-per-hour axis ticks in whole numbers."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.store import acd, queue_log
from appliance.store.db import Store
from appliance.store.models import QueueConfig
from appliance.store.queue_log import QueueEvent
from tests.peers.browser import browser_page, log_in
from tests.peers.webui import WebUi
from web import accounts

PASSWORD = "violet-kettle-harbour"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebUi]:
    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "plateau.db")
    try:
        accounts.create_user(store, "boss", PASSWORD, "admin", time.time(), must_change=False)
        acd.put_queue(store, QueueConfig(name="sales"))
        lt = time.localtime()
        midnight = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        for i in range(3):  # three calls in the 00:00 hour: a peak of 3 used to tick 0, 1.2, 2.5, 3.8, 5
            at = midnight + 60 + i * 100
            queue_log.record(store, QueueEvent(at, "ENTER", f"c{i}", "sales", caller="+331"))
            queue_log.record(store, QueueEvent(at + 5, "CONNECT", f"c{i}", "sales", "2001", "+331", wait_s=5))
    finally:
        store.close()
    with WebUi(data) as ui:
        yield ui


@pytest.mark.parametrize("viewport", [(1440, 900), (390, 844)])
def test_report_chart_axes_are_readable_and_count_ticks_whole(web: WebUi, viewport: tuple[int, int]) -> None:
    with browser_page(viewport=viewport) as page:
        log_in(page, web.url, "boss", PASSWORD)
        page.wait_for_url(web.url + "/")
        page.goto(f"{web.url}/reports/")
        heights = page.eval_on_selector_all(
            "svg.chart text.axis", "els => els.map(e => e.getBoundingClientRect().height)")
        ticks = page.eval_on_selector_all(
            "svg.chart text.axis[text-anchor=end]", "els => els.map(e => e.textContent)")
    assert heights and min(heights) >= 11, heights
    count_ticks = ticks[:5]  # the y labels of the first chart, calls per hour
    assert count_ticks and all(t.isdigit() for t in count_ticks), ticks
