"""Outbound campaigns end to end, in real headless Chromium, beside a real engine.

An admin puts a number on the do-not-call list, creates a predictive campaign (a bad calling
window first: refused beside its field, nothing saved), imports a prospect file with bad rows
through the three import pages, reads the report (counts per reason, every row left out with
its line) and finds the list again from the campaign page, whose figures come live from the
engine. Screenshots go to tests/web/screenshots/ (not committed) so a person can look at them.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import dialer as dstore
from appliance.store.db import Store
from appliance.store.models import QueueConfig, Trunk
from tests.peers.browser import browser_page, screenshot, submit
from tests.peers.engine import Engine, default_config
from tests.peers.webui import WebUi

SHOTS = Path(__file__).parent / "screenshots"
NEW_PASSWORD = "plateau-admin-2026"
PROSPECTS = ("Téléphone;Prénom;Nom;Société;Ville\n"
             "06 12 34 56 78;Anne;Martin;Acme;Lyon\n"
             "06 12 34 56 79;Bruno;Petit\n"
             "0612345678;Anne;Martin;Acme;Lyon\n"
             "07 00 00;Chloé;Durand;;Nice\n"
             "06 98 76 54 32;Denis;Moreau;Initech;Paris\n"
             "+44 20 7946 0958;Fred;Smith;Globex;London\n"
             "06 55 44 33 22;Gaëlle;Roux;Umbrella;Lille\n"
             "01 44 55 66 77;Hugo;Bernard;Hooli;Paris\n")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Engine, WebUi]]:
    cfg: dict[str, Any] = default_config()
    cfg["agents"] = [{"agent_id": "2001", "name": "Ana", "pin": "1111"}]
    cfg["queues"] = [dataclasses.asdict(QueueConfig(name="outbound", members=["2001"]))]
    cfg["trunks"] = [dataclasses.asdict(Trunk(name="carrier", host="127.0.0.1", port=5999))]
    eng = Engine(tmp_path / "engine", config=cfg)
    with eng.running(), WebUi(eng.data_dir) as web:
        yield eng, web


def test_import_a_prospect_list_in_chromium(site: tuple[Engine, WebUi], tmp_path: Path) -> None:
    eng, web = site
    assert web.first_password, "plateau web printed no one-time password"
    csv_path = tmp_path / "crm-export-march.csv"
    csv_path.write_bytes(PROSPECTS.encode("cp1252"))  # as Excel saves it on a French PC
    with browser_page() as page:
        page.goto(web.url + "/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", web.first_password)
        submit(page)
        page.wait_for_url("**/password")
        page.fill("input[name=current_password]", web.first_password)
        page.fill("input[name=new_password]", NEW_PASSWORD)
        page.fill("input[name=new_password_again]", NEW_PASSWORD)
        submit(page)
        page.wait_for_url(web.url + "/")

        # A prospect who asked not to be called, on the do-not-call list first.
        page.click("nav >> text=Campaigns")
        page.click("main nav >> text=Do-not-call list")
        page.fill("#f-number", "06 98 76 54 32")
        page.fill("#f-note", "asked by phone")
        page.click("#dnc-add button.primary")
        page.wait_for_selector('tr[data-number="+33698765432"]')

        # The campaign: a bad window is refused beside its field, then saved.
        page.goto(web.url + "/admin/campaigns/new")
        page.fill("#f-name", "spring-offer")
        page.select_option("#f-mode", "predictive")
        page.select_option("#f-queue", "outbound")
        page.select_option("#f-trunk", "carrier")
        page.fill("#f-caller_id", "+33140000000")
        page.fill("#f-windows", "mon-fri 9-20")
        page.fill("#f-script", "Hello, this is Plateau about our spring offer.\nAsk if now is a good time.")
        submit(page)
        assert "is not a window like" in page.inner_text(".field.has-error")
        page.fill("#f-windows", "mon-fri 09:00-20:00\nsat 09:00-13:00")
        submit(page)
        page.wait_for_url("**/admin/campaigns/spring-offer/")

        # Step 1: upload. Step 2: the columns found, the number column guessed.
        page.click("main .toolbar >> text=Import a list")
        page.set_input_files("#f-file", str(csv_path))
        submit(page)
        page.wait_for_selector("#mapping")
        assert page.is_checked('input[name=number_col][value="0"]')
        assert page.input_value('input[name="as_1"]') == "first_name"
        assert "Gaëlle" in page.inner_text("#mapping tbody") or "Chloé" in page.inner_text("#mapping tbody")
        # Picking another number column frees the first one's name (campaigns.js), and back.
        page.check('input[name=number_col][value="1"]')
        assert page.input_value('input[name="as_0"]') == "Téléphone" and page.is_disabled('input[name="as_1"]')
        page.check('input[name=number_col][value="0"]')
        assert page.input_value('input[name="as_1"]') == "first_name" and page.is_disabled('input[name="as_0"]')
        page.fill("#f-list_name", "March CRM export")
        page.fill('input[name="as_4"]', "city")
        screenshot(page, SHOTS, "campaigns-01-import-mapping")
        page.click("#import-button")

        # Step 3: the report.
        page.wait_for_selector("#report-summary")
        assert page.inner_text("#report-rows").strip() == "8"
        assert page.inner_text("#report-imported").strip() == "4"
        counts = {row.get_attribute("data-reason"): row.inner_text().split()[-1]
                  for row in page.query_selector_all("#report-counts tr")}
        assert counts == {"bad-number": "1", "dnc": "1", "duplicate": "1", "malformed-row": "1"}
        lines = [row.get_attribute("data-line") for row in page.query_selector_all("#problems tbody tr")]
        assert lines == ["3", "4", "5", "6"]
        screenshot(page, SHOTS, "campaigns-02-import-report")

        # The list is stored with its report and its leads, and shown on the campaign page.
        store = Store(eng.data_dir / "plateau.db")
        try:
            [lst] = dstore.lead_lists(store, "spring-offer")
            assert (lst["name"], lst["leads"], lst["report"]["imported"]) == ("March CRM export", 4, 4)
        finally:
            store.close()
        page.click("text=Back to the campaign")
        page.wait_for_selector(f'tr[data-list="{lst["id"]}"]')
        assert page.inner_text('.lead-figures [data-status="new"] dd').strip() == "4"
        screenshot(page, SHOTS, "campaigns-03-campaign")
        page.goto(web.url + "/admin/campaigns/")
        card = page.locator('[data-campaign="spring-offer"]')
        card.wait_for()
        assert re.search(r"\d+ new", card.locator(".lead-counts").inner_text())
        screenshot(page, SHOTS, "campaigns-04-list")
