"""The supervisor's floor in real headless Chromium, beside a real engine with pjsua2 phones
(issue 15 item 3): the wallboard with waiting callers and a monitored call, and the engine
going down and coming back. Screenshots go to tests/web/screenshots/ (not committed)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.store.db import Store
from tests.audio import write_tone_wav
from tests.peers.acd import phone, queue_config, wait_agent
from tests.peers.browser import browser_page, screenshot, submit
from tests.peers.engine import Engine
from tests.peers.webui import WebUi
from web import accounts

SHOTS = Path(__file__).parent / "screenshots"
PASSWORD = "floor-supervisor-2026"
CALLER, SECOND_CALLER, ANA_PHONE, SUPERVISOR_PHONE, UNREGISTERED = "1001", "1003", "1002", "1005", "1009"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Engine, WebUi]]:
    eng = Engine(tmp_path / "engine", config=queue_config(skills=[], escalations=[], callback_key=None))
    with eng.running():
        store = Store(eng.data_dir / "plateau.db")
        try:
            accounts.create_user(store, "sup", PASSWORD, "supervisor", time.time(), must_change=False)
        finally:
            store.close()
        with WebUi(eng.data_dir) as web:
            yield eng, web


def _log_in(page: Any, web: WebUi) -> None:
    page.goto(web.url + "/login")
    page.fill("input[name=username]", "sup")
    page.fill("input[name=password]", PASSWORD)
    submit(page)
    page.wait_for_url(web.url + "/")


def _row(agent_id: str) -> str:
    return f'tr[data-agent="{agent_id}"]'


def test_the_wallboard_with_waiting_callers_and_a_monitored_call(site: tuple[Engine, WebUi],
                                                                  tmp_path: Path) -> None:
    eng, web = site
    tone = write_tone_wav(tmp_path / "tone.wav", 440, 60)
    with browser_page() as page, phone(eng, "caller", CALLER) as caller, \
            phone(eng, "second", SECOND_CALLER) as second, phone(eng, "ana", ANA_PHONE) as ana, \
            phone(eng, "supervisor", SUPERVISOR_PHONE) as supervisor:
        _log_in(page, web)
        page.goto(web.url + "/wallboard/")
        page.locator('[data-queue="support"]').wait_for()
        # No extension yet: the page says why Listen, Whisper and Barge cannot work.
        assert page.locator("#no-extension").is_visible()
        assert "need your extension" in page.inner_text("#no-extension")
        assert page.inner_text("#live-indicator") == "● live"
        # Agents who never logged in have no time in state.
        assert page.inner_text(f'{_row("2001")} .since') == "—"
        page.fill("#my-extension", SUPERVISOR_PHONE)
        page.click("#my-extension-form button[type=submit]")
        page.wait_for_url("**/wallboard/")
        assert not page.locator("#no-extension").is_visible()

        # Bob logs in on a phone nobody registered: unreachable, not available.
        assert eng.api("POST", "/v1/agents/2002/login", {"device": UNREGISTERED})[0] == 200
        page.wait_for_function(f"() => document.querySelector('{_row('2002')}').dataset.shown === 'unreachable'")
        assert page.inner_text(f'{_row("2002")} .state') == "unreachable"
        # Pause asks first: dismissed, nothing happens; accepted, Bob is paused.
        asked: list[str] = []
        page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
        page.click(f'{_row("2002")} button[data-action=pause]')
        assert asked and "Pause Bob" in asked[0]
        assert wait_agent(eng, "2002", "available")["state"] == "available"
        page.once("dialog", lambda d: d.accept())
        page.click(f'{_row("2002")} button[data-action=pause]')
        wait_agent(eng, "2002", "paused")
        page.wait_for_function(f"() => document.querySelector('{_row('2002')}').dataset.shown === 'paused'")
        assert page.locator(f'{_row("2002")} .not-registered').is_visible()  # paused, on a dead phone

        # Ana takes the first caller; the second waits, listed with queue, position and wait.
        assert eng.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200
        first = caller.call(eng.uri("6000"), play_wav=tone)
        offered = ana.wait_incoming(timeout=10.0)
        ana.answer(offered, play_wav=tone)
        ana.wait_state(offered, "CONFIRMED")
        page.wait_for_function(f"() => document.querySelector('{_row('2001')}').dataset.state === 'on-call'")
        assert page.inner_text(f'{_row("2001")} .working') == "support"
        waiting_call = second.call(eng.uri("6000"), play_wav=tone)
        second.wait_state(waiting_call, "CONFIRMED")
        page.wait_for_function("() => document.querySelectorAll('#waiting tbody tr').length === 1")
        row = page.locator("#waiting tbody tr")
        assert SECOND_CALLER in row.locator(".w-caller").inner_text()
        assert (row.locator(".w-queue").inner_text(), row.locator(".w-position").inner_text()) == ("support", "1")
        assert not page.locator("#no-waiting").is_visible()

        # Listen rings the supervisor's own phone; the board then shows who monitors whom.
        page.click(f'{_row("2001")} button[data-action=listen]')
        ring = supervisor.wait_incoming(timeout=10.0)
        supervisor.answer(ring)
        supervisor.wait_state(ring, "CONFIRMED")
        page.wait_for_function("() => document.querySelectorAll('#monitors tbody tr').length === 1")
        monitor = page.locator("#monitors tbody tr")
        assert monitor.locator(".m-supervisor").inner_text() == SUPERVISOR_PHONE
        assert monitor.locator(".mode").inner_text() == "listen"
        assert "Ana" in monitor.locator(".m-agent").inner_text()
        screenshot(page, SHOTS, "floor-01-waiting-and-monitored")

        # Log out asks first too: dismissed, Ana stays on her call.
        page.once("dialog", lambda d: d.dismiss())
        page.click(f'{_row("2001")} button[data-action=logout]')
        assert wait_agent(eng, "2001", "on-call")["state"] == "on-call"

        # The TV board: the same figures, large, without a single control.
        page.goto(web.url + "/wallboard/tv")
        page.wait_for_function("() => document.querySelectorAll('#waiting tbody tr').length === 1")
        assert page.locator("button, form, select").count() == 0
        assert page.locator('[data-queue="support"] .waiting').inner_text() == "1"
        page.dblclick("h1")
        page.wait_for_function("() => document.fullscreenElement !== null")  # full screen, no button
        screenshot(page, SHOTS, "floor-02-tv")
        supervisor.hangup(ring)
        second.hangup(waiting_call)
        caller.hangup(first)
        ana.wait_state(offered, "DISCONNECTED")


def test_the_engine_going_down_and_coming_back(site: tuple[Engine, WebUi]) -> None:
    eng, web = site
    with browser_page() as page:
        _log_in(page, web)
        page.goto(web.url + "/wallboard/")
        page.locator('[data-queue="support"]').wait_for()
        assert page.inner_text("#live-indicator") == "● live"
        eng.stop()
        page.wait_for_function("() => document.getElementById('live-indicator').textContent"
                               " === '● engine not reachable'")
        assert page.locator("#engine-down").is_visible()
        assert not page.locator("#no-queues").is_visible()  # not "No queues": nobody answered
        assert "live" not in page.inner_text("#live-indicator")
        screenshot(page, SHOTS, "floor-03-engine-down")
        page.reload()  # a board opened while the engine is down says so from the first paint
        assert page.inner_text("#live-indicator") == "● engine not reachable"
        eng.start()
        page.wait_for_function("() => document.getElementById('live-indicator').textContent === '● live'",
                               timeout=30000)
        page.locator('[data-queue="support"]').wait_for()
        assert not page.locator("#engine-down").is_visible()
