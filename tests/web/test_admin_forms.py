"""Issue 15 "Forms and lists": every error at once beside its field, a refused form keeping what
was typed (passwords included), and one destination syntax, picked from what exists and checked
on save by the routes, the queues, the flow editor and the YAML import alike."""
from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.ivr.flow import RouteNode, load_flow
try:
    from appliance.schema.destinations import Catalogue, Destination, parse
except ImportError:
    pass
from appliance.schema.errors import RecordInvalid
from appliance.store import acd
from appliance.store.config_yaml import import_config
from appliance.store.db import Store
from appliance.store.models import Extension, QueueConfig
from tests.web.test_admin_config import field_error, post, seed, with_store

QUEUE_FORM = {"name": "support", "strategy": "linear", "ring_step_seconds": "10", "wrapup_seconds": "0",
              "max_wait_seconds": "0", "max_callers": "0", "announce_seconds": "0",
              "service_level_seconds": "20", "recording": "none"}
FLOW = """name: {name}
version: 1
start: go
nodes:
  go: {{type: route, target: "{target}"}}
"""


@pytest.fixture
def site(app: Flask) -> Flask:
    def more(store: Store) -> None:
        seed(store)
        acd.put_queue(store, QueueConfig(name="sales"))
    with_store(app, more)
    flows = Path(app.config["DATA_DIR"]) / "flows"
    flows.mkdir(parents=True, exist_ok=True)
    (flows / "menu.yaml").write_text(FLOW.format(name="menu", target="queue:sales"), encoding="utf-8")
    return app


