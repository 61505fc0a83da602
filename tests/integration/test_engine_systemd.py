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
