"""Slow clients against the real `plateau web` (issue 12, finding 5): 200 connections that send
headers one line at a time, and 200 that stop after 6 bytes of a TLS ClientHello, must neither
stop a login nor live for ever. Real sockets on loopback, as an attacker's script would do it."""
from __future__ import annotations

import http.cookiejar
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.system.firstboot import make_certificate
from tests.peers.polling import wait_until
from tests.peers.webui import WebUi
from web.server import HANDSHAKE_TIMEOUT, HEADER_TIMEOUT

SLOW_CLIENTS = 200
LOGIN_BOUND = 5.0  # seconds: scrypt plus a loaded 2-core CI machine; a stuck server never answers
# The first 6 bytes of a TLS 1.2 ClientHello record (RFC 8446 §5.1: content type 22, version,
# length), then nothing: the server waits for the rest of the record.
HALF_CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01"


def timed_login(web: WebUi, password: str) -> float:
    """Log in through the login form like a browser (cookie, CSRF token); seconds taken."""
    jar = http.cookiejar.CookieJar()
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPCookieProcessor(jar)]
    if web.ssl_context() is not None:
        handlers.append(urllib.request.HTTPSHandler(context=web.ssl_context()))
    opener = urllib.request.build_opener(*handlers)
    start = time.monotonic()
    with opener.open(web.url + "/login", timeout=LOGIN_BOUND * 2) as resp:
        page = resp.read().decode()
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF token on the login page"
    form = urllib.parse.urlencode({"username": "admin", "password": password, "csrf_token": m.group(1)})
    with opener.open(web.url + "/login", data=form.encode(), timeout=LOGIN_BOUND * 2) as resp:
        # A one-time password: logged in, and sent on to choose a new one.
        assert resp.url.endswith("/password"), resp.url
    return time.monotonic() - start


class Trickle:
    """`count` connections that each send a request line, then one header line per second."""

    def __init__(self, port: int, count: int, first: bytes, more: bytes | None) -> None:
        self.socks: list[socket.socket] = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(first)
            self.socks.append(s)
        self.more = more
        self.closed: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(1.0):
            n += 1
            for i, s in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    if self.more is not None:
                        s.sendall(self.more % n)
                    s.setblocking(False)
                    try:
                        if s.recv(65536) == b"":
                            self.closed.add(i)
                    except BlockingIOError:
                        pass
                    finally:
                        s.setblocking(True)
                except OSError:  # reset by the server: it gave up on us, as it should
                    self.closed.add(i)

    def all_closed(self) -> bool:
        return len(self.closed) == len(self.socks)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for s in self.socks:
            s.close()


@pytest.fixture
def tls_pair(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    make_certificate(cert, key, "localhost", ["127.0.0.1"])
    return cert, key


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebUi]:
    with WebUi(tmp_path / "data") as ui:
        yield ui


@pytest.fixture
def web_tls(tmp_path: Path, tls_pair: tuple[Path, Path]) -> Iterator[WebUi]:
    with WebUi(tmp_path / "data", tls=tls_pair) as ui:
        yield ui


def test_200_slow_header_clients_do_not_stop_a_login(web: WebUi) -> None:
    assert web.first_password
    quiet = timed_login(web, web.first_password)
    slow = Trickle(web.port, SLOW_CLIENTS, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow-%d: 1\r\n")
    try:
        busy = timed_login(web, web.first_password)
        print(f"login: {quiet * 1000:.0f} ms quiet, {busy * 1000:.0f} ms with {SLOW_CLIENTS} slow clients")
        assert busy < LOGIN_BOUND
        # The header timeout ends every one of them, however patiently they trickle.
        wait_until(slow.all_closed, timeout=HEADER_TIMEOUT + 15, what="the server closes slow-header clients")
    finally:
        slow.close()


def test_200_half_tls_handshakes_do_not_stop_a_login(web_tls: WebUi) -> None:
    assert web_tls.first_password
    half = Trickle(web_tls.port, SLOW_CLIENTS, HALF_CLIENT_HELLO, None)
    try:
        took = timed_login(web_tls, web_tls.first_password)
        print(f"TLS login: {took * 1000:.0f} ms with {SLOW_CLIENTS} half handshakes")
        assert took < LOGIN_BOUND
        wait_until(half.all_closed, timeout=HANDSHAKE_TIMEOUT + 15, what="the server closes half handshakes")
    finally:
        half.close()


def test_cookie_is_secure_and_hsts_is_sent_under_tls(web_tls: WebUi) -> None:
    with urllib.request.urlopen(web_tls.url + "/login", timeout=10, context=web_tls.ssl_context()) as resp:
        cookies = resp.headers.get_all("Set-Cookie") or []
        assert cookies and all("Secure" in c for c in cookies), cookies
        assert "max-age=" in (resp.headers.get("Strict-Transport-Security") or "")


def test_wallboard_streams_are_capped_and_do_not_stop_the_ui(tmp_path: Path) -> None:
    """One supervisor opening stream after stream (16 took the UI down): beyond the per-login
    cap they get a 429 with a reason, and the pages still answer while the streams run."""
    from appliance.store.db import Store
    from web import accounts
    from web.wallboard import STREAMS_PER_SESSION

    data = tmp_path / "data"
    data.mkdir()
    store = Store(data / "plateau.db")
    try:
        accounts.create_user(store, "sup", "violet-kettle-harbour", "supervisor", time.time(), must_change=False)
    finally:
        store.close()
    with WebUi(data) as web:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(web.url + "/login", timeout=10) as resp:
            m = re.search(r'name="csrf_token" value="([^"]+)"', resp.read().decode())
        assert m
        form = urllib.parse.urlencode({"username": "sup", "password": "violet-kettle-harbour",
                                       "csrf_token": m.group(1)}).encode()
        opener.open(web.url + "/login", data=form, timeout=10).close()
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        streams: list[socket.socket] = []
        statuses: list[bytes] = []
        try:
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", web.port), timeout=10)
                s.sendall(f"GET /wallboard/stream HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                statuses.append(head.split(b"\r\n", 1)[0])
                streams.append(s)
            opened = [h for h in statuses if b" 200 " in h]
            refused = [h for h in statuses if b" 429 " in h]
            assert len(opened) == STREAMS_PER_SESSION and len(refused) == 20 - STREAMS_PER_SESSION, statuses
            # The UI still answers, to this supervisor and to anyone logging in.
            start = time.monotonic()
            with opener.open(web.url + "/wallboard/snapshot", timeout=10) as resp:
                assert resp.status == 200
            with urllib.request.urlopen(web.url + "/login", timeout=10) as resp:
                assert resp.status == 200
            assert time.monotonic() - start < LOGIN_BOUND
        finally:
            for s in streams:
                s.close()
