"""Real headless Chromium (Debian's) driven by Playwright, for end-to-end tests of the web UI.

The appliance has no internet, and neither do tests: Chromium runs with its background
networking off (otherwise it keeps trying Google's hosts), a fresh profile, and no sandbox
because CI runs as root.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]


@contextlib.contextmanager
def browser_page(viewport: tuple[int, int] = (1440, 900)) -> Iterator[Any]:
    """A Playwright page in a new Chromium; everything is closed on exit."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="plateau-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]})
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.set_default_timeout(15000)
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(page: Any, directory: Path, name: str) -> Path:
    """Save a full-page PNG (tests keep them so a person can look at the pages)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def submit(page: Any) -> None:
    """Click the page's main form button (not the sidebar's log-out button)."""
    page.click("main form button.primary")


def log_in(page: Any, base_url: str, username: str, password: str, query: str = "") -> None:
    """Fill and submit the web UI's login form at BASE_URL/login[QUERY] (the caller waits for what follows)."""
    page.goto(f"{base_url}/login{query}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    submit(page)
