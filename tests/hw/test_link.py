"""BoardLink (the real driver) against the line-board twin on a pty."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hw.frames import (
    BOARD,
    Audio,
    CallerId,
    DChan,
    Dtmf,
    Hello,
    OffHookEvent,
    Ping,
    Status,
    Tone,
    ToneKind,
    encode_frame,
)
from hw.link import BoardGone, BoardLink, BoardRefused, BoardUp, LinkEvent, LinkState, Received
from hw.sim.lineboard import LineBoardSim


class Events:
    """What the link posted, waitable."""

    def __init__(self) -> None:
        self.items: list[LinkEvent] = []
        self.cond = threading.Condition()

    def __call__(self, ev: LinkEvent) -> None:
        with self.cond:
            self.items.append(ev)
            self.cond.notify_all()

    def wait(self, pred: Any, timeout: float = 5.0) -> LinkEvent:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.items:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no such event in {timeout}s: {[type(e).__name__ for e in self.items][-20:]}")
                self.cond.wait(left)

    def count(self, kind: type) -> int:
        with self.cond:
            return sum(isinstance(e, kind) for e in self.items)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[LineBoardSim]:
    with LineBoardSim(("fxs", "fxo"), link=tmp_path / "ttyACM0") as s:
        yield s


@pytest.fixture
def link(sim: LineBoardSim) -> Iterator[tuple[BoardLink, Events]]:
    events = Events()
    lk = BoardLink(sim.path, events).start()
    try:
        yield lk, events
    finally:
        lk.close()


def _wait(pred: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        time.sleep(0.02)


def test_handshake_ping_and_events(sim: LineBoardSim, link: tuple[BoardLink, Events]) -> None:
    lk, events = link
    up = events.wait(lambda e: isinstance(e, BoardUp), 3.0)
    assert isinstance(up, BoardUp) and up.caps.serial == "VB0001" and len(up.caps.ports) == 2
    assert isinstance(sim.commands(Hello)[0], Hello)
    _wait(lambda: len(sim.commands(Ping)) >= 2, 3.0)  # a PING a second
    assert lk.counters.missed_pongs == 0 and lk.is_up
    events.wait(lambda e: isinstance(e, Received) and isinstance(e.frame.message, Status), 2.0)
    sim.off_hook(0)
    events.wait(lambda e: isinstance(e, Received) and e.frame.message == OffHookEvent(0))
    events.wait(lambda e: isinstance(e, Received) and isinstance(e.frame.message, Audio), 1.0)
    seq = lk.send(Tone(0, ToneKind.DIAL))
    sim.wait_for(lambda: sim.ports[0].tone == ToneKind.DIAL, 2.0)
    assert seq is not None
    assert lk.counters.crc_errors == lk.counters.framing_errors == lk.counters.seq_gaps == 0


def test_corrupted_frames_are_counted_and_survived(sim: LineBoardSim, link: tuple[BoardLink, Events]) -> None:
    lk, events = link
    events.wait(lambda e: isinstance(e, BoardUp), 3.0)
    bad = bytearray(encode_frame(Dtmf(0, "5"), 99))
    bad[2] ^= 0x10
    sim.inject(bytes(bad))  # CRC error
    sim.inject(b"\x02\x05\x00")  # COBS says 1 byte then a zero: too short, framing error
    sim.inject(b"\x01" * 600 + b"\x00")  # no delimiter for too long
    sim.skip_seq(3)  # three frames "lost"
    sim.press(0, "7")
    events.wait(lambda e: isinstance(e, Received) and e.frame.message == Dtmf(0, "7", 100))
    assert lk.counters.crc_errors == 1
    assert lk.counters.framing_errors == 2
    assert lk.counters.seq_gaps >= 3
    assert lk.is_up  # garbage is not a reason to drop the board


def test_board_unplugged_then_plugged_back(sim: LineBoardSim, link: tuple[BoardLink, Events]) -> None:
    lk, events = link
    events.wait(lambda e: isinstance(e, BoardUp), 3.0)
    sim.unplug()
    events.wait(lambda e: isinstance(e, BoardGone), 2.0)
    assert lk.state == LinkState.CLOSED
    time.sleep(0.5)
    sim.plug()
    t0 = time.monotonic()
    _wait(lambda: events.count(BoardUp) == 2, 4.0)  # reopened within the 2 s retry, HELLO, CAPS
    assert time.monotonic() - t0 < 3.5
    assert lk.counters.opens == 2 and lk.counters.board_lost == 1
    _wait(lambda: len(sim.commands(Ping)) >= 1, 2.0)  # the new board is pinged


def test_hung_board_is_gone_after_three_missed_pongs_and_recovers(sim: LineBoardSim,
                                                                  link: tuple[BoardLink, Events]) -> None:
    lk, events = link
    events.wait(lambda e: isinstance(e, BoardUp), 3.0)
    sim.hung = True
    t0 = time.monotonic()
    events.wait(lambda e: isinstance(e, BoardGone), 6.0)
    assert 2.0 <= time.monotonic() - t0 <= 5.0
    assert lk.counters.missed_pongs == 3 and lk.state == LinkState.HANDSHAKE
    sim.hung = False  # the board comes back: the host's repeated HELLO gets CAPS again
    _wait(lambda: events.count(BoardUp) == 2, 5.0)


def test_other_protocol_version_is_refused(tmp_path: Path) -> None:
    events = Events()
    with LineBoardSim(("fxs",), link=tmp_path / "tty2", protocol_version=2) as sim:
        lk = BoardLink(sim.path, events).start()
        try:
            ev = events.wait(lambda e: isinstance(e, BoardRefused), 3.0)
            assert isinstance(ev, BoardRefused) and ev.protocol_version == 2
            sim.off_hook(0)
            time.sleep(1.2)
            assert lk.state == LinkState.REFUSED
            assert events.count(BoardUp) == 0 and events.count(Received) == 0  # its ports stay unused
            assert sim.commands(Ping) == []
        finally:
            lk.close()


def test_loop_url_and_missing_device(tmp_path: Path) -> None:
    """serial_for_url: loop:// echoes our HELLO (not CAPS, so no handshake); a missing path is retried."""
    events = Events()
    lk = BoardLink("loop://", events).start()
    try:
        _wait(lambda: lk.counters.frames_in >= 1, 2.0)  # our own HELLO came back and was decoded
        assert lk.state == LinkState.HANDSHAKE and lk.counters.crc_errors == 0
    finally:
        lk.close()
    missing = BoardLink(str(tmp_path / "nothing"), events, reopen_interval=0.1).start()
    try:
        _wait(lambda: "open" in missing.last_error, 2.0)
        assert missing.state == LinkState.CLOSED
    finally:
        missing.close()


