"""The web UI end to end, in real headless Chromium, beside a real engine with pjsua2 phones.

An admin logs in with the printed one-time password and must change it, creates an extension
and a queue, watches a caller waiting in that queue appear on the wallboard without a reload,
sees the agent turn "on call" when their phone answers, checks the report's figures against
the queue log, and plays the call's recording. Screenshots go to tests/web/screenshots/ (not
committed) so a person can look at the pages.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store import queue_log
from appliance.store.db import Store
from tests.audio import write_tone_wav
from tests.peers.acd import phone
from tests.peers.browser import browser_page, screenshot, submit
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import wait_rx_audio
from tests.peers.polling import wait_until
from tests.peers.webui import WebUi

SHOTS = Path(__file__).parent / "screenshots"
NEW_PASSWORD = "plateau-admin-2026"
AGENT_PHONE, AGENT_SECRET = "1020", "e2e-phone-secret"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Engine, WebUi]]:
    cfg: dict[str, Any] = default_config()
    cfg["agents"] = [{"agent_id": "2001", "name": "Ana", "pin": "1111", "skills": ["english:4"]}]
    eng = Engine(tmp_path / "engine", config=cfg)
    with eng.running(), WebUi(eng.data_dir) as web:
        yield eng, web


def test_admin_journey_in_chromium(site: tuple[Engine, WebUi], tmp_path: Path) -> None:
    eng, web = site
    assert web.first_password, "plateau web printed no one-time password"
    with browser_page() as page:
        # First login: the one-time password must be changed before anything else.
        page.goto(web.url + "/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", web.first_password)
        screenshot(page, SHOTS, "01-login")
        submit(page)
        page.wait_for_url("**/password")
        page.fill("input[name=current_password]", web.first_password)
        page.fill("input[name=new_password]", NEW_PASSWORD)
        page.fill("input[name=new_password_again]", NEW_PASSWORD)
        submit(page)
        page.wait_for_url(web.url + "/")
        screenshot(page, SHOTS, "02-home")

        # An extension for the agent's phone, and a queue: a bad value first (nothing saved).
        page.goto(web.url + "/admin/extensions/new")
        page.fill("#f-number", "10a0")
        page.fill("#f-name", "Agent desk phone")
        page.fill("#f-secret", AGENT_SECRET)
        submit(page)
        assert "is not 2-8 digits" in page.inner_text("main")
        screenshot(page, SHOTS, "03-extension-error")
        page.fill("#f-number", AGENT_PHONE)
        page.fill("#f-secret", AGENT_SECRET)
        submit(page)
        page.wait_for_url("**/admin/extensions/")
        assert AGENT_PHONE in page.inner_text("main table")
        page.goto(web.url + "/admin/queues/new")
        page.fill("#f-name", "e2e")
        page.fill("#f-number", "6100")
        page.check("input[name=join_empty]")
        page.uncheck("input[name=leave_empty]")
        page.fill("#f-announce_seconds", "0")
        page.select_option("#f-recording", "stereo")
        submit(page)
        page.wait_for_url("**/admin/queues/")
        screenshot(page, SHOTS, "04-queues")

        # The wallboard: a caller waiting appears without a reload, then the agent goes on call.
        caller_tone = write_tone_wav(tmp_path / "caller.wav", 440, 60)
        agent_tone = write_tone_wav(tmp_path / "agent.wav", 1000, 60)
        with phone(eng, "caller", "1001") as caller, _agent_phone(eng) as agent_phone:
            page.goto(web.url + "/wallboard/")
            queue = page.locator('[data-queue="e2e"]')
            queue.wait_for()
            assert queue.locator(".waiting").inner_text() == "0"
            call = caller.call(eng.uri("6100"), play_wav=caller_tone)
            caller.wait_state(call, "CONFIRMED")
            page.wait_for_function(
                "() => document.querySelector('[data-queue=\"e2e\"] .waiting').textContent.trim() === '1'")
            screenshot(page, SHOTS, "05-wallboard-waiting")
            assert eng.api("POST", "/v1/agents/2001/login", {"device": AGENT_PHONE})[0] == 200
            offered = agent_phone.wait_incoming(timeout=10.0)
            agent_phone.answer(offered, play_wav=agent_tone)
            agent_phone.wait_state(offered, "CONFIRMED")
            page.wait_for_function(
                "() => document.querySelector('tr[data-agent=\"2001\"]').dataset.state === 'on-call'")
            screenshot(page, SHOTS, "06-wallboard-on-call")
            wait_rx_audio([(caller, call), (agent_phone, offered)], 3.0)  # the recording holds > 2 s
            caller.hangup(call)
            agent_phone.wait_state(offered, "DISCONNECTED")
        wait_until(lambda: _closed_recordings(eng), what="the call's recording closed")

        # The report's figures are the queue log's.
        store = Store(eng.data_dir / "plateau.db")
        try:
            k = queue_log.kpis(store, time.time() - 3600, time.time() + 1, "e2e", 20.0)
        finally:
            store.close()
        assert (k.offered, k.answered) == (1, 1)
        page.goto(web.url + "/reports/?queue=e2e")
        assert page.inner_text("#kpi-answered").strip() == str(k.answered)
        assert page.inner_text("#kpi-service-level").strip().startswith(f"{k.service_level:.0f}")
        screenshot(page, SHOTS, "07-report")

        # The call's recording plays in the browser.
        page.goto(web.url + "/reports/calls")
        audio = page.locator("audio").first
        audio.wait_for()
        page.evaluate("() => { const a = document.querySelector('audio'); a.muted = true; return a.play(); }")
        page.wait_for_function("() => document.querySelector('audio').currentTime > 0.5")
        assert page.evaluate("() => document.querySelector('audio').duration") > 2.0
        screenshot(page, SHOTS, "08-calls")


def _closed_recordings(eng: Engine) -> int:
    db = sqlite3.connect(eng.data_dir / "plateau.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM recordings WHERE ended_at IS NOT NULL").fetchone()[0])
    finally:
        db.close()


def _agent_phone(eng: Engine) -> Any:
    """The phone registered on the extension the admin created in the browser."""
    from tests.peers.pjsua import PjPhone

    class _Registered:
        def __enter__(self) -> PjPhone:
            self.p = PjPhone("agent").start()
            self.p.register(AGENT_PHONE, AGENT_SECRET, "127.0.0.1", eng.sip_port)
            return self.p

        def __exit__(self, *exc: object) -> None:
            self.p.close()

    return _Registered()
