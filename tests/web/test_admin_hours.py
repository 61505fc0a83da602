"""Admin business hours editor through the Flask client: one hours node's time zone, open ranges and
holidays, validated as a whole flow and published by the flow editor's path."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from appliance.ivr.flow import HoursNode, load_flow
from tests.web.conftest import FakeEngineApi
from tests.web.test_admin_config import audit_rows, field_error, post, reloads
from tests.web.test_admin_flows import flows_of, publish_demo

EDIT = "/admin/hours/demo/check_hours"


def hours_node(app: Flask) -> HoursNode:
    node = load_flow((flows_of(app) / "demo.yaml").read_text(encoding="utf-8")).nodes["check_hours"]
    assert isinstance(node, HoursNode)
    return node


def assert_nothing_written(app: Flask, text: str, engine_api: FakeEngineApi) -> None:
    assert (flows_of(app) / "demo.yaml").read_text(encoding="utf-8") == text
    assert not list(flows_of(app).glob("demo.v*.yaml")) and not list(flows_of(app).glob(".*tmp"))
    assert reloads(engine_api) == 0 and audit_rows(app, "hours.update") == []


def test_list_links_to_the_form_which_shows_the_node(app: Flask, admin: FlaskClient) -> None:
    publish_demo(app)
    assert f'href="{EDIT}"' in admin.get("/admin/hours/").get_data(as_text=True)
    page = admin.get(EDIT).get_data(as_text=True)
    assert '<option value="Europe/Paris" selected>' in page and '<option value="UTC"' in page
    assert "mon-fri 08:30-18:00\nsat 09:00-12:00</textarea>" in page
    assert "2026-12-25\n2027-01-01\n05-01</textarea>" in page
    assert "comments in demo.yaml are not kept" in page and 'href="/admin/flows/demo"' in page


def test_edit_publishes_a_new_version_with_the_new_hours(app: Flask, admin: FlaskClient,
                                                         engine_api: FakeEngineApi) -> None:
    text = publish_demo(app)
    before = load_flow(text)
    monday_0730 = dt.datetime(2026, 11, 23, 7, 30)  # naive: the node's local time
    assert not hours_node(app).is_open(monday_0730)
    form = {"timezone": "America/New_York", "open": "mon-fri 07:00-19:00\r\n\r\nsun 10:00-12:00\r\n",
            "holidays": "2026-12-24\r\n05-01"}
    resp = post(admin, EDIT, form, follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "version 2 published" in page and "Version 1 is kept" in page
    assert "America/New_York" in page and "sun 10:00-12:00" in page  # the list shows the new hours
    # The previous document is kept byte for byte; the new one is version 2 and the engine is told.
    assert (flows_of(app) / "demo.v1.yaml").read_text(encoding="utf-8") == text
    after = load_flow((flows_of(app) / "demo.yaml").read_text(encoding="utf-8"))
    assert after.version == 2 and reloads(engine_api) == 1
    (row,) = audit_rows(app, "hours.update")
    assert row[1] == "demo" and row[2]["version"] == 1 and row[3]["version"] == 2
    # The new hours are the ones in force.
    node = hours_node(app)
    assert node.timezone == "America/New_York"
    assert node.is_open(monday_0730) and node.is_open(dt.datetime(2026, 11, 22, 11, 0))  # Sunday morning
    assert not node.is_open(dt.datetime(2026, 11, 21, 10, 0))  # Saturday: no longer open
    assert not node.is_open(dt.datetime(2026, 12, 24, 10, 0)) and node.is_open(dt.datetime(2026, 12, 25, 10, 0))
    assert not node.is_open(dt.datetime(2031, 5, 1, 10, 0))  # a Thursday, closed every 1 May
    # 07:30 in New York is 12:30 UTC: an aware time is converted to the node's zone.
    assert node.is_open(dt.datetime(2026, 11, 23, 12, 30, tzinfo=dt.UTC))
    # Only that node's three keys changed.
    assert {k: v for k, v in after.nodes.items() if k != "check_hours"} == {
        k: v for k, v in before.nodes.items() if k != "check_hours"}
    assert (node.next_open, node.next_closed) == ("welcome", "closed")
    # Empty holidays remove them all.
    resp = post(admin, EDIT, {**form, "holidays": ""})
    assert resp.status_code == 302 and hours_node(app).holidays == frozenset()
    assert hours_node(app).yearly_holidays == frozenset() and load_flow(
        (flows_of(app) / "demo.yaml").read_text(encoding="utf-8")).version == 3


def test_bad_ranges_and_dates_are_refused_beside_the_field(app: Flask, admin: FlaskClient,
                                                          engine_api: FakeEngineApi) -> None:
    text = publish_demo(app)
    good = {"timezone": "Europe/Paris", "open": "mon-fri 08:30-18:00", "holidays": "2026-12-25"}
    resp = post(admin, EDIT, {**good, "open": "sat 09:00-12:00\nmon-fri 18:00-08:00"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "Nothing was saved" in page
    assert field_error(page, "open") == "line 2 (mon-fri 18:00-08:00): end 08:00 is not after start 18:00"
    assert "sat 09:00-12:00\nmon-fri 18:00-08:00</textarea>" in page  # the input is kept
    resp = post(admin, EDIT, {**good, "open": "funday 09:00-17:00"})
    assert resp.status_code == 400 and "unknown day in 'funday'" in field_error(resp.get_data(as_text=True), "open")
    resp = post(admin, EDIT, {**good, "open": ""})
    assert resp.status_code == 400 and "non-empty list" in field_error(resp.get_data(as_text=True), "open")
    resp = post(admin, EDIT, {**good, "holidays": "2026-12-25\n2026-02-30"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "line 2 (2026-02-30): expected YYYY-MM-DD or MM-DD" in field_error(page, "holidays")
    resp = post(admin, EDIT, {**good, "holidays": "13-01"})
    assert resp.status_code == 400 and "13-01" in field_error(resp.get_data(as_text=True), "holidays")
    resp = post(admin, EDIT, {**good, "timezone": "Mars/Olympus_Mons"})
    assert resp.status_code == 400 and "unknown time zone" in field_error(resp.get_data(as_text=True), "timezone")
    assert_nothing_written(app, text, engine_api)


def test_a_problem_elsewhere_in_the_flow_is_shown_on_the_form(app: Flask, admin: FlaskClient,
                                                             engine_api: FakeEngineApi) -> None:
    text = publish_demo(app).replace("1: sales_menu", "1: salse_menu")
    (flows_of(app) / "demo.yaml").write_text(text, encoding="utf-8")
    resp = post(admin, EDIT, {"timezone": "Europe/Paris", "open": "mon-fri 08:30-18:00", "holidays": ""})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "nodes.main_menu.options.1: unknown node" in page
    assert "Fix it in the flow editor" in page
    assert_nothing_written(app, text, engine_api)


def test_unknown_flow_or_node_is_404(app: Flask, admin: FlaskClient) -> None:
    publish_demo(app)
    for url in ("/admin/hours/nope/check_hours", "/admin/hours/demo/nope", "/admin/hours/demo/welcome",
                "/admin/hours/demo.v1/check_hours"):
        assert admin.get(url).status_code == 404, url
        assert post(admin, url, {"timezone": "UTC", "open": "mon 09:00-10:00"}).status_code == 404, url
    assert not Path(flows_of(app) / "nope.yaml").exists()


def test_other_roles_are_refused(app: Flask, supervisor: FlaskClient, agent: FlaskClient,
                                 engine_api: FakeEngineApi) -> None:
    text = publish_demo(app)
    for client in (supervisor, agent):
        assert client.get(EDIT).status_code == 403
        resp = post(client, EDIT, {"timezone": "UTC", "open": "mon-sun 00:00-24:00", "holidays": ""})
        assert resp.status_code == 403
    assert_nothing_written(app, text, engine_api)
