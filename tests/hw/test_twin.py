"""The line-board twin answers commands as the firmware does (firmware/src/fxs.c, firmware/README.md)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw.frames import Ack, AckStatus, Cadence, CidMode, Ring, StopRing
from hw.link import BoardLink, BoardUp, LinkEvent, Received
from hw.sim.lineboard import FXS_IDLE, FXS_RINGING, LineBoardSim


class Acks:
    """The ACKs the host received, by acked seq; waitable."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.by_seq: dict[int, AckStatus] = {}
        self.cond = threading.Condition()

    def __call__(self, ev: LinkEvent) -> None:
        if isinstance(ev, BoardUp):
            self.up.set()
        elif isinstance(ev, Received) and isinstance(ev.frame.message, Ack):
            with self.cond:
                self.by_seq[ev.frame.message.acked_seq] = ev.frame.message.status
                self.cond.notify_all()

    def wait(self, seq: int | None, timeout: float = 3.0) -> AckStatus:
        assert seq is not None, "the command was not sent"
        with self.cond:
            if not self.cond.wait_for(lambda: seq in self.by_seq, timeout):
                raise AssertionError(f"no ACK for seq {seq} in {timeout}s")
            return self.by_seq[seq]


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[LineBoardSim, BoardLink, Acks]]:
    acks = Acks()
    with LineBoardSim(("fxs", "fxo"), link=tmp_path / "ttyACM0") as sim:
        lk = BoardLink(sim.path, acks).start()
        try:
            assert acks.up.wait(3.0), "the twin did not answer HELLO"
            yield sim, lk, acks
        finally:
            lk.close()


def test_repeated_ring_while_ringing_is_ok_and_keeps_the_cadence(
        board: tuple[LineBoardSim, BoardLink, Acks]) -> None:
    sim, lk, acks = board
    first = Ring(0, Cadence.FR, CidMode.ETSI_FSK, "0140000000", "Alice")
    assert acks.wait(lk.send(first)) == AckStatus.OK
    port = sim.ports[0]
    assert port.state == FXS_RINGING and port.ring == first
    started = port.ring_started
    assert started is not None
    time.sleep(0.05)  # a restarted cadence would get a later start time
    again = Ring(0, Cadence.UK, CidMode.DTMF, "0299999999", "")  # the host's retry, even if it differs
    assert acks.wait(lk.send(again)) == AckStatus.OK  # as the firmware: 0, not 2 (bad state)
    assert port.state == FXS_RINGING
    assert port.ring == first and port.ring_started == started  # cadence and caller ID not restarted
    assert lk.counters.nacks == 0


def test_ring_to_an_off_hook_phone_is_bad_state_and_after_stop_ring_rings_afresh(
        board: tuple[LineBoardSim, BoardLink, Acks]) -> None:
    sim, lk, acks = board
    sim.off_hook(0)
    assert acks.wait(lk.send(Ring(0, number="100"))) == AckStatus.BAD_STATE
    assert sim.ports[0].ring is None
    sim.on_hook(0)
    assert acks.wait(lk.send(Ring(0, number="101"))) == AckStatus.OK
    started = sim.ports[0].ring_started
    assert acks.wait(lk.send(StopRing(0))) == AckStatus.OK
    assert sim.ports[0].state == FXS_IDLE
    time.sleep(0.02)
    assert acks.wait(lk.send(Ring(0, number="102"))) == AckStatus.OK  # a new call: a new cadence
    assert sim.ports[0].ring == Ring(0, number="102")
    assert started is not None and sim.ports[0].ring_started is not None
    assert sim.ports[0].ring_started > started
    assert lk.counters.nacks == 1