def errors_on(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="field-error" role="alert">([^<]*)</div>', page)]


def test_four_bad_fields_get_four_errors_beside_them(site: Flask, admin: FlaskClient) -> None:
    """The model's errors and the reference checks in one pass: before, `ivr:nowhere` was saved."""
    resp = post(admin, "/admin/queues/new", {**QUEUE_FORM, "name": "bad name!", "number": "12a",
                                             "wrapup_seconds": "-5", "overflow": "ivr:nowhere"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert len(errors_on(page)) == 4, errors_on(page)
    assert "is not a name" in field_error(page, "name")
    assert "is not 2-8 digits" in field_error(page, "number")
    assert "-5 is not in 0..3600" in field_error(page, "wrapup_seconds")
    assert "IVR flow 'nowhere' does not exist" in field_error(page, "overflow")
    assert "correct the fields marked below" in page


def test_bad_destinations_are_refused_beside_the_field(site: Flask, admin: FlaskClient) -> None:
    resp = post(admin, "/admin/queues/new", {**QUEUE_FORM, "overflow": "ivr:nowhere"})
    assert resp.status_code == 400
    assert "IVR flow 'nowhere' does not exist" in field_error(resp.get_data(as_text=True), "overflow")
    resp = post(admin, "/admin/inbound/new", {"did": "0800", "destination": "ivr:doesnotexist"})
    assert resp.status_code == 400
    assert "IVR flow 'doesnotexist' does not exist" in field_error(resp.get_data(as_text=True), "destination")
    assert with_store(site, lambda s: (acd.get_queue(s, "support"), s.get_inbound_route("0800"))) == (None, None)
    # What exists is accepted, in the one syntax.
    assert post(admin, "/admin/inbound/new", {"did": "0800", "destination": "ivr:menu"}).status_code == 302
    assert post(admin, "/admin/queues/new", {**QUEUE_FORM, "overflow": "queue:sales"}).status_code == 302


def test_the_destination_fields_are_pick_lists_of_what_exists(site: Flask, admin: FlaskClient) -> None:
    page = admin.get("/admin/inbound/new").get_data(as_text=True)
    select = re.search(r'<select id="f-destination".*?</select>', page, re.S)
    assert select, "the destination is not a pick list"
    values = re.findall(r'<option value="([^"]*)"', select.group(0))
    assert {"1001", "voicemail:1001", "queue:sales", "ivr:menu"} <= set(values)
    page = admin.get("/admin/queues/new").get_data(as_text=True)
    overflow = re.search(r'<select id="f-overflow".*?</select>', page, re.S)
    assert overflow and '<option value="" selected>Hang up</option>' in overflow.group(0)


def test_flow_check_refuses_a_route_to_a_queue_that_does_not_exist(site: Flask, admin: FlaskClient) -> None:
    text = FLOW.format(name="demo", target="queue:nosuch")
    resp = post(admin, "/admin/flows/demo", {"text": text, "action": "validate"})
    page = html.unescape(resp.get_data(as_text=True))
    assert resp.status_code == 400 and "is valid" not in page
    assert "nodes.go.target" in page and "queue 'nosuch' does not exist" in page
    resp = post(admin, "/admin/flows/demo", {"text": text, "action": "save"})
    assert resp.status_code == 400 and not (Path(site.config["DATA_DIR"]) / "flows" / "demo.yaml").exists()
    # The same target that exists: valid, and published.
    ok = FLOW.format(name="demo", target="queue:sales")
    assert post(admin, "/admin/flows/demo", {"text": ok, "action": "save"}).status_code == 302


def test_a_refused_form_keeps_what_was_typed_passwords_included(site: Flask, admin: FlaskClient) -> None:
    generated = "Zq8-generated-7Kp"
    resp = post(admin, "/admin/extensions/new", {"number": "10a2", "name": "Réception", "secret": generated,
                                                "recording": "none", "noanswer_seconds": "20"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert re.search(rf'id="f-secret" name="secret" type="password"[^>]*value="{generated}"', page)
    assert 'value="10a2"' in page and 'value="Réception"' in page
    assert resp.headers.get("Cache-Control") == "no-store"  # a typed password is not kept in a cache
    # A stored secret still never reaches the page.
    assert "s3cret-pass" not in admin.get("/admin/extensions/1001/edit").get_data(as_text=True)


def test_one_destination_syntax_reads_the_old_flow_spellings() -> None:
    assert parse("1001") == Destination("extension", "1001") and str(parse("1001")) == "1001"
    assert parse("extension:1001") == parse("1001")
    assert parse("flow:menu") == parse("ivr:menu") and str(parse("flow:menu")) == "ivr:menu"
    assert str(parse("external:+33140000000", external=True)) == "external:+33140000000"
    with pytest.raises(ValueError, match="is not an extension number"):
        parse("external:+33140000000")  # a route or an overflow never dials out
    flow = load_flow("name: f\nversion: 1\nstart: m\nnodes:\n"
                     "  m: {type: menu, prompt: 'say: hi', options: {1: go, 2: x}}\n"
                     "  go: {type: route, target: 'ivr:menu'}\n  x: {type: route, target: '1001'}\n")
    targets = {nid: n.target for nid, n in flow.nodes.items() if isinstance(n, RouteNode)}
    assert (targets["go"].kind, targets["go"].destination) == ("flow", "ivr:menu")
    assert (targets["x"].kind, targets["x"].destination) == ("extension", "1001")
    site = Catalogue.of(["1001"], ["1001"], ["sales"], ["menu"])
    assert site.error("queue:nosuch") == "queue 'nosuch' does not exist"
    assert site.error("ivr:menu") is None and site.error("voicemail:1001") is None


def test_the_yaml_import_refuses_an_unpublished_flow(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    try:
        store.put_extension(Extension(number="1001", name="Accueil", secret="s3cret-pass"))
        text = ("version: 1\nextensions:\n  - {number: '1001', name: Accueil, secret: s3cret-pass}\n"
                "inbound_routes:\n  - {did: '0800', destination: 'ivr:doesnotexist'}\n")
        with pytest.raises(RecordInvalid, match=r"inbound_routes\[0\].destination: IVR flow 'doesnotexist'"):
            import_config(store, text, flows=["menu"])
        assert store.inbound_routes() == []
        import_config(store, text.replace("doesnotexist", "menu"), flows=["menu"])
        assert [r.destination for r in store.inbound_routes()] == ["ivr:menu"]
    finally:
        store.close()


def test_every_error_of_one_field_is_shown_beside_it(site: Flask, admin: FlaskClient) -> None:
    """Two bad lines of a list are two errors: before, only the first one was shown."""
    resp = post(admin, "/admin/agents/new", {"agent_id": "2003", "name": "Cléo", "pin": "4321",
                                            "skills": "french:9\nbilling:x", "ring_timeout": "20",
                                            "max_no_answer": "3"})
    shown = field_error(resp.get_data(as_text=True), "skills")
    assert resp.status_code == 400 and "line 1:" in shown and "line 2:" in shown, shown
    # A value the form cannot read keeps that one error (no range error about a stand-in 0).
    resp = post(admin, "/admin/queues/new", {**QUEUE_FORM, "ring_step_seconds": "ten"})
    assert field_error(resp.get_data(as_text=True), "ring_step_seconds") == "'ten' is not a whole number"


def test_an_accented_queue_name_is_its_display_name(site: Flask, admin: FlaskClient) -> None:
    """"Réclamations" was refused: the identifier stays ASCII (queue:<name>), the display name is free."""
    resp = post(admin, "/admin/queues/new", {**QUEUE_FORM, "name": "Réclamations"})
    assert resp.status_code == 400
    assert "write it with accents as the display name" in field_error(resp.get_data(as_text=True), "name")
    resp = post(admin, "/admin/queues/new", {**QUEUE_FORM, "name": "reclamations", "label": "Réclamations"})
    assert resp.status_code == 302
    assert with_store(site, lambda s: acd.get_queue(s, "reclamations")).display_name == "Réclamations"
    assert "Réclamations (reclamations)" in admin.get("/admin/queues/").get_data(as_text=True)
    page = admin.get("/admin/inbound/new").get_data(as_text=True)
    assert '<option value="queue:reclamations">queue Réclamations</option>' in page


def test_the_demo_site_shows_french_queue_names(tmp_path: Path) -> None:
    from appliance.store.demo import seed_demo

    store = Store(tmp_path / "p.db")
    try:
        seed_demo(store)
        assert {q.name: q.display_name for q in acd.queues(store)} == {"sales": "Ventes", "support": "Réclamations"}
    finally:
        store.close()
