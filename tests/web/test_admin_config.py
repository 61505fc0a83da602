"""Admin configuration pages: every section's list/create/edit/delete through the Flask client,
with bad values refused beside their field (nothing saved), audit rows, engine reload, roles."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.api.facade import ApiUnavailable
from appliance.store import acd
from appliance.store.db import Store
from appliance.store.models import AgentConfig, Extension, InboundRoute, OutboundRoute, QueueConfig, Trunk
from tests.web.conftest import FakeEngineApi, store_of


def post(client: FlaskClient, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
    return client.post(url, data={**(data or {}), "csrf_token": client.csrf}, **kw)  # type: ignore[attr-defined]


def audit_rows(app: Flask, action: str | None = None) -> list[tuple[str, str, Any, Any]]:
    store = store_of(app)
    try:
        rows = store.query("SELECT action, target, before_json, after_json FROM audit_log ORDER BY id")
    finally:
        store.close()
    out = [(a, t, json.loads(b) if b else None, json.loads(f) if f else None) for a, t, b, f in rows]
    return [r for r in out if action is None or r[0] == action]


def with_store(app: Flask, fn: Callable[[Store], Any]) -> Any:
    store = store_of(app)
    try:
        return fn(store)
    finally:
        store.close()


def field_error(page: str, name: str) -> str:
    """The error shown in the field block of `name` (by its input id)."""
    m = re.search(rf'id="f-{name}".*?<div class="field-error" role="alert">([^<]*)</div>', page, re.S)
    assert m, f"no error beside field {name}"
    return html.unescape(m.group(1))


def reloads(engine_api: FakeEngineApi) -> int:
    return sum(1 for m, p, _b in engine_api.requests if (m, p) == ("POST", "/v1/reload"))


def seed(store: Store) -> None:
    store.put_trunk(Trunk(name="carrier", host="sip.example.net"))
    store.put_outbound_route(OutboundRoute(name="national", pattern="_0XXXXXXXXX", trunk="carrier"))
    store.put_extension(Extension(number="1001", name="Reception", secret="s3cret-pass", voicemail=True))
    acd.put_agent(store, AgentConfig(agent_id="2001", name="Ann", pin="1234", skills=["french:4"]))
    acd.put_agent(store, AgentConfig(agent_id="2002", name="Bob", pin="5678"))


@dataclass
class Case:
    section: str
    key: str
    create: dict[str, Any]
    bad_field: str
    bad_value: str
    bad_message: str
    edit: dict[str, Any]
    read: Callable[[Store, str], Any]
    check_edit: Callable[[Any], bool]


CASES = [
    Case("extensions", "1002",
         {"number": "1002", "name": "Sales desk", "secret": "long-enough-1", "enabled": "1", "recording": "on-demand",
          "voicemail": "1", "noanswer_seconds": "25", "dial_permissions": "national"},
         "number", "10a2", "is not 2-8 digits",
         {"name": "Sales desk 2", "secret": "", "enabled": "1", "recording": "always", "noanswer_seconds": "30"},
         lambda s, k: s.get_extension(k),
         lambda e: e.name == "Sales desk 2" and e.recording == "always" and not e.voicemail
         and e.secret == "long-enough-1" and e.dial_permissions == []),
    Case("trunks", "backup",
         {"name": "backup", "host": "sip2.example.net", "port": "5080", "transport": "tcp", "username": "u1",
          "secret": "trunkpass", "register": "1", "register_expires": "600", "enabled": "1"},
         "port", "70000", "is not in 1..65535",
         {"host": "sip3.example.net", "port": "5060", "transport": "udp", "username": "u1", "secret": "",
          "register": "1", "register_expires": "300", "enabled": "1"},
         lambda s, k: s.get_trunk(k),
         lambda t: t.host == "sip3.example.net" and t.secret == "trunkpass" and t.register_expires == 300),
    Case("outbound", "intl",
         {"name": "intl", "pattern": "_00.", "trunk": "carrier", "strip": "0", "prepend": "", "priority": "50"},
         "pattern", "0[", "",
         {"pattern": "_00X.", "trunk": "carrier", "strip": "2", "prepend": "+33", "priority": "60"},
         lambda s, k: s.get_outbound_route(k),
         lambda r: r.pattern == "_00X." and r.strip == 2 and r.prepend == "+33"),
    Case("inbound", "+33123456789",
         {"did": "+33123456789", "destination": "1001"},
         "destination", "nowhere", "is not an extension number",
         {"destination": "voicemail:1001"},
         lambda s, k: s.get_inbound_route(k),
         lambda r: r.destination == "voicemail:1001"),
    Case("agents", "2003",
         {"agent_id": "2003", "name": "Cleo", "pin": "4321", "skills": "french:4\r\nbilling:2",
          "ring_timeout": "20", "max_no_answer": "3", "enabled": "1"},
         "skills", "french:4\nbilling:9", "line 2",
         {"name": "Cleo B", "pin": "", "skills": "english:5", "ring_timeout": "25", "max_no_answer": "2"},
         acd.get_agent,
         lambda a: a.name == "Cleo B" and a.skills == ["english:5"] and a.pin == "4321" and not a.enabled),
    Case("queues", "support",
         {"name": "support", "number": "6002", "strategy": "linear", "members": "2002\n2001",
          "skills": "french:2", "escalations": "after 30s: french:1\nafter 90s: any", "ring_step_seconds": "10",
          "wrapup_seconds": "5", "max_wait_seconds": "300", "max_callers": "0", "overflow": "voicemail:1001",
          "leave_empty": "1", "announce_seconds": "30", "service_level_seconds": "20", "recording": "stereo",
          "callback_key": "1"},
         "escalations", "after soon: french:1", "line 1",
         {"number": "6002", "strategy": "ring-progressively", "members": "2001\n2002", "ring_step_seconds": "15",
          "wrapup_seconds": "5", "max_wait_seconds": "0", "max_callers": "5", "overflow": "",
          "announce_seconds": "0", "service_level_seconds": "30", "recording": "none", "survey": "1"},
         acd.get_queue,
         lambda q: q.members == ["2001", "2002"] and q.strategy == "ring-progressively" and q.overflow is None
         and q.survey and q.skills == [] and q.max_callers == 5),
]


@pytest.fixture
def seeded(app: Flask) -> Flask:
    with_store(app, seed)
    return app


@pytest.mark.parametrize("case", CASES, ids=[c.section for c in CASES])
def test_section_create_bad_edit_delete(seeded: Flask, admin: FlaskClient, engine_api: FakeEngineApi,
                                        case: Case) -> None:
    base = f"/admin/{case.section}/"
    assert admin.get(base).status_code == 200
    assert admin.get(base + "new").status_code == 200

    # A bad value: refused beside its field, the user's input kept, nothing saved or audited.
    bad = {**case.create, case.bad_field: case.bad_value}
    resp = post(admin, base + "new", bad)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert case.bad_message in field_error(page, case.bad_field)
    assert "Nothing was saved" in page
    shown = case.create.get("name") or case.create.get("did") or ""
    assert str(shown) in page  # the rest of what was typed is still there
    assert with_store(seeded, lambda s: case.read(s, case.key)) is None
    assert audit_rows(seeded, f"{_singular(case)}.create") == [] and reloads(engine_api) == 0

    resp = post(admin, base + "new", case.create)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert with_store(seeded, lambda s: case.read(s, case.key)) is not None
    created = audit_rows(seeded, f"{_singular(case)}.create")
    assert len(created) == 1 and created[0][1] == case.key and created[0][2] is None and created[0][3]
    assert reloads(engine_api) == 1
    assert case.key in admin.get(base).get_data(as_text=True)

    # Creating it again is refused, not an overwrite.
    resp = post(admin, base + "new", case.create)
    assert resp.status_code == 400 and "already exists" in resp.get_data(as_text=True)

    edit_url = f"{base}{case.key}/edit"
    assert admin.get(edit_url).status_code == 200
    resp = post(admin, edit_url, case.edit)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert case.check_edit(with_store(seeded, lambda s: case.read(s, case.key)))
    updated = audit_rows(seeded, f"{_singular(case)}.update")
    assert len(updated) == 1 and updated[0][2] is not None and updated[0][3] is not None
    assert updated[0][2] != updated[0][3]

    resp = post(admin, f"{base}{case.key}/delete")
    assert resp.status_code == 302
    assert with_store(seeded, lambda s: case.read(s, case.key)) is None
    deleted = audit_rows(seeded, f"{_singular(case)}.delete")
    assert len(deleted) == 1 and deleted[0][2] is not None and deleted[0][3] is None
    assert reloads(engine_api) == 3
    assert admin.get(f"{base}nope-{case.key}/edit").status_code == 404


def _singular(case: Case) -> str:
    return {"extensions": "extension", "trunks": "trunk", "outbound": "outbound_route", "inbound": "inbound_route",
            "agents": "agent", "queues": "queue"}[case.section]


def test_secrets_never_reach_the_page_or_the_audit_log(seeded: Flask, admin: FlaskClient) -> None:
    page = admin.get("/admin/extensions/1001/edit").get_data(as_text=True)
    assert "s3cret-pass" not in page
    resp = post(admin, "/admin/extensions/1001/edit",
                {"name": "Reception", "secret": "a-new-secret-9", "enabled": "1", "recording": "none",
                 "noanswer_seconds": "20"})
    assert resp.status_code == 302
    (_a, _t, before, after), = audit_rows(seeded, "extension.update")
    assert before["secret"] == "****" and after["secret"] == "**** (changed)"
    assert "a-new-secret-9" not in json.dumps(audit_rows(seeded))
    assert with_store(seeded, lambda s: s.get_extension("1001")).secret == "a-new-secret-9"


def test_a_store_refusal_on_a_reference_names_the_field(seeded: Flask, admin: FlaskClient) -> None:
    resp = post(admin, "/admin/inbound/new", {"did": "0800", "destination": "queue:ghost"})
    assert resp.status_code == 400
    assert "queue 'ghost' does not exist" in field_error(resp.get_data(as_text=True), "destination")
    resp = post(admin, "/admin/queues/new", {"name": "q1", "strategy": "linear", "members": "2001\n2999",
                                            "ring_step_seconds": "10", "wrapup_seconds": "0",
                                            "max_wait_seconds": "0", "max_callers": "0", "announce_seconds": "0",
                                            "service_level_seconds": "20", "recording": "none"})
    assert resp.status_code == 400
    assert "agent '2999' does not exist" in field_error(resp.get_data(as_text=True), "members")
    assert with_store(seeded, lambda s: acd.get_queue(s, "q1")) is None


def test_a_non_number_is_refused_before_the_store(seeded: Flask, admin: FlaskClient) -> None:
    resp = post(admin, "/admin/trunks/new", {"name": "t2", "host": "h.example", "port": "fifty",
                                            "transport": "udp", "register_expires": "600"})
    assert resp.status_code == 400
    assert "is not a whole number" in field_error(resp.get_data(as_text=True), "port")
    assert with_store(seeded, lambda s: s.get_trunk("t2")) is None


def test_deleting_what_is_in_use_shows_the_store_refusal(seeded: Flask, admin: FlaskClient) -> None:
    def more(store: Store) -> None:
        store.put_inbound_route(InboundRoute(did="0800", destination="1001"))
        acd.put_queue(store, QueueConfig(name="sales"))
        acd.put_queue(store, QueueConfig(name="front", overflow="queue:sales"))
    with_store(seeded, more)
    resp = post(admin, "/admin/extensions/1001/delete")
    assert resp.status_code == 409
    assert "inbound route(s) 0800 point at it" in resp.get_data(as_text=True)
    resp = post(admin, "/admin/queues/sales/delete")
    assert resp.status_code == 409 and "queue front send calls to it" in resp.get_data(as_text=True)
    resp = post(admin, "/admin/trunks/carrier/delete")
    assert resp.status_code == 409 and "outbound route(s) national use it" in resp.get_data(as_text=True)
    assert with_store(seeded, lambda s: (s.get_extension("1001"), acd.get_queue(s, "sales"), s.get_trunk("carrier")))
    assert audit_rows(seeded, "extension.delete") == audit_rows(seeded, "queue.delete") == []


def test_engine_down_saves_anyway_and_says_so(seeded: Flask, admin: FlaskClient, engine_api: FakeEngineApi) -> None:
    engine_api.responses[("POST", "/v1/reload")] = ApiUnavailable("connection refused")
    engine_api.responses[("GET", "/v1/status")] = ApiUnavailable("connection refused")
    resp = post(admin, "/admin/inbound/new", {"did": "0800", "destination": "1001"}, follow_redirects=True)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "The engine is not running" in page
    assert with_store(seeded, lambda s: s.get_inbound_route("0800")) is not None
    page = admin.get("/admin/").get_data(as_text=True)
    assert "Engine not running" in page


def test_overview_counts_and_engine_state(seeded: Flask, admin: FlaskClient) -> None:
    page = admin.get("/admin/").get_data(as_text=True)
    assert "Engine running" in page and "Extensions" in page and 'href="/admin/queues/"' in page


def test_queue_form_has_the_widgets(seeded: Flask, admin: FlaskClient) -> None:
    page = admin.get("/admin/queues/new").get_data(as_text=True)
    assert '<option value="ring-progressively"' in page and 'data-ordered="1"' in page
    assert '"2001", "Ann"' in page.replace("&#34;", '"') or "2001" in page
    assert '<option value="voicemail:1001">' in page  # overflow suggestions


ADMIN_PAGES = ["/admin/", "/admin/extensions/", "/admin/extensions/new", "/admin/trunks/", "/admin/outbound/",
               "/admin/inbound/", "/admin/agents/", "/admin/queues/", "/admin/queues/new", "/admin/flows/",
               "/admin/flows/demo", "/admin/hours/", "/admin/prompts/", "/admin/settings/"]


@pytest.mark.parametrize("who", ["supervisor", "agent"])
def test_other_roles_get_403(request: pytest.FixtureRequest, who: str) -> None:
    client: FlaskClient = request.getfixturevalue(who)
    for url in ADMIN_PAGES:
        assert client.get(url).status_code == 403, url
    for url in ("/admin/extensions/new", "/admin/extensions/1001/delete", "/admin/flows/demo",
                "/admin/prompts/upload", "/admin/settings/"):
        assert post(client, url, {"number": "1009"}).status_code == 403, url


def test_extensions_list_shows_the_registered_devices(seeded: Flask, admin: FlaskClient,
                                                      engine_api: FakeEngineApi) -> None:
    engine_api.responses[("GET", "/v1/registrations")] = [
        {"aor": "1001", "contact": "sip:1001@192.0.2.7:5062", "source": "192.0.2.7:5062", "transport": "udp",
         "expires_in": 300, "user_agent": "Yealink T46U"}]
    page = admin.get("/admin/extensions/").get_data(as_text=True)
    assert "Yealink T46U (192.0.2.7:5062, udp)" in page
    engine_api.responses[("GET", "/v1/registrations")] = ApiUnavailable("down")
    assert "engine not running" in admin.get("/admin/extensions/").get_data(as_text=True)


def test_callback_routes_setting_names_existing_routes(seeded: Flask, admin: FlaskClient) -> None:
    base = {"recording.retention_days": "90", "acd.supervisors": ""}
    resp = post(admin, "/admin/settings/", {**base, "acd.callback_routes": "national, nowhere"})
    assert resp.status_code == 400 and "no outbound route nowhere" in resp.get_data(as_text=True)
    s = store_of(seeded)
    try:
        assert s.get_setting("acd.callback_routes") is None
    finally:
        s.close()
    assert post(admin, "/admin/settings/", {**base, "acd.callback_routes": "national"}).status_code == 302
    s = store_of(seeded)
    try:
        assert s.get_setting("acd.callback_routes") == "national"
    finally:
        s.close()


def test_the_dialer_ring_time_is_checked_beside_its_field(seeded: Flask, admin: FlaskClient) -> None:
    base = {"recording.retention_days": "90", "acd.supervisors": "", "acd.callback_routes": ""}
    resp = post(admin, "/admin/settings/", {**base, "dialer.ring_seconds": "abc", "dialer.number_limit": "51"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    for field, error in (("dialer.ring_seconds", "from 1 to 120"), ("dialer.number_limit", "from 0 to 50")):
        m = re.search(rf'name="{re.escape(field)}"[^>]*>\s*<small[^<]*</small>\s*'
                      r'<div class="field-error" role="alert">([^<]*)</div>', page)
        assert m and error in m.group(1), (field, page)
    assert post(admin, "/admin/settings/", {**base, "dialer.ring_seconds": "8"}).status_code == 302
    s = store_of(seeded)
    try:
        assert s.get_setting("dialer.ring_seconds") == "8"
    finally:
        s.close()


def test_site_settings_for_the_dialer_are_checked_and_unset_when_empty(seeded: Flask, admin: FlaskClient) -> None:
    base = {"recording.retention_days": "90", "acd.supervisors": "", "acd.callback_routes": ""}
    bad = {**base, "site.country": "XX", "site.timezone": "Mars/Olympus", "dialer.number_limit": "-1",
           "dialer.number_limit_hours": "0"}
    resp = post(admin, "/admin/settings/", bad)
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert "not a country code" in page and "not a time zone" in page and "from 0 to 50" in page
    assert "from 1 to 720" in page
    s = store_of(seeded)
    try:
        assert s.get_setting("site.country") is None and s.get_setting("site.timezone") is None
    finally:
        s.close()
    good = {**base, "site.country": "gb", "site.timezone": "Europe/London", "dialer.number_limit": "2",
            "dialer.number_limit_hours": "48"}
    assert post(admin, "/admin/settings/", good).status_code == 302
    s = store_of(seeded)
    try:
        assert [s.get_setting(k) for k in ("site.country", "site.timezone", "dialer.number_limit",
                                           "dialer.number_limit_hours")] == ["GB", "Europe/London", "2", "48"]
    finally:
        s.close()
    assert post(admin, "/admin/settings/", {**base, "site.country": ""}).status_code == 302
    s = store_of(seeded)
    try:
        assert s.get_setting("site.country") is None and s.get_setting("site.timezone") is None
    finally:
        s.close()


def test_every_bad_field_is_shown_at_once(seeded: Flask, admin: FlaskClient) -> None:
    """The record's model reports every field error in one pass: both are beside their fields."""
    resp = post(admin, "/admin/extensions/new", {"number": "10a2", "name": "Desk", "secret": "long-enough-1",
                                                "recording": "none", "noanswer_seconds": "0"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert page.count('class="field-error"') == 2
    assert "'10a2' is not 2-8 digits" in field_error(page, "number")
    assert "0 is not in 1..600" in field_error(page, "noanswer_seconds")
    assert with_store(seeded, lambda s: s.get_extension("10a2")) is None
