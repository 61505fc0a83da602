"""The host driver against the compiled firmware: `firmware/build/vboard` runs the real C state
machines, DTMF detector and FSK modulator on a pty, and hw.link.BoardLink talks to it."""
from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hw.frames import BusyTone, CallerId, Dtmf, OffhookCommand, OffHookEvent, OnHookEvent, Ring, RingStart
from hw.link import BoardLink, BoardUp, LinkEvent, Received

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


@pytest.fixture(scope="module")
def vboard_binary() -> Path:
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "vboard"], check=True, timeout=120)
    return FIRMWARE / "build" / "vboard"


class VBoard:
    """The virtual board process: commands on stdin, reports on stdout (firmware/README.md)."""

    def __init__(self, binary: Path) -> None:
        self.proc = subprocess.Popen([str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().split()
        assert first[0] == "PTY", first
        self.pty = first[1]
        self.reports: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.reports.put(line.strip())

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_report(self, prefix: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.reports.get(timeout=0.1)
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"vboard did not report {prefix!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.command("quit")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@pytest.fixture
def board(vboard_binary: Path) -> Iterator[tuple[VBoard, BoardLink, queue.Queue[LinkEvent]]]:
    vb = VBoard(vboard_binary)
    events: queue.Queue[LinkEvent] = queue.Queue()
    link = BoardLink(vb.pty, events.put).start()
    try:
        yield vb, link, events
    finally:
        link.close()
        vb.close()


def wait_event(events: queue.Queue[LinkEvent], kind: type, timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ev = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(ev, BoardUp) and kind is BoardUp:
            return ev
        if isinstance(ev, Received) and isinstance(ev.frame.message, kind):
            return ev.frame.message
    raise AssertionError(f"no {kind.__name__} from the board")


def test_handshake_hook_dtmf_and_caller_id_against_the_firmware(
        board: tuple[VBoard, BoardLink, queue.Queue[LinkEvent]]) -> None:
    vb, link, events = board
    up = wait_event(events, BoardUp)
    assert isinstance(up, BoardUp) and up.caps.protocol_version == 1 and len(up.caps.ports) == 2
    vb.command("hook 0 off")  # the analog phone is lifted
    assert isinstance(wait_event(events, OffHookEvent), OffHookEvent)
    vb.command("dtmf 0 5")  # real tones into the port's audio: the firmware's Goertzel detector hears them
    digit = wait_event(events, Dtmf)
    assert isinstance(digit, Dtmf) and digit.digit == "5"
    vb.command("hook 0 on")
    assert isinstance(wait_event(events, OnHookEvent), OnHookEvent)
    # An inbound ring on the FXO line with FSK caller ID, decoded by the firmware's demodulator.
    vb.command("ring 1 on")
    assert isinstance(wait_event(events, RingStart), RingStart)
    vb.command("ring 1 off")
    vb.command("cid 1 0612345678 Alice")
    cid = wait_event(events, CallerId, timeout=8.0)
    assert isinstance(cid, CallerId) and (cid.number, cid.name) == ("0612345678", "Alice")
    # The host rings the FXS phone with caller ID; the line simulator decodes the FSK it receives.
    link.send(Ring(0, number="0140000099", name="Plateau"))
    assert vb.wait_report("ringing 0 on")
    assert "0140000099" in vb.wait_report("cid 0", timeout=8.0)
    assert link.counters.crc_errors == 0 and link.counters.framing_errors == 0


def test_busy_tone_on_a_seized_fxo_line_against_the_firmware(
        board: tuple[VBoard, BoardLink, queue.Queue[LinkEvent]]) -> None:
    vb, link, events = board
    wait_event(events, BoardUp)
    link.send(OffhookCommand(1))  # seize the FXO line: the firmware listens for the far end's busy cadence
    assert vb.wait_report("offhook 1")
    vb.command("busy 1 FR")  # 440 Hz 0.5 s on / 0.5 s off from the simulated exchange
    busy = wait_event(events, BusyTone, timeout=4.0)
    assert isinstance(busy, BusyTone) and busy.port == 1
