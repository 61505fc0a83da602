"""Outbound campaigns in the web UI: campaign admin and live figures, list import with its report,
the do-not-call list, and the agent desk's lead panel, against the real store and a stand-in engine."""
from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import re
import time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiError, ApiUnavailable
from appliance.dialer.campaign import CampaignConfig
from appliance.store import acd
from appliance.store import dialer as dstore
from appliance.store.models import QueueConfig, Trunk
from tests.web.conftest import FakeEngineApi, store_of

JSON = {"Accept": "application/json"}
BASE = "/admin/campaigns"

# A prospect file as a French CRM exports it: semicolons, accents, and rows that must be left out.
PROSPECTS = ("Téléphone;Prénom;Nom;Société;Ville\n"
             "06 12 34 56 78;Anne;Martin;Acme;Lyon\n"
             "06 12 34 56 79;Bruno;Petit\n"  # two fields short: malformed
             "0612345678;Anne;Martin bis;Acme;Lyon\n"  # the same number as line 2
             "07 00 00;Chloé;Durand;;Nice\n"  # too short for a French number
             "06 98 76 54 32;Denis;Moreau;Initech;Paris\n"  # on the do-not-call list
             "+44 20 7946 0958;Fred;Smith;Globex;London\n"
             "06 55 44 33 22;Gaëlle;Roux;;Lille\n")


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    return client.post(url, data={**(data or {}), "csrf_token": client.csrf}, **kw)  # type: ignore[attr-defined]


def text(resp: Any) -> str:
    return html.unescape(resp.get_data(as_text=True))


def with_store(app: Flask, fn: Any) -> Any:
    store = store_of(app)
    try:
        return fn(store)
    finally:
        store.close()


def audit_rows(app: Flask, action: str) -> list[tuple[str, str, Any, Any]]:
    rows = with_store(app, lambda s: s.query(
        "SELECT username, target, before_json, after_json FROM audit_log WHERE action = ? ORDER BY id", (action,)))
    return [(u, t, json.loads(b) if b else None, json.loads(a) if a else None) for u, t, b, a in rows]


def engine_posts(api: FakeEngineApi) -> list[tuple[str, Any]]:
    return [(p, b) for m, p, b in api.requests if m == "POST"]


def field_error(page: str, field_id: str) -> str:
    m = re.search(rf'id="{re.escape(field_id)}".*?class="field-error" role="alert">([^<]*)<', page, re.S)
    assert m, f"no error beside {field_id}"
    return html.unescape(m.group(1))


@pytest.fixture
def site(app: Flask) -> Flask:
    """A queue for the campaign's agents and a trunk for its calls."""
    def seed(s: Any) -> None:
        acd.put_queue(s, QueueConfig(name="outbound"))
        s.put_trunk(Trunk(name="carrier", host="sip.example.net"))
    with_store(app, seed)
    return app


@pytest.fixture
def campaign(site: Flask) -> Flask:
    """Campaign "spring" (progressive, paused) with the site's queue and trunk."""
    with_store(site, lambda s: dstore.put_campaign(s, CampaignConfig(
        name="spring", queue="outbound", trunk="carrier", script="Hello {first_name}, this is Plateau.")))
    return site


FORM = {
    "name": "summer", "mode": "predictive", "queue": "outbound", "trunk": "carrier", "caller_id": "+33140000000",
    "country": "fr", "windows": "mon-fri 10:00-13:00\r\nmon-fri 14:00-19:00",
    "dispositions": "sale\r\nno-sale\r\ncallback",
    "max_attempts": "4", "abandon_cap": "2.5", "abandon_window_hours": "24", "abandon_seconds": "2",
    "max_ratio": "2.5", "amd": "1", "machine_action": "message", "machine_message": "We will call again.",
    "abandon_message": "Sorry, we will call you back.", "script": "Hello,\r\nthis is Plateau.",
    "retry_minutes.no-answer": "90", "retry_minutes.busy": "10", "retry_minutes.failed": "",
    "retry_minutes.machine": "240", "retry_minutes.abandoned": "30",
}


