"""The line-board audio relay (hw/relay.py): its one thread survives a board callback's bug."""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from appliance.media import rtp
from hw.relay import AudioRelay
from tests.peers.polling import wait_until


@pytest.fixture
def relay() -> Iterator[AudioRelay]:
    r = AudioRelay("127.0.0.1")
    try:
        yield r
    finally:
        r.stop()


def test_relay_thread_that_dies_is_logged_restarted_and_relays_again(
        relay: AudioRelay, caplog: pytest.LogCaptureFixture) -> None:
    got: list[bytes] = []

    def to_board(ulaw: bytes) -> None:
        if not got:
            got.append(b"")
            raise RuntimeError("board send bug")
        got.append(ulaw)

    leg = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    leg.bind(("127.0.0.1", 0))
    try:
        port = relay.open("leg-1", leg.getsockname(), to_board)
        for seq, fill in ((1, b"\x11"), (2, b"\x22")):
            leg.sendto(rtp.build(0, seq, seq * 160, 1234, fill * 160), ("127.0.0.1", port))
            if seq == 1:
                wait_until(lambda: relay.health().restarts == 1, 3.0, "relay thread restarted")
        wait_until(lambda: b"\x22" * 160 in got, 3.0, "the next packet relayed")
    finally:
        leg.close()
    health = relay.health()
    assert health.name == "hw-audio-relay" and health.alive and health.deaths == 1
    assert health.last_error == "RuntimeError: board send bug"
    assert "relay thread died" in caplog.text
