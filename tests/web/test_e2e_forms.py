"""Issue 15 "Forms and lists" in real Chromium against `plateau web`: a form with four bad fields
shows four errors beside them and keeps what was typed (a generated SIP password included), and
a destination is picked from the list of what exists and saved in the one syntax."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import acd
from appliance.store.db import Store
from appliance.store.models import Extension, QueueConfig
from tests.peers import browser
from tests.peers.browser import browser_page, submit
from tests.peers.webui import WebUi
from web import accounts

PASSWORD = "violet-kettle-harbour"
MENU = "name: menu\nversion: 1\nstart: go\nnodes:\n  go: {type: route, target: 'queue:sales'}\n"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebUi]:
    data = tmp_path / "data"
    (data / "flows").mkdir(parents=True)
    (data / "flows" / "menu.yaml").write_text(MENU, encoding="utf-8")
    store = Store(data / "plateau.db")
    try:
        accounts.create_user(store, "boss", PASSWORD, "admin", time.time(), must_change=False)
        store.put_extension(Extension(number="1001", name="Accueil", secret="s3cret-pass", voicemail=True))
        acd.put_queue(store, QueueConfig(name="sales"))
    finally:
        store.close()
    with WebUi(data) as ui:
        yield ui


def log_in(page: Any, web: WebUi) -> None:
    browser.log_in(page, web.url, "boss", PASSWORD)
    page.wait_for_url(web.url + "/")


def stored(web: WebUi, read: Any) -> Any:
    store = Store(web.data_dir / "plateau.db")
    try:
        return read(store)
    finally:
        store.close()


def test_a_form_with_four_bad_fields_shows_four_errors(web: WebUi) -> None:
    with browser_page() as page:
        log_in(page, web)
        page.goto(web.url + "/admin/queues/new")
        page.fill("#f-name", "bad name!")
        page.fill("#f-number", "12a")
        page.fill("#f-wrapup_seconds", "-5")
        page.fill("#f-announce_seconds", "5")
        submit(page)
        page.wait_for_selector(".field-error")
        shown = page.locator(".field.has-error")
        assert shown.count() == 4
        beside = {shown.nth(i).locator("input, select, textarea").first.get_attribute("name"):
                  shown.nth(i).locator(".field-error").inner_text() for i in range(4)}
        assert set(beside) == {"name", "number", "wrapup_seconds", "announce_seconds"}, beside
        assert "is not 2-8 digits" in beside["number"] and "-5 is not in 0..3600" in beside["wrapup_seconds"]
        assert page.input_value("#f-name") == "bad name!"  # what was typed is kept
        assert stored(web, lambda s: acd.get_queue(s, "bad name!")) is None

        # A generated SIP password survives a refused extension form.
        page.goto(web.url + "/admin/extensions/new")
        page.fill("#f-number", "10a2")
        page.fill("#f-name", "Réclamations")
        page.click("button[data-generate=f-secret]")
        generated = page.input_value("#f-secret")
        assert len(generated) >= 8
        submit(page)
        page.wait_for_selector(".field-error")
        assert page.input_value("#f-secret") == generated
        page.fill("#f-number", "1002")
        submit(page)
        page.wait_for_url("**/admin/extensions/")
        assert stored(web, lambda s: s.get_extension("1002").secret) == generated


def test_a_destination_picked_from_the_list(web: WebUi) -> None:
    with browser_page() as page:
        log_in(page, web)
        page.goto(web.url + "/admin/inbound/new")
        options = page.locator("#f-destination option").all_inner_texts()
        assert {"extension 1001 Accueil", "voicemail of 1001 Accueil", "queue sales", "IVR flow menu"} <= set(options)
        page.fill("#f-did", "+33123456789")
        page.select_option("#f-destination", label="IVR flow menu")
        submit(page)
        page.wait_for_url("**/admin/inbound/")
        assert "ivr:menu" in page.inner_text("main table")
        assert stored(web, lambda s: s.get_inbound_route("+33123456789").destination) == "ivr:menu"

        page.goto(web.url + "/admin/queues/sales/edit")
        assert page.input_value("#f-overflow") == ""  # "Hang up"
        page.select_option("#f-overflow", label="voicemail of 1001 Accueil")
        submit(page)
        page.wait_for_url("**/admin/queues/")
        assert stored(web, lambda s: acd.get_queue(s, "sales").overflow) == "voicemail:1001"