# -- roles --------------------------------------------------------------------------------------------
def test_roles(campaign: Flask, admin: FlaskClient, supervisor: FlaskClient, agent: FlaskClient) -> None:
    for url in (f"{BASE}/", f"{BASE}/stats", f"{BASE}/spring/", "/admin/dnc/"):
        assert agent.get(url).status_code == 403, url
    for url in (f"{BASE}/", f"{BASE}/stats", f"{BASE}/spring/"):
        assert supervisor.get(url).status_code == 200, url
        assert admin.get(url).status_code == 200, url
    for url in (f"{BASE}/new", f"{BASE}/spring/edit", f"{BASE}/spring/import", "/admin/dnc/"):
        assert supervisor.get(url).status_code == 403, url
    assert post(supervisor, f"{BASE}/spring/delete").status_code == 403
    assert post(supervisor, "/admin/dnc/add", {"number": "0612345678"}).status_code == 403
    assert post(agent, f"{BASE}/spring/start").status_code == 403
    assert with_store(campaign, lambda s: dstore.get_campaign(s, "spring")) is not None
    # The sidebar has the entry for both roles that may watch campaigns.
    assert 'href="/admin/campaigns/"' in supervisor.get("/").get_data(as_text=True)
    assert 'href="/admin/campaigns/"' not in agent.get("/agent/").get_data(as_text=True)
    # Supervisors do not see admin-only buttons.
    page = supervisor.get(f"{BASE}/").get_data(as_text=True)
    assert "New campaign" not in page and "Import a list" not in page and 'data-run="start"' in page


# -- create / edit / delete -------------------------------------------------------------------------
def test_create_with_every_field(site: Flask, admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    page = admin.get(f"{BASE}/new").get_data(as_text=True)
    for name in FORM:
        assert f'name="{name}"' in page, name
    resp = post(admin, f"{BASE}/new", FORM)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"{BASE}/summer/")
    c = with_store(site, lambda s: dstore.get_campaign(s, "summer"))
    assert c == CampaignConfig(
        name="summer", queue="outbound", trunk="carrier", mode="predictive", caller_id="+33140000000",
        script="Hello,\nthis is Plateau.", dispositions=["sale", "no-sale", "callback"],
        retry_minutes={"no-answer": 90, "busy": 10, "machine": 240, "abandoned": 30}, max_attempts=4,
        windows=["mon-fri 10:00-13:00", "mon-fri 14:00-19:00"], country="FR", abandon_cap=0.025,
        abandon_window_hours=24, abandon_seconds=2.0, max_ratio=2.5, amd=True, machine_action="message",
        machine_message="We will call again.", abandon_message="Sorry, we will call you back.", state="paused")
    assert ("POST", "/v1/reload", None) in engine_api.requests
    [(user, target, before, after)] = audit_rows(site, "campaign.create")
    assert (user, target, before, after["abandon_cap"]) == ("admin", "summer", None, 0.025)
    # The edit form shows what was saved, the cap as a percentage.
    page = admin.get(f"{BASE}/summer/edit").get_data(as_text=True)
    assert 'value="2.5"' in page and 'name="retry_minutes.busy" value="10"' in page


@pytest.mark.parametrize("field,value,field_id,needle", [
    ("name", "bad name!", "f-name", "is not a name"),
    ("windows", "mon-fri 10-13", "f-windows", "line 1: 'mon-fri 10-13' is not a window"),
    ("abandon_cap", "50", "f-abandon_cap", "percentage between 0 and 20"),
    ("abandon_cap", "lots", "f-abandon_cap", "'lots' is not a number"),
    ("max_attempts", "many", "f-max_attempts", "is not a whole number"),
    ("max_attempts", "0", "f-max_attempts", "not in 1..100"),
    ("retry_minutes.busy", "0", "f-retry-busy", "must be in 1..43200"),
    ("retry_minutes.busy", "soon", "f-retry-busy", "not a whole number of minutes"),
    ("queue", "nope", "f-queue", "there is no queue 'nope'"),
    ("trunk", "nope", "f-trunk", "there is no trunk 'nope'"),
    ("country", "XX", "f-country", "not a country code"),
    ("caller_id", "call me", "f-caller_id", "is not a caller number"),
    ("machine_message", "", "f-machine_message", "must be set when machine_action is 'message'"),
    ("abandon_message", " ", "f-abandon_message", "must have a message for abandoned calls"),
    ("dispositions", "sale\nsale", "f-dispositions", "line 2: 'sale' is listed twice"),
])
def test_bad_values_are_refused_beside_their_field(site: Flask, admin: FlaskClient, engine_api: FakeEngineApi,
                                                   field: str, value: str, field_id: str, needle: str) -> None:
    resp = post(admin, f"{BASE}/new", {**FORM, field: value})
    assert resp.status_code == 400
    assert needle in field_error(text(resp), field_id)
    assert "Nothing was saved" in text(resp)
    assert with_store(site, dstore.campaigns) == []
    assert audit_rows(site, "campaign.create") == [] and engine_posts(engine_api) == []