def test_out_of_range_values_are_dropped_and_counted(sim: LineBoardSim, link: tuple[BoardLink, Events]) -> None:
    """Well-formed frames with a value out of range never reach the owner (hw.frames.check_ranges)."""
    lk, events = link
    events.wait(lambda e: isinstance(e, BoardUp), 3.0)
    sim.send(OffHookEvent(BOARD))  # a port event on the board's own address
    sim.send(Status((), port=1))  # a board-level frame on a port
    sim.send(OffHookEvent(5))  # a valid port number, but the board announced only 2 ports
    sim.send(Dtmf(0, "1", 65000))  # a 65 s key press
    sim.send(CallerId(1, "0612<script>"))
    sim.send(CallerId(1, "1" * 21))
    sim.send(DChan(0, b"\x00"))  # shorter than a LAPD address and control field
    sim.press(0, "7")
    events.wait(lambda e: isinstance(e, Received) and e.frame.message == Dtmf(0, "7", 100))
    assert lk.counters.range_errors == 7, lk.counters
    got = [e.frame.message for e in events.items if isinstance(e, Received)]
    assert not any(isinstance(m, OffHookEvent | CallerId | DChan) for m in got), got
    assert lk.is_up and lk.status()["counters"]["range_errors"] == 7


def test_reader_thread_that_dies_is_logged_restarted_and_rehellos(sim: LineBoardSim, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    events = Events()

    def on_event(ev: LinkEvent) -> None:
        if isinstance(ev, Received) and ev.frame.message == Dtmf(0, "9", 100):
            raise RuntimeError("handler bug on digit 9")
        events(ev)

    lk = BoardLink(sim.path, on_event).start()
    try:
        events.wait(lambda e: isinstance(e, BoardUp), 3.0)
        hellos = len(sim.commands(Hello))
        sim.press(0, "9")
        _wait(lambda: lk.health()[0].deaths == 1, 3.0)
        _wait(lambda: lk.health()[0].restarts == 1 and len(sim.commands(Hello)) > hellos, 3.0)
        rx = lk.health()[0]
        assert rx.alive and rx.last_error == "RuntimeError: handler bug on digit 9", rx
        assert "reader thread died" in caplog.text and "handler bug on digit 9" in caplog.text
        events.wait(lambda e: isinstance(e, BoardUp) and events.count(BoardUp) == 2, 3.0)  # re-HELLOed
        sim.press(0, "4")  # and the events flow again
        events.wait(lambda e: isinstance(e, Received) and e.frame.message == Dtmf(0, "4", 100))
        assert lk.is_up and [h.deaths for h in lk.health()] == [1, 0]
    finally:
        lk.close()
    assert not any(h.alive for h in lk.health())
