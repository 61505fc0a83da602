"""Lead search and editing (web/leads.py): found by number, name or status on the server, edited
with every error shown at once, the number normalised and kept unique in its campaign."""
from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.dialer.campaign import CampaignConfig
from appliance.dialer.prospects import ImportReport, Lead
from appliance.store import acd
from appliance.store import dialer as dstore
from appliance.store.models import QueueConfig, Trunk
from tests.web.conftest import store_of

NAMES = ["Zoé Dupont", "Anne Martin", "Élodie Bernard"]


@pytest.fixture
def leads(app: Flask) -> Flask:
    s = store_of(app)
    try:
        acd.put_queue(s, QueueConfig(name="outbound"))
        s.put_trunk(Trunk(name="carrier", host="sip.example.net"))
        dstore.put_campaign(s, CampaignConfig(name="spring", queue="outbound", trunk="carrier", country="FR"))
        rows = [Lead(i + 2, f"+3361234{i:04d}", "Europe/Paris", {"name": NAMES[i % 3], "ref": f"R{i}"})
                for i in range(75)]
        dstore.add_list(s, "spring", "list.csv", rows, ImportReport(rows=75, imported=75))
    finally:
        s.close()
    return app


def lead_ids(page: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-lead="(\d+)"', page)]


def post(client: FlaskClient, url: str, data: dict[str, Any]) -> Any:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(url).get_data(as_text=True))
    assert token
    return client.post(url, data={**data, "csrf_token": token.group(1)})


def test_leads_are_found_by_number_name_and_status_and_paged(leads: Flask, admin: FlaskClient) -> None:
    page = admin.get("/leads/spring/").get_data(as_text=True)
    assert lead_ids(page) == list(range(1, 51)) and "1–50 of 75" in page
    page = admin.get("/leads/spring/?q=zoé").get_data(as_text=True)  # the name, any case, accents kept
    assert len(lead_ids(page)) == 25 and "Zoé Dupont" in page and "Anne" not in page
    page = admin.get("/leads/spring/?q=612340007").get_data(as_text=True)
    assert lead_ids(page) == [8]
    page = admin.get("/leads/spring/?sort=number&dir=desc&per=25&page=3").get_data(as_text=True)
    assert lead_ids(page) == list(range(25, 0, -1))
    assert "0 of 0" not in admin.get("/leads/spring/?status=new").get_data(as_text=True)
    assert "No lead matches" in admin.get("/leads/spring/?status=done").get_data(as_text=True)
    for bad in ("status=sold", "sort=fields", "q=" + "x" * 65, "page=0"):
        assert admin.get(f"/leads/spring/?{bad}").status_code == 400, bad
    assert admin.get("/leads/nosuch/").status_code == 404


def test_a_lead_is_edited_with_every_error_at_once(leads: Flask, admin: FlaskClient) -> None:
    url = "/leads/spring/3"
    resp = post(admin, url, {"number": "12", "status": "dialing", "timezone": "Mars/Olympus",
                             "field-name": "x" * 201, "field-ref": "R2"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    for field in ("number", "status", "timezone", "fields.name"):
        assert f'id="error-{field}"' in page, field
    assert 'value="Mars/Olympus"' in page  # what was typed is kept
    resp = post(admin, url, {"number": "+33612340001", "status": "new", "timezone": "Europe/Paris",
                             "field-name": "Zoé", "field-ref": "R2"})
    assert resp.status_code == 400 and "another lead of this campaign" in resp.get_data(as_text=True)
    resp = post(admin, url, {"number": "07 81 22 33 44", "status": "done", "timezone": "Europe/Paris",
                             "field-name": "Élodie Bernard-Lévy", "field-ref": "R2", "new_key": "city",
                             "new_value": "Lyon"})
    assert resp.status_code == 302
    s = store_of(leads)
    try:
        lead = dstore.get_lead(s, 3)
    finally:
        s.close()
    assert lead is not None and lead.number == "+33781223344" and lead.status == "done"
    assert lead.fields == {"name": "Élodie Bernard-Lévy", "ref": "R2", "city": "Lyon"}
    assert "Élodie Bernard-Lévy" in admin.get("/leads/spring/?q=lévy").get_data(as_text=True)


def test_a_supervisor_searches_but_does_not_edit(leads: Flask, supervisor: FlaskClient) -> None:
    assert supervisor.get("/leads/spring/").status_code == 200
    assert supervisor.get("/leads/spring/3").status_code == 403
