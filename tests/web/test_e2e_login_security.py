"""Issue 12 finding 6 in real Chromium against `plateau web`: where a browser really goes after a
login with a crafted `next`, that a copy of the cookie dies at logout, and that no page of the
UI trips the Content-Security-Policy."""
from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store.db import Store
from tests.peers import browser
from tests.peers.browser import browser_page
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
    finally:
        store.close()
    with WebUi(data) as ui:
        yield ui


def log_in(page: Any, web: WebUi, query: str = "") -> None:
    browser.log_in(page, web.url, "boss", PASSWORD, query)


def test_a_tab_in_next_does_not_take_chromium_to_another_host(web: WebUi) -> None:
    with browser_page() as page:
        page.goto(f"{web.url}/login?next=/%09/evil.invalid/")
        if "next:" in page.inner_text("body"):  # refused up front with a 400 and a message
            return
        log_in(page, web, "?next=/%09/evil.invalid/")
        page.wait_for_load_state()
        assert urllib.parse.urlsplit(page.url).netloc == f"127.0.0.1:{web.port}", page.url


def test_a_copied_cookie_is_worthless_after_logout_in_chromium(web: WebUi) -> None:
    with browser_page() as page:
        log_in(page, web)
        page.wait_for_url(web.url + "/")
        cookie = next(c for c in page.context.cookies() if c["name"] == "session")

        def as_thief() -> str:
            req = urllib.request.Request(web.url + "/users/", headers={"Cookie": f"session={cookie['value']}"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                return str(resp.url)

        assert as_thief().endswith("/users/")  # the copy works while the session lives
        page.click("form[action='/logout'] button")
        page.wait_for_url("**/login")
        assert "/login" in as_thief()  # revoked server-side: sent to log in


def test_no_page_trips_the_content_security_policy(web: WebUi) -> None:
    violations: list[str] = []
    with browser_page() as page:
        page.on("console", lambda msg: violations.append(msg.text)
                if "Content Security Policy" in msg.text else None)
        log_in(page, web)
        page.wait_for_url(web.url + "/")
        for path in ("/", "/wallboard/", "/reports/", "/reports/calls", "/admin/extensions/", "/users/",
                     "/users/audit", "/system/backup", "/admin/campaigns/"):
            try:
                page.goto(web.url + path)
            except urllib.error.URLError:
                continue
            page.wait_for_load_state("networkidle")
    assert violations == []
