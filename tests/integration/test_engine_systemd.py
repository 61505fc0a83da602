"""Under systemd the engine reports READY, STATUS and watchdog pings on $NOTIFY_SOCKET."""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.peers.engine import Engine


def test_engine_notifies_ready_status_and_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # systemd's WatchdogSec=1: ping every 0.5 s
    eng = Engine(tmp_path / "engine")
    eng.start()
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and sum("WATCHDOG=1" in m for m in messages) < 3:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
    finally:
        eng.stop()
        sock.close()
    text = "\n".join(messages)
    assert "READY=1" in text
    assert "STATUS=" in text
    assert text.count("WATCHDOG=1") >= 3


def test_a_wedged_media_process_stops_the_watchdog_pings_until_it_is_replaced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGSTOP: the media process is alive but makes no progress. The supervisor's bounded ping
    gets no answer, the watchdog pings stop, the process is killed and replaced, and the pings
    resume; /v1/status says what happened."""
    import os
    import signal

    from tests.peers.polling import wait_until

    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")  # a ping every 0.5 s while healthy
    eng = Engine(tmp_path / "engine")
    pings: list[float] = []

    def drain(until: float) -> None:
        while time.monotonic() < until:
            try:
                if "WATCHDOG=1" in sock.recv(4096).decode():
                    pings.append(time.monotonic())
            except TimeoutError:
                continue

    try:
        with eng.running():
            drain(time.monotonic() + 1.5)
            assert len(pings) >= 2
            pid = eng.media_pid()
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
            drain(stopped_at + 6.0)
            after = [t - stopped_at for t in pings if t > stopped_at]
            gaps = [b - a for a, b in zip([0.0, *after], after, strict=False)]
            assert after and max(gaps) > 1.5, f"pings after SIGSTOP at {after}"  # withheld while wedged
            assert after[-1] > 4.0, f"pings did not resume: {after}"
            assert eng.media_pid() not in (None, pid)
            status = eng.api("GET", "/v1/status")[1]
            media = next(p for p in status["supervision"]["parts"] if p["name"] == "media")
            assert media["deaths"] == 1 and media["restarts"] == 1 and "SIGKILL" in media["last_error"]
            assert status["supervision"]["watchdog_withheld"] >= 1
            wait_until(lambda: "did not answer a ping" in eng.stderr_path.read_text(), what="the wedge logged")
    finally:
        sock.close()
