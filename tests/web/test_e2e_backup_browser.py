"""System > Backup in real headless Chromium against `plateau web`: the admin downloads the site's
backup (database included), the site changes, the archive is uploaded again, the page shows
the rows the restore would undo, "Restore now" does nothing until the confirmation is ticked,
and then restores. Screenshots go to tests/web/screenshots/ (not committed).
"""
from __future__ import annotations

import tarfile
import time
from pathlib import Path

from appliance.store.db import Store
from appliance.store.demo import seed_demo
from appliance.store.models import Extension
from tests.peers.browser import browser_page, screenshot, submit
from tests.peers.webui import WebUi
from web import accounts

SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "backup-admin-2026"


def _numbers(db: Path) -> set[str]:
    with Store(db) as store:
        return {e.number for e in store.extensions()}


def test_restore_shows_the_differences_and_asks_to_confirm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "plateau.db"
    with Store(db) as store:
        seed_demo(store)
        accounts.create_user(store, "admin", PASSWORD, "admin", time.time(), must_change=False)
    before = _numbers(db)
    with WebUi(data) as web, browser_page() as page:
        page.goto(web.url + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        submit(page)
        page.wait_for_url(web.url + "/")

        page.goto(web.url + "/system/backup")
        with page.expect_download() as download:
            page.click("text=Download backup")
        archive = tmp_path / "site.tar.gz"
        download.value.save_as(archive)
        with tarfile.open(archive, "r:gz") as tar:
            assert {"database.sqlite", "config.yaml", "manifest.json"} <= set(tar.getnames())

        # The site changes after the backup: one extension more, one renamed.
        with Store(db) as store:
            store.put_extension(Extension(number="1099", name="Temp", secret="Zq8-temp-secret"))
            ext = next(e for e in store.extensions() if e.number == "1002")
            store.put_extension(Extension(number="1002", name="Renamed", secret=ext.secret))
        with Store(db) as store:
            store.cdr_open("late@x", "+33612345678", "", "1001", "inbound", time.time())

        page.set_input_files("input[name=archive]", str(archive))
        page.click("text=Check archive")
        page.wait_for_selector("#config-diff")
        removed = page.locator('#config-diff tr[data-key="1099"]')
        assert removed.get_attribute("class") == "removed"
        changed = page.locator('#config-diff tr[data-key="1002"]')
        assert changed.get_attribute("class") == "changed" and "name" in changed.inner_text()
        calls = page.locator('#data-counts tr[data-table="cdr"] td')
        assert [calls.nth(1).inner_text(), calls.nth(2).inner_text()] == ["1", "0"]  # now, in the archive
        screenshot(page, SHOTS, "backup-01-restore-diff")

        # Unticked, "Restore now" goes nowhere and nothing changes.
        report_url = page.url
        page.click("#restore-confirm button.primary")
        assert page.evaluate("document.querySelector('#restore-confirm input[name=confirm]').validity.valueMissing")
        assert page.url == report_url and "1099" in _numbers(db)
        screenshot(page, SHOTS, "backup-02-confirm-required")

        page.check("#restore-confirm input[name=confirm]")
        page.click("#restore-confirm button.primary")
        page.wait_for_url(web.url + "/system/")
        assert "restored" in page.inner_text("main")
        screenshot(page, SHOTS, "backup-03-restored")
    assert _numbers(db) == before