def test_edit_keeps_name_and_state_and_refuses_a_taken_name(campaign: Flask, admin: FlaskClient) -> None:
    with_store(campaign, lambda s: dstore.set_campaign_state(s, "spring", "running"))
    resp = post(admin, f"{BASE}/spring/edit", {**FORM, "name": "renamed", "mode": "preview"})
    assert resp.status_code == 302
    c = with_store(campaign, lambda s: dstore.get_campaign(s, "spring"))
    assert (c.name, c.mode, c.state) == ("spring", "preview", "running")
    assert with_store(campaign, lambda s: dstore.get_campaign(s, "renamed")) is None
    [(_u, _t, before, after)] = audit_rows(campaign, "campaign.update")
    assert (before["mode"], after["mode"]) == ("progressive", "preview")
    resp = post(admin, f"{BASE}/new", {**FORM, "name": "spring"})
    assert resp.status_code == 400 and "spring already exists" in field_error(text(resp), "f-name")
    assert admin.get(f"{BASE}/nope/edit").status_code == 404


def test_delete_refuses_a_running_campaign_then_deletes_with_leads(campaign: Flask, admin: FlaskClient,
                                                                   engine_api: FakeEngineApi) -> None:
    with_store(campaign, lambda s: dstore.set_campaign_state(s, "spring", "running"))
    resp = post(admin, f"{BASE}/spring/delete")
    assert resp.status_code == 409 and "pause it before deleting it" in text(resp)
    assert with_store(campaign, lambda s: dstore.get_campaign(s, "spring")) is not None
    with_store(campaign, lambda s: dstore.set_campaign_state(s, "spring", "paused"))
    assert 'data-confirm="Delete campaign spring' in admin.get(f"{BASE}/").get_data(as_text=True)
    resp = post(admin, f"{BASE}/spring/delete")
    assert resp.status_code == 302
    assert with_store(campaign, lambda s: dstore.get_campaign(s, "spring")) is None
    [(_u, target, before, after)] = audit_rows(campaign, "campaign.delete")
    assert (target, before["name"], after) == ("spring", "spring", None)
    assert ("POST", "/v1/reload", None) in engine_api.requests
    assert post(admin, f"{BASE}/spring/delete").status_code == 404


# -- live figures, start / pause ---------------------------------------------------------------------
LIVE = {"name": "spring", "state": "running", "mode": "predictive", "queue": "outbound", "agents_free": 2,
        "agents_busy": 5, "in_flight": 4, "placed_today": 812, "answered_today": 301, "abandoned_today": 11,
        "answer_rate": 0.3707, "abandon_rate": 0.0365, "abandon_cap": 0.03, "dial_rate_per_min": 14.25,
        "last_decision": "paced: 4 in flight for 2 free agents"}


