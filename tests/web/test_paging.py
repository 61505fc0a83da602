"""Server-side sorting and paging of the web's tables (web/paging.py, appliance/store/paging.py)."""
from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.store import accounts as account_store
from appliance.store import acd, quality
from appliance.store import dialer as dstore
from appliance.store import reports
from appliance.store.models import AgentConfig, QueueConfig
from appliance.store.paging import PageQuery
from tests.web.conftest import store_of


def seed_calls(app: Flask, n: int, at: float) -> None:
    store = store_of(app)
    try:
        with store.transaction():
            for i in range(n):
                cdr = store.cdr_open(f"c{i}", f"+3361{i:07d}", "", "100", "inbound", at + i)
                store.cdr_answer(cdr, at + i + 1)
                store.cdr_close(cdr, at + i + 1 + (i * 7) % 97, "ANSWERED", None)
    finally:
        store.close()


def callers(page: str) -> list[str]:
    body = page[page.index('id="call-table"'):]
    return re.findall(r"<tr>\s*<td>[^<]*</td>\s*<td>(\+\d+)", body)


def test_the_call_search_sorts_and_pages_on_the_server(app: Flask, supervisor: FlaskClient) -> None:
    seed_calls(app, 120, time.time() - 3600)
    page = supervisor.get("/reports/calls?sort=caller&dir=asc&per=25&page=2").get_data(as_text=True)
    assert callers(page) == [f"+3361{i:07d}" for i in range(25, 50)]
    assert "26–50 of 120" in page and "page 2 of 5" in page
    page = supervisor.get("/reports/calls").get_data(as_text=True)  # default: newest first, 50 a page
    assert callers(page) == [f"+3361{i:07d}" for i in range(119, 69, -1)]
    # The header links keep the filters and toggle the direction of the current sort.
    page = supervisor.get("/reports/calls?number=33610&sort=caller&dir=asc").get_data(as_text=True)
    link = re.search(r'href="([^"]+)" data-sort="caller"', page)
    assert link and "dir=desc" in link.group(1) and "number=33610" in link.group(1)


@pytest.mark.parametrize("query, message", [
    ("sort=call_id;DROP", "sort: one of"), ("dir=sideways", "dir: asc or desc"), ("per=7", "per: one of"),
    ("page=0", "page: a whole number"), ("page=-1", "page: a whole number"),
    ("page=" + "9" * 30, "page: a whole number"), ("page=x", "page: a whole number")])
def test_bad_paging_arguments_are_a_400_that_says_why(admin: FlaskClient, query: str, message: str) -> None:
    for path in ("/reports/calls", "/users/audit"):
        resp = admin.get(f"{path}?{query}")
        assert resp.status_code == 400 and message in resp.get_data(as_text=True), (path, query)


def test_the_audit_log_sorts_by_user_and_pages(app: Flask, admin: FlaskClient) -> None:
    store = store_of(app)
    try:
        with store.transaction():
            for i in range(30):
                account_store.add_audit(store, 1000.0 + i, f"u{i:02d}", "user.create", f"t{i}", None, None)
    finally:
        store.close()
    page = admin.get("/users/audit?sort=username&dir=desc&per=25").get_data(as_text=True)
    users = re.findall(r"<td>(u\d\d)</td>", page)
    assert users == [f"u{i:02d}" for i in range(29, 4, -1)]
    page = admin.get("/users/audit?sort=username&dir=desc&per=25&page=2").get_data(as_text=True)
    assert re.findall(r"<td>(u\d\d)</td>", page)[:5] == [f"u{i:02d}" for i in range(4, -1, -1)]


def test_a_page_counts_every_match_but_reads_one_page(app: Flask) -> None:
    seed_calls(app, 60, 5000.0)
    store = store_of(app)
    try:
        page = reports.calls_page(store, 0, 10**10, PageQuery("duration", False, 10, 10))
        durations = [c.duration for c in page.rows]
        assert page.total == 60 and len(page.rows) == 10 and durations == sorted(durations)
    finally:
        store.close()


def test_the_dnc_list_finds_sorts_and_pages_on_the_server(app: Flask, admin: FlaskClient) -> None:
    store = store_of(app)
    try:
        dstore.add_dnc(store, [f"+3361{i:07d}" for i in range(130)], "admin", note="", by="boss")
        dstore.add_dnc(store, ["+442079460958"], "admin", note="asked in writing", by="eve")
    finally:
        store.close()
    page = admin.get("/admin/dnc/?sort=number&dir=asc&per=100&page=2").get_data(as_text=True)
    numbers = re.findall(r'<tr data-number="([^"]+)"', page)
    assert numbers == [f"+3361{i:07d}" for i in range(100, 130)] + ["+442079460958"]
    assert "101–131 of 131" in page
    page = admin.get("/admin/dnc/?q=WRITING").get_data(as_text=True)  # in the note, any case
    assert re.findall(r'<tr data-number="([^"]+)"', page) == ["+442079460958"]
    assert admin.get("/admin/dnc/?q=" + "9" * 65).status_code == 400
    assert admin.get("/admin/dnc/?sort=note;--").status_code == 400


def test_scorecards_sort_by_total_and_page(app: Flask, supervisor: FlaskClient) -> None:
    store = store_of(app)
    try:
        acd.put_agent(store, AgentConfig(agent_id="2001", name="Alice", pin="1234"))
        now = time.time()
        for i in range(30):
            quality.add_score(store, {"recording_id": None, "call_id": f"c{i}", "agent": "2001", "supervisor": "sup",
                                      **{c: (i + k) % 6 for k, c in enumerate(quality.CRITERIA)},
                                      "comment": f"card-{i}", "at": now - 60 * i})
    finally:
        store.close()
    page = supervisor.get("/quality/?sort=total&dir=desc&per=25").get_data(as_text=True)
    totals = [int(t) for t in re.findall(r"<td><strong>(\d+)</strong>/25", page)]
    assert len(totals) == 25 and totals == sorted(totals, reverse=True)
    page = supervisor.get("/quality/?per=25&page=2").get_data(as_text=True)
    assert re.findall(r"card-\d+", page) == [f"card-{i}" for i in range(25, 30)]  # newest first, page 2
    assert supervisor.get("/quality/?sort=comment").status_code == 400


def test_an_admin_list_sorts_finds_and_pages_on_the_server(app: Flask, admin: FlaskClient) -> None:
    store = store_of(app)
    try:
        for i in range(60):
            acd.put_queue(store, QueueConfig(name=f"q{i:02d}", number=str(6000 + (i * 37) % 60)))
    finally:
        store.close()
    page = admin.get("/admin/queues/?per=25&page=3").get_data(as_text=True)
    assert re.findall(r'<a href="/admin/queues/(q\d\d)/edit">', page) == [f"q{i:02d}" for i in range(50, 60)]
    page = admin.get("/admin/queues/?sort=c0&dir=desc&per=25").get_data(as_text=True)
    assert re.findall(r'<a href="/admin/queues/(q\d\d)/edit">', page)[:2] == ["q59", "q58"]
    page = admin.get("/admin/queues/?q=Q4").get_data(as_text=True)
    assert re.findall(r'<a href="/admin/queues/(q\d\d)/edit">', page) == [f"q4{i}" for i in range(10)]
    assert admin.get("/admin/queues/?sort=c99").status_code == 400