def test_live_figures_show_the_abandon_rate_against_its_cap(campaign: Flask, supervisor: FlaskClient,
                                                            engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/campaigns")] = [LIVE]
    stats = supervisor.get(f"{BASE}/stats").get_json()
    s = stats["campaigns"]["spring"]
    assert stats["engine"] == "up"
    assert (s["dial_rate"], s["answer_rate"], s["abandon_rate"], s["abandon_cap"], s["over_cap"]) == (
        "14.2", "37.1 %", "3.6 %", "3.0 %", True)
    assert (s["agents_busy"], s["agents_free"], s["state"]) == (5, 2, "running")
    page = supervisor.get(f"{BASE}/").get_data(as_text=True)
    assert 'class="camp-tile abandon over"' in page and "3.6 %" in page and "paced: 4 in flight" in page
    assert 'data-run="pause" >' in page or 'data-run="pause">' in page  # running: Pause shown, Start hidden
    engine_api.responses[("GET", "/v1/campaigns")] = [{**LIVE, "abandon_rate": 0.01}]
    assert supervisor.get(f"{BASE}/stats").get_json()["campaigns"]["spring"]["over_cap"] is False
    assert 'camp-tile abandon over' not in supervisor.get(f"{BASE}/spring/").get_data(as_text=True)


def test_engine_down_is_a_clear_state_not_an_error(campaign: Flask, admin: FlaskClient,
                                                   engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/campaigns")] = ApiUnavailable("engine not running")
    for url in (f"{BASE}/", f"{BASE}/spring/"):
        resp = admin.get(url)
        assert resp.status_code == 200 and "The engine is not running: no live figures." in text(resp)
    stats = admin.get(f"{BASE}/stats").get_json()
    assert (stats["engine"], stats["campaigns"]) == ("down", {})
    engine_api.responses[("GET", "/v1/campaigns")] = ApiError(500, "boom")
    assert "did not give campaign figures: boom" in admin.get(f"{BASE}/stats").get_json()["message"]


def test_start_and_pause_go_through_the_engine(campaign: Flask, supervisor: FlaskClient,
                                               engine_api: FakeEngineApi) -> None:
    engine_api.responses[("POST", "/v1/campaigns/spring/start")] = {"name": "spring", "state": "running"}
    engine_api.responses[("POST", "/v1/campaigns/spring/pause")] = {"name": "spring", "state": "paused"}
    resp = post(supervisor, f"{BASE}/spring/start")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"{BASE}/")
    resp = post(supervisor, f"{BASE}/spring/pause", {"back": "detail"})
    assert resp.headers["Location"].endswith(f"{BASE}/spring/")
    assert [p for p, _b in engine_posts(engine_api)] == ["/v1/campaigns/spring/start", "/v1/campaigns/spring/pause"]
    [(user, target, before, after)] = audit_rows(campaign, "campaign.start")
    assert (user, target, before, after) == ("super", "spring", {"state": "paused"}, {"name": "spring",
                                                                                       "state": "running"})
    assert len(audit_rows(campaign, "campaign.pause")) == 1
    # The engine refuses (no agent in the queue...): its words, a 4xx, nothing audited.
    engine_api.responses[("POST", "/v1/campaigns/spring/start")] = ApiError(409, "queue outbound has no agent")
    resp = post(supervisor, f"{BASE}/spring/start")
    assert resp.status_code == 409 and "not started: queue outbound has no agent" in text(resp)
    assert len(audit_rows(campaign, "campaign.start")) == 1
    assert post(supervisor, f"{BASE}/nope/start").status_code == 404


def test_start_needs_the_engine_but_pause_does_not(campaign: Flask, admin: FlaskClient,
                                                   engine_api: FakeEngineApi) -> None:
    for action in ("start", "pause"):
        engine_api.responses[("POST", f"/v1/campaigns/spring/{action}")] = ApiUnavailable("down")
    resp = post(admin, f"{BASE}/spring/start")
    assert resp.status_code == 503 and "not started: the engine is not running" in text(resp)
    assert with_store(campaign, lambda s: dstore.get_campaign(s, "spring")).state == "paused"
    with_store(campaign, lambda s: dstore.set_campaign_state(s, "spring", "running"))
    resp = post(admin, f"{BASE}/spring/pause")
    assert resp.status_code == 302
    # Paused in the store, so the engine does not resume it at its next start.
    assert with_store(campaign, lambda s: dstore.get_campaign(s, "spring")).state == "paused"
    [(_u, _t, before, after)] = audit_rows(campaign, "campaign.pause")
    assert (before, after) == ({"state": "running"}, {"state": "paused", "engine": "down"})


# -- list import -------------------------------------------------------------------------------------
def upload(client: FlaskClient, body: bytes, filename: str = "prospects.csv", campaign: str = "spring") -> Any:
    return post(client, f"{BASE}/{campaign}/import", {"file": (io.BytesIO(body), filename)},
                content_type="multipart/form-data")


def test_import_flow_with_bad_rows_and_its_report(campaign: Flask, admin: FlaskClient,
                                                  supervisor: FlaskClient) -> None:
    with_store(campaign, lambda s: dstore.add_dnc(s, ["+33698765432"], "admin"))
    assert admin.get(f"{BASE}/spring/import").status_code == 200
    resp = upload(admin, PROSPECTS.encode("cp1252"), "crm-export.csv")  # Excel's Windows-1252
    assert resp.status_code == 302
    map_url = resp.headers["Location"]
    page = text(admin.get(map_url))
    # Step 2: the header and the first rows; the number column and standard names are suggested.
    for cell in ("Téléphone", "Prénom", "Société", "06 12 34 56 78", "Chloé"):
        assert cell in page
    assert 'name="number_col" value="0" checked' in page
    assert 'name="as_1" value="first_name"' in page and 'name="as_3" value="company"' in page
    assert 'value="crm-export"' in page and "Import 7 rows" in page
    assert with_store(campaign, lambda s: dstore.lead_lists(s, "spring")) == []  # nothing imported yet
    resp = post(admin, map_url, {"list_name": "March CRM", "number_col": "0", "as_1": "first_name",
                                 "as_2": "last_name", "as_3": "company", "as_4": ""})
    assert resp.status_code == 302
    report_url = resp.headers["Location"]
    # Step 3: the report, stored with the list.
    [lst] = with_store(campaign, lambda s: dstore.lead_lists(s, "spring"))
    r = lst["report"]
    assert (lst["name"], lst["imported_by"], r["rows"], r["imported"], lst["leads"]) == ("March CRM", "admin", 7, 3, 3)
    assert r["counts"] == {"malformed-row": 1, "duplicate": 1, "bad-number": 1, "dnc": 1}
    assert report_url.endswith(f"{BASE}/spring/lists/{lst['id']}")
    leads = with_store(campaign, lambda s: dstore.due_leads(s, "spring", time.time(), 10))
    assert leads[0].fields == {"first_name": "Anne", "last_name": "Martin", "company": "Acme", "Ville": "Lyon"}
    assert {lead.number for lead in leads} == {"+33612345678", "+442079460958", "+33655443322"}
    page = text(supervisor.get(report_url))  # supervisors may read reports
    assert re.search(r'id="report-rows">7<', page) and re.search(r'id="report-imported">3<', page)
    assert re.search(r'data-reason="dnc">.*?class="count">1<', page, re.S)
    for line, reason, raw in ((3, "malformed-row", "06 12 34 56 79"), (4, "duplicate", "0612345678"),
                              (5, "bad-number", "07 00 00"), (6, "dnc", "06 98 76 54 32")):
        assert re.search(rf'data-line="{line}">.*?{reason}.*?<code>{re.escape(raw)}</code>', page, re.S), line
    # The problem table downloads as CSV (with a BOM so Excel reads UTF-8).
    resp = admin.get(f"{report_url}/problems.csv")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["line", "reason", "detail", "number"] and [r[:2] for r in rows[1:]] == [
        ["3", "malformed-row"], ["4", "duplicate"], ["5", "bad-number"], ["6", "dnc"]]
    # The campaign page lists it; the upload is gone; the import is audited.
    detail = text(admin.get(f"{BASE}/spring/"))
    assert "March CRM" in detail and f"/lists/{lst['id']}" in detail
    assert admin.get(map_url).status_code == 404
    [(user, target, _b, after)] = audit_rows(campaign, "campaign.import")
    assert (user, target, after["rows"], after["imported"], after["name"]) == ("admin", "spring", 7, 3, "March CRM")
    assert after["mapping"] == {"number": "Téléphone", "first_name": "Prénom", "last_name": "Nom",
                                "company": "Société"}
    # The same file again: every row is now already a lead (or still left out), nothing doubled.
    resp = post(admin, upload(admin, PROSPECTS.encode()).headers["Location"],
                {"list_name": "again", "number_col": "0"})
    again = with_store(campaign, lambda s: dstore.lead_lists(s, "spring"))[1]["report"]
    assert (again["imported"], again["counts"]["already-listed"]) == (0, 3)


@pytest.mark.parametrize("body,needle,status", [
    (b"", "Choose a CSV file", 400),
    (b"\x81\x8d\x8f\x90\x9d" * 10, "neither UTF-8 nor Windows-1252", 400),
    (b"Phone;Name\n", "has a header but no rows", 400),
    (b"\n0612345678\n", "the first line is empty", 400),
])
def test_an_unreadable_file_imports_nothing(campaign: Flask, admin: FlaskClient, body: bytes, needle: str,
                                            status: int) -> None:
    resp = upload(admin, body, "x.csv" if body else "")
    assert resp.status_code == status and needle in text(resp)
    assert "Nothing was imported" in text(resp) or not body
    assert with_store(campaign, lambda s: dstore.lead_lists(s, "spring")) == []
    assert list((campaign.config["DATA_DIR"] / "imports").glob("*.csv")) == [] if body else True


def test_a_file_over_20_mib_is_refused_with_413(campaign: Flask, admin: FlaskClient) -> None:
    body = b"Phone\n" + b"0612345678\n" * (20 * 1024 * 1024 // 11 + 1)
    assert len(body) > 20 * 1024 * 1024
    resp = upload(admin, body)
    assert resp.status_code == 413 and "larger than 20 MiB" in text(resp)
    assert with_store(campaign, lambda s: dstore.lead_lists(s, "spring")) == []


def test_mapping_errors_import_nothing(campaign: Flask, admin: FlaskClient) -> None:
    map_url = upload(admin, PROSPECTS.encode()).headers["Location"]
    resp = post(admin, map_url, {"list_name": "", "as_1": "Nom", "as_2": "", "as_3": "number", "as_4": "ok"})
    page = text(resp)
    assert resp.status_code == 400 and "Nothing was imported" in page
    assert "required" in page and "pick the column that holds the phone number" in page
    assert "column 2 is already named 'Nom'" in page and "'number' is the number column's name" in page
    resp = post(admin, map_url, {"list_name": "x", "number_col": "9"})
    assert resp.status_code == 400 and "pick the column" in text(resp)
    assert with_store(campaign, lambda s: dstore.lead_lists(s, "spring")) == []
    # A header with the same column twice is refused as a whole, at the upload.
    resp = upload(admin, b"Phone;Name;Name\n0612345678;A;B\n")
    assert resp.status_code == 400 and "two columns of the header have the same name" in text(resp)
    assert with_store(campaign, lambda s: dstore.lead_lists(s, "spring")) == []
    # Cancel forgets the upload.
    assert post(admin, f"{map_url}/cancel").status_code == 302
    assert admin.get(map_url).status_code == 404


def test_uploads_belong_to_their_campaign(campaign: Flask, admin: FlaskClient) -> None:
    with_store(campaign, lambda s: dstore.put_campaign(s, CampaignConfig(name="other", queue="outbound",
                                                                         trunk="carrier")))
    map_url = upload(admin, PROSPECTS.encode()).headers["Location"]
    token = map_url.rsplit("/", 1)[1]
    assert admin.get(f"{BASE}/other/import/{token}").status_code == 404
    assert admin.get(f"{BASE}/spring/import/../../etc").status_code == 404
    assert admin.get(f"{BASE}/spring/import/zzzz").status_code == 404
    assert admin.get(f"{BASE}/spring/lists/999").status_code == 404
    assert upload(admin, PROSPECTS.encode(), campaign="nope").status_code == 404


# -- do-not-call -------------------------------------------------------------------------------------
def test_dnc_add_remove_and_bad_numbers(site: Flask, admin: FlaskClient) -> None:
    resp = post(admin, "/admin/dnc/add", {"number": "06 12 34 56 78", "note": "asked by letter"})
    assert resp.status_code == 302
    assert with_store(site, lambda s: dstore.dnc_entries(s))[0]["number"] == "+33612345678"
    post(admin, "/admin/dnc/add", {"number": "+44 20 7946 0958"})
    page = text(admin.get("/admin/dnc/")).split('id="dnc-table"')[1]
    assert page.index("+442079460958") < page.index("+33612345678")  # newest first
    assert "asked by letter" in page
    resp = post(admin, "/admin/dnc/add", {"number": "06 12 ab"})
    assert resp.status_code == 400 and "is not a phone number" in field_error(text(resp), "f-number")
    resp = post(admin, "/admin/dnc/add", {"number": "0612345678"})
    assert resp.status_code == 409 and "+33612345678 is already on the list" in text(resp)
    resp = post(admin, "/admin/dnc/add", {"number": "0612345677", "note": "x" * 201})
    assert resp.status_code == 400 and "at most 200" in text(resp)
    assert len(with_store(site, lambda s: dstore.dnc_entries(s))) == 2
    [(user, target, _b, after)] = audit_rows(site, "dnc.add")[:1]
    assert (user, target, after["typed"]) == ("admin", "+33612345678", "06 12 34 56 78")
    assert post(admin, "/admin/dnc/remove", {"number": "+33612345678"}).status_code == 302
    assert [e["number"] for e in with_store(site, lambda s: dstore.dnc_entries(s))] == ["+442079460958"]
    [(_u, target, before, after)] = audit_rows(site, "dnc.remove")
    assert (target, before["note"], after) == ("+33612345678", "asked by letter", None)
    assert post(admin, "/admin/dnc/remove", {"number": "+33612345678"}).status_code == 404


def test_dnc_import_with_a_report(site: Flask, admin: FlaskClient) -> None:
    with_store(site, lambda s: dstore.add_dnc(s, ["+33655443322"], "admin"))
    body = "Numéro\n06 12 34 56 78\n0612345678\n06 55 44 33 22\nnot a number\n\n+44 20 7946 0958\n".encode()
    resp = post(admin, "/admin/dnc/import", {"file": (io.BytesIO(body), "optout.csv")},
                content_type="multipart/form-data")
    page = text(resp)
    assert resp.status_code == 200
    for kpi, n in (("dnc-rows", 5), ("dnc-added", 2), ("dnc-already", 1), ("dnc-problems", 2)):
        assert re.search(rf'id="{kpi}">{n}<', page), kpi
    assert re.search(r'data-line="3">.*?duplicate', page, re.S) and re.search(r'data-line="5">.*?bad-number', page,
                                                                             re.S)
    assert with_store(site, dstore.dnc_numbers) == {"+33612345678", "+33655443322", "+442079460958"}
    [(_u, target, _b, after)] = audit_rows(site, "dnc.import")
    assert (target, after["added"], after["problems"]) == ("optout.csv", 2, 2)
    resp = post(admin, "/admin/dnc/import", {"file": (io.BytesIO(b""), "")}, content_type="multipart/form-data")
    assert resp.status_code == 400 and "Choose a file" in text(resp)


# -- agent desk ----------------------------------------------------------------------------------------
LEAD = {"lead": {"id": 41, "number": "+33612345678", "campaign": "spring", "attempts": 2,
                 "fields": {"first_name": "Anne", "last_name": "Martin", "company": "Acme", "Ville": "Lyon"}},
        "script": "Bonjour, this is Plateau about your <contract>.", "dispositions": ["sale", "not-interested",
                                                                                    "callback"]}


@pytest.fixture
def on_lead(engine_api: FakeEngineApi) -> FakeEngineApi:
    engine_api.responses[("GET", "/v1/agents/2001/lead")] = LEAD
    engine_api.responses[("POST", "/v1/leads/41/disposition")] = {"id": 41, "status": "done"}
    engine_api.responses[("POST", "/v1/dnc")] = {"number": "+33612345678", "added": True}
    return engine_api


def test_the_desk_shows_the_lead_card_and_script(app: Flask, agent: FlaskClient, on_lead: FakeEngineApi) -> None:
    page = agent.get("/agent/").get_data(as_text=True)
    assert 'id="lead-number">+33612345678<' in page and "Anne Martin" in page and "Acme" in page and "Lyon" in page
    assert "about your &lt;contract&gt;" in page  # escaped, never markup
    for code in LEAD["dispositions"]:
        assert f'name="code" value="{code}"' in page
    assert "Europe/Paris time" in page and "Add to do-not-call" in page
    assert agent.get("/agent/lead", headers=JSON).get_json()["key"] == "lead:41"
    assert 'data-lead="41"' in agent.get("/agent/lead").get_data(as_text=True)
    assert ("GET", "/v1/agents/2001/lead", None) in on_lead.requests  # my own agent id, nobody else's


def test_disposition_with_a_callback_posts_to_the_engine(app: Flask, agent: FlaskClient,
                                                         on_lead: FakeEngineApi) -> None:
    day = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    resp = post(agent, "/agent/lead/41/disposition", {"code": "callback", "callback_date": day,
                                                       "callback_time": "14:30"}, headers=JSON)
    assert resp.status_code == 200 and resp.get_json()["ok"], resp.get_json()
    expected = dt.datetime.fromisoformat(f"{day}T14:30").replace(tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert engine_posts(on_lead) == [("/v1/leads/41/disposition", {"code": "callback", "agent": "2001",
                                                                   "callback_at": expected})]
    assert f"call back {day} 14:30" in resp.get_json()["message"]
    resp = post(agent, "/agent/lead/41/disposition", {"code": "sale"}, headers=JSON)
    assert engine_posts(on_lead)[-1] == ("/v1/leads/41/disposition", {"code": "sale", "agent": "2001"})
    [(user, target, _b, after), _] = audit_rows(app, "lead.disposition")
    assert (user, target, after["code"], after["callback_at"]) == ("agent1", "41", "callback", expected)


@pytest.mark.parametrize("form,field,needle", [
    ({"code": "bribe"}, "code", "pick one of sale, not-interested, callback"),
    ({}, "code", "pick a disposition"),
    ({"code": "callback", "callback_date": "2020-01-01", "callback_time": "10:00"}, "callback", "not in the future"),
    ({"code": "callback", "callback_date": "2030-01-01"}, "callback", "both the date and the time"),
    ({"code": "callback", "callback_date": "soon", "callback_time": "10:00"}, "callback", "a date like"),
])
def test_bad_dispositions_send_nothing(app: Flask, agent: FlaskClient, on_lead: FakeEngineApi, form: dict[str, str],
                                       field: str, needle: str) -> None:
    resp = post(agent, "/agent/lead/41/disposition", form, headers=JSON)
    body = resp.get_json()
    assert resp.status_code == 400 and body["field"] == field and needle in body["error"]
    assert engine_posts(on_lead) == [] and audit_rows(app, "lead.disposition") == []
    resp = post(agent, "/agent/lead/41/disposition", form)  # a plain form post: the desk with the error
    assert resp.status_code == 400 and needle in text(resp)


def test_a_bad_code_and_a_bad_callback_are_refused_at_once(agent: FlaskClient, on_lead: FakeEngineApi) -> None:
    form = {"code": "bribe", "callback_date": "soon", "callback_time": "10:00"}
    resp = post(agent, "/agent/lead/41/disposition", form, headers=JSON)
    errors = resp.get_json()["errors"]
    assert resp.status_code == 400 and "pick one of" in errors["code"] and "a date like" in errors["callback"]
    page = text(post(agent, "/agent/lead/41/disposition", form))
    assert re.search(r'data-for="code" >code: pick one of', page)
    assert re.search(r'data-for="callback" >callback: a date', page)
    assert engine_posts(on_lead) == []


def test_agents_act_only_on_the_lead_on_their_own_line(app: Flask, agent: FlaskClient, admin: FlaskClient,
                                                       on_lead: FakeEngineApi) -> None:
    for url in ("/agent/lead/40/disposition", "/agent/lead/40/dnc"):
        resp = post(agent, url, {"code": "sale"}, headers=JSON)
        assert resp.status_code == 409 and "no longer on your line" in resp.get_json()["error"]
    assert post(admin, "/agent/lead/41/disposition", {"code": "sale"}).status_code == 403
    assert admin.get("/agent/lead").status_code == 403
    assert engine_posts(on_lead) == []


def test_add_to_dnc_from_the_desk(app: Flask, agent: FlaskClient, on_lead: FakeEngineApi) -> None:
    resp = post(agent, "/agent/lead/41/dnc", {}, headers=JSON)
    assert resp.status_code == 200 and "do-not-call" in resp.get_json()["message"]
    assert engine_posts(on_lead) == [("/v1/dnc", {"number": "+33612345678", "campaign": "spring",
                                                  "note": "asked agent 2001 not to be called"})]
    [(user, target, _b, after)] = audit_rows(app, "dnc.add")
    assert (user, target, after["lead"]) == ("agent1", "+33612345678", 41)


def test_preview_mode_dial_and_skip(app: Flask, agent: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/agents/2001/preview")] = {**LEAD, "lead": {**LEAD["lead"], "id": 7}}
    engine_api.responses[("POST", "/v1/agents/2001/preview")] = {"ok": True}
    page = agent.get("/agent/").get_data(as_text=True)
    assert "Next lead" in page and "Dial +33612345678" in page and 'id="preview-skip"' in page
    assert "Add to do-not-call" not in page
    for action in ("dial", "skip"):
        resp = post(agent, "/agent/preview/7", {"action": action}, headers=JSON)
        assert resp.status_code == 200, resp.get_json()
    assert engine_posts(engine_api) == [("/v1/agents/2001/preview", {"action": "dial"}),
                                        ("/v1/agents/2001/preview", {"action": "skip"})]
    assert [a["action"] for _u, _t, _b, a in audit_rows(app, "lead.preview")] == ["dial", "skip"]
    resp = post(agent, "/agent/preview/7", {"action": "call"}, headers=JSON)
    assert resp.status_code == 400 and resp.get_json()["field"] == "preview"
    resp = post(agent, "/agent/preview/8", {"action": "dial"}, headers=JSON)
    assert resp.status_code == 409 and "no longer your preview" in resp.get_json()["error"]
    assert len(engine_posts(engine_api)) == 2


def test_desk_without_a_lead_or_without_the_engine(app: Flask, agent: FlaskClient, engine_api: FakeEngineApi) -> None:
    page = agent.get("/agent/").get_data(as_text=True)  # the fake engine answers 404: no lead, no preview
    assert 'id="lead-panel"' in page and 'data-key="none"' in page and "lead-card" not in page
    engine_api.responses[("GET", "/v1/agents/2001/lead")] = ApiUnavailable("down")
    engine_api.responses[("GET", "/v1/agents")] = ApiUnavailable("down")
    assert agent.get("/agent/").status_code == 200
    assert agent.get("/agent/lead", headers=JSON).get_json()["engine"] == "down"
    resp = post(agent, "/agent/lead/41/disposition", {"code": "sale"}, headers=JSON)
    assert resp.status_code == 503 and "engine is not running" in resp.get_json()["error"]
    engine_api.responses[("GET", "/v1/agents/2001/lead")] = ApiError(500, "dialer crashed")
    assert "dialer crashed" in agent.get("/agent/lead").get_data(as_text=True)


def test_every_bad_field_is_shown_at_once(site: Flask, admin: FlaskClient) -> None:
    """Two bad fields of a campaign: the model's errors for both, each beside its own field."""
    resp = post(admin, f"{BASE}/new", {**FORM, "max_attempts": "0", "retry_minutes.busy": "0", "caller_id": "x"})
    assert resp.status_code == 400
    assert text(resp).count('class="field-error"') == 3
    assert "0 is not in 1..100" in field_error(text(resp), "f-max_attempts")
    assert "must be in 1..43200" in field_error(text(resp), "f-retry-busy")
    assert "'x' is not a caller number" in field_error(text(resp), "f-caller_id")
    assert with_store(site, dstore.campaigns) == []


def test_an_accented_campaign_name_is_its_display_name(site: Flask, admin: FlaskClient) -> None:
    """Issue 15: "Relance été" was refused; the identifier stays ASCII, the display name is free."""
    resp = post(admin, f"{BASE}/new", {**FORM, "name": "Relance été"})
    assert resp.status_code == 400
    assert "with accents as the display name" in html.unescape(resp.get_data(as_text=True))
    resp = post(admin, f"{BASE}/new", {**FORM, "name": "relance-ete", "label": "Relance été"})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert with_store(site, lambda s: dstore.get_campaign(s, "relance-ete")).display_name == "Relance été"
    assert "<h1>Relance été</h1>" in admin.get(f"{BASE}/relance-ete/").get_data(as_text=True)
