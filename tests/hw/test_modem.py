"""The V.253 voice-modem driver (hw/modem.py) against its twin (hw/sim/modem.py) over a pty."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from appliance.media.g711 import ulaw_decode
from hw.modem import (
    Answered,
    Audio,
    Busy,
    CallerId,
    Dtmf,
    Hangup,
    IllegalTransition,
    LineSignal,
    ModemDown,
    ModemEvent,
    ModemNotResponding,
    ModemReady,
    ModemState,
    PortLost,
    Ring,
    VoiceModem,
)
from hw.sim.modem import CONEXANT_VSM, USR_VSM, ModemTwin, ulaw_tone
from hw.v253 import (
    DleCode,
    Line,
    StreamEnd,
    UnsupportedModem,
    V253Parser,
    VoiceData,
    dle_shield,
    pick_ulaw,
)
from tests.audio import tone_ratio


class Events:
    """Collects the driver's events (posted on its control thread) for the test thread."""

    def __init__(self) -> None:
        self.items: list[ModemEvent] = []
        self._cv = threading.Condition()

    def __call__(self, ev: ModemEvent) -> None:
        with self._cv:
            self.items.append(ev)
            self._cv.notify_all()

    def of(self, kind: type) -> list:
        with self._cv:
            return [e for e in self.items if isinstance(e, kind)]

    def wait(self, kind: type, count: int = 1, timeout: float = 3.0,
             where: Callable[[object], bool] = lambda e: True) -> list:
        deadline = time.monotonic() + timeout
        with self._cv:
            while True:
                found = [e for e in self.items if isinstance(e, kind) and where(e)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout} s for {count} {kind.__name__}; got {self.items[-20:]}")
                self._cv.wait(left)


def _wait_until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    _wait_until(lambda: not [t for t in set(threading.enumerate()) - before if t.name.startswith("modem")], 3.0)


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[tuple[ModemTwin, VoiceModem, Events]]:
    opts = getattr(request, "param", {})
    twin = ModemTwin(**opts.get("twin", {})).start()
    events = Events()
    modem = VoiceModem(twin.url, events, **opts.get("modem", {}))
    try:
        modem.start().result(timeout=5)
        yield twin, modem, events
    finally:
        modem.close()
        twin.close()


def _answered_call(twin: ModemTwin, modem: VoiceModem, events: Events) -> None:
    n0 = len(events.of(Ring))
    twin.ring("5551234", "ALICE")
    events.wait(Ring, n0 + 1)
    modem.answer().result(timeout=3)
    assert modem.state is ModemState.VOICE_RX_TX


def _audio(events: Events, frames: int) -> bytes:
    return b"".join(a.data for a in events.wait(Audio, frames)[:frames])


# -- pure pieces: golden bytes --------------------------------------------------------------
def test_dle_shield_golden() -> None:
    assert dle_shield(b"\x00\x10\x7f\x10\x10\xff") == b"\x00\x10\x10\x7f\x10\x10\x10\x10\xff"
    assert dle_shield(b"") == b""


WIRE = b"\x7f\x10\x10\x01\x10\x35\x02\x10\x1a\x10\x62\x10\x03\r\nOK\r\n"
TOKENS = [VoiceData(b"\x7f\x10\x01"), DleCode("5"), VoiceData(b"\x02\x10\x10"), DleCode("b"), StreamEnd(),
          Line("OK")]


def _merge(tokens: list) -> list:
    out: list = []
    for t in tokens:
        if out and isinstance(t, VoiceData) and isinstance(out[-1], VoiceData):
            out[-1] = VoiceData(out[-1].data + t.data)
        else:
            out.append(t)
    return out


@pytest.mark.parametrize("split", range(len(WIRE) + 1))
def test_parser_golden_any_split(split: int) -> None:
    p = V253Parser()
    p.streaming = True
    toks = p.feed(WIRE[:split]) + p.feed(WIRE[split:])
    assert _merge(toks) == TOKENS
    assert not p.streaming


def test_parser_connect_starts_stream_in_same_chunk() -> None:
    p = V253Parser()
    assert p.feed(b"\r\nCONNECT\r\n") == [Line("CONNECT")]  # no stream expected: just a line
    p.expect_stream = True
    assert p.feed(b"\r\nCONNECT\r\n\x10\x10\xff\x10#") == [Line("CONNECT"), VoiceData(b"\x10\xff"), DleCode("#")]
    assert p.streaming


def test_pick_ulaw_by_name_not_number() -> None:
    assert pick_ulaw(USR_VSM) == 131  # 132 is A-law on USR modems
    assert pick_ulaw(CONEXANT_VSM) == 4
    assert pick_ulaw(["+VSM: 7,\"MU-LAW\",8,0,(8000),(0),(0)"]) == 7
    with pytest.raises(UnsupportedModem):
        pick_ulaw(['1,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)', '132,"ALAW",8,0,(8000),(0),(0)'])
    with pytest.raises(UnsupportedModem):
        pick_ulaw(['131,"ULAW",8,0,(7200),(0),(0)'])  # µ-law but not at 8 kHz


# -- driver against the twin ------------------------------------------------------------------
def test_init_sequence(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    assert twin.commands == ["ATZ", "ATE0", "AT+FCLASS=8", "AT+VCID=1", "AT+VSM=?", "AT+VSM=131,8000",
                             "AT+VTR=?", "AT+VLS=0"]
    assert events.of(ModemReady) == [ModemReady(131, True)]
    assert modem.state is ModemState.IDLE


@pytest.mark.parametrize("rig", [{"twin": {"vsm": CONEXANT_VSM}}], indirect=True)
def test_init_picks_listed_ulaw_code(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, _modem, events = rig
    assert "AT+VSM=4,8000" in twin.commands
    assert events.of(ModemReady) == [ModemReady(4, True)]


def test_modem_without_ulaw_is_refused() -> None:
    with ModemTwin(vsm=['132,"ALAW",8,0,(8000),(0),(0)']) as twin:
        events = Events()
        modem = VoiceModem(twin.url, events)
        try:
            with pytest.raises(UnsupportedModem):
                modem.start().result(timeout=5)
            assert modem.state is ModemState.OFFLINE
            assert isinstance(events.wait(ModemDown)[0].error, UnsupportedModem)
        finally:
            modem.close()


def test_inbound_call_dtmf_audio_and_far_end_hangup(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    twin.ring("5551234", "ALICE")
    assert events.wait(Ring)[0] == Ring(1)
    assert events.wait(CallerId)[0] == CallerId("5551234", "ALICE", "0101", "1200")
    assert modem.state is ModemState.RINGING
    events.wait(Ring, 2)  # keeps ringing until answered
    modem.answer().result(timeout=3)
    assert events.of(Answered) == [Answered(outbound=False)]
    assert twin.commands[-2:] == ["AT+VLS=1", "AT+VTR"]

    twin.send_dtmf("12#*")
    assert [d.digit for d in events.wait(Dtmf, 4)] == ["1", "2", "#", "*"]

    # audio from the line: a 1 kHz tone, 20 ms frames of µ-law
    twin.play(ulaw_tone(1000.0))
    n0 = len(events.of(Audio))
    frames = events.wait(Audio, n0 + 25)[n0 + 5:n0 + 25]  # skip blocks in flight before play()
    assert all(len(a.data) == 160 for a in frames)
    rx = ulaw_decode(b"".join(a.data for a in frames)).astype(np.float64)
    assert tone_ratio(rx, 8000, 1000.0) > 0.9

    # audio to the line: a 400 Hz tone, paced like the media engine
    tone = ulaw_tone(400.0, 0.5)
    for i in range(0, len(tone), 160):
        assert modem.send_audio(tone[i:i + 160])
    _wait_until(lambda: len(twin.received_audio()) >= len(tone))
    assert twin.received_audio() == tone
    assert tone_ratio(ulaw_decode(twin.received_audio()).astype(np.float64), 8000, 400.0) > 0.9

    twin.far_end_hangup()
    hang = events.wait(Hangup)[0]
    assert hang == Hangup("busy tone", remote=True)
    assert events.of(Busy)
    assert modem.state is ModemState.IDLE
    assert twin.commands[-2:] == ["ATH", "AT+VLS=0"]
    assert twin.wire_from_dte().endswith(b"\x10^")  # <DLE>^ closed the duplex stream
    assert not twin.off_hook and twin.mode == "command"
    assert not modem.send_audio(b"\xff" * 160)  # no stream: dropped, not written as commands


def test_outbound_dial_answered_then_local_hangup(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    modem.dial("0123456789").result(timeout=3)
    assert modem.state is ModemState.DIALING
    assert events.wait(Answered)[0] == Answered(outbound=True)
    assert twin.dialed == ["0123456789"]
    assert modem.state is ModemState.VOICE_RX_TX
    twin.send_dtmf("9")
    assert events.wait(Dtmf)[0] == Dtmf("9")
    modem.hangup().result(timeout=3)
    assert events.of(Hangup) == [Hangup("local hangup", remote=False)]
    assert modem.state is ModemState.IDLE and not twin.off_hook


def test_outbound_dial_busy(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    twin.dial_outcome = "BUSY"
    modem.dial("5550000").result(timeout=3)
    assert events.wait(Hangup)[0] == Hangup("busy", remote=True)
    assert events.of(Busy) and not events.of(Answered)
    assert modem.state is ModemState.IDLE


def test_requests_that_do_not_fit_the_state(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    _twin, modem, _events = rig
    with pytest.raises(IllegalTransition):
        modem.answer().result(timeout=3)  # nothing is ringing
    with pytest.raises(ValueError):
        modem.dial("123;ATZ")  # the dial string cannot smuggle commands
    modem.hangup().result(timeout=3)  # hanging up an idle line is harmless
    assert modem.state is ModemState.IDLE


def test_dle_escaping_both_ways(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    _answered_call(twin, modem, events)
    pattern = bytes([0x10, 0xFF, 0x10, 0x10, 0x7F, 0x03, 0x5E, 0x21]) * 20  # one 160-byte block
    twin.play(pattern)
    n0 = len(events.of(Audio))
    frames = [a.data for a in events.wait(Audio, n0 + 10)[n0 + 5:n0 + 10]]
    assert frames == [pattern] * 5

    wire0 = len(twin.wire_from_dte())
    modem.send_audio(pattern)
    _wait_until(lambda: len(twin.wire_from_dte()) >= wire0 + 220)
    golden = bytes([0x10, 0x10, 0xFF, 0x10, 0x10, 0x10, 0x10, 0x7F, 0x03, 0x5E, 0x21]) * 20
    assert twin.wire_from_dte()[wire0:] == golden
    assert twin.received_audio() == pattern


def test_malformed_lines_and_unknown_codes_are_dropped_and_counted(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    twin.inject(b"\r\n+XYZ: 1,2\r\nHELLO WORLD\r\n\x00\xff\xfe garbage\r\nOK\r\nNO CARRIER\r\n")  # 1: not ASCII
    twin.inject(b"x" * 5000)  # 2: a line that never ends (counted at its end)
    twin.inject(b"\r\nNMBR\r\nDATE=\r\n\x10z\r\n")  # broken caller ID; 3: an unknown DLE code
    twin.inject(b"NMBR = 0612<script>\r\nNMBR = " + b"1" * 21 + b"\r\nNAME = " + b"N" * 51 + b"\r\n")  # 4, 5, 6
    _wait_until(lambda: modem.malformed == 6)
    assert "caller-ID name of 51" in modem.last_malformed
    assert modem.state is ModemState.IDLE
    _answered_call(twin, modem, events)  # the line still works
    twin.send_event("Z")  # 7: not a V.253 event code
    twin.send_event("5")
    assert events.wait(Dtmf)[0] == Dtmf("5")
    assert modem.malformed == 7 and "0x5a" in modem.last_malformed
    assert not events.of(LineSignal)  # nothing dropped reached the owner; only the real call's caller ID did
    assert [c.number for c in events.of(CallerId)] == ["5551234"]
    assert modem.state is ModemState.VOICE_RX_TX
    assert not events.of(ModemDown)


@pytest.mark.parametrize("rig", [{"modem": {"keepalive_interval": 0.3}}], indirect=True)
def test_hung_modem_detected_and_reinitialised(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    t0 = time.monotonic()
    twin.hang()
    down = events.wait(ModemDown, timeout=4)[0]
    t_down = time.monotonic()
    assert isinstance(down.error, ModemNotResponding)
    assert t_down - t0 < 0.3 + 2.0 + 0.5  # keepalive, then no OK within 2 s
    assert modem.state is ModemState.OFFLINE
    twin.unhang()
    events.wait(ModemReady, 2, timeout=7)
    t_up = time.monotonic()
    assert 4.5 < t_up - t_down < 6.5  # re-initialised on the 5 s retry
    assert modem.state is ModemState.IDLE
    assert twin.commands[-8:][0] == "ATZ"


@pytest.mark.parametrize("rig", [{"modem": {"reinit_interval": 0.5}}], indirect=True)
def test_vanished_port_mid_call_is_reopened(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    _answered_call(twin, modem, events)
    twin.unplug()
    assert isinstance(events.wait(ModemDown)[0].error, PortLost)
    assert events.wait(Hangup)[0].reason.startswith("modem failure")
    time.sleep(1.2)  # a few failed re-opens: the path is gone
    assert modem.state is ModemState.OFFLINE and len(events.of(ModemDown)) == 1
    twin.replug()
    events.wait(ModemReady, 2, timeout=3)
    assert modem.state is ModemState.IDLE
    _answered_call(twin, modem, events)


@pytest.mark.parametrize("rig", [{"modem": {"ring_timeout": 1.0}}], indirect=True)
def test_caller_abandons_while_ringing(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    twin.ring("5551234")  # number only, no name
    assert events.wait(CallerId)[0] == CallerId("5551234", "", "0101", "1200")
    twin.stop_ringing()
    assert events.wait(Hangup, timeout=3)[0] == Hangup("caller abandoned", remote=True)
    assert modem.state is ModemState.IDLE


@pytest.mark.parametrize("rig", [{"twin": {"duplex": False}}], indirect=True)
def test_half_duplex_modem_receives_with_vrx(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    assert events.of(ModemReady) == [ModemReady(131, False)]
    _answered_call(twin, modem, events)
    assert twin.commands[-1] == "AT+VRX"
    twin.send_dtmf("7")
    assert events.wait(Dtmf)[0] == Dtmf("7")
    assert not modem.send_audio(b"\xff" * 160)  # no transmit path while receiving
    modem.hangup().result(timeout=3)
    assert twin.wire_from_dte().endswith(b"\x10!")  # <DLE>! aborts +VRX
    assert modem.state is ModemState.IDLE


@pytest.mark.parametrize("rig", [{"modem": {"reinit_interval": 0.5}}], indirect=True)
def test_modem_hanging_mid_call_ends_the_call(rig: tuple[ModemTwin, VoiceModem, Events]) -> None:
    twin, modem, events = rig
    _answered_call(twin, modem, events)
    t0 = time.monotonic()
    twin.hang()  # the voice stream stops: no bytes for 2 s
    assert isinstance(events.wait(ModemDown, timeout=4)[0].error, ModemNotResponding)
    assert 1.8 < time.monotonic() - t0 < 3.0
    assert events.of(Hangup)[0].reason.startswith("modem failure")
    twin.unhang()
    events.wait(ModemReady, 2, timeout=4)
    assert modem.state is ModemState.IDLE


# -- supervision: each thread's death is logged, counted and recovered ----------------------
def _raise_once(real: Callable[..., Any], error: str) -> Callable[..., Any]:
    fired: list[bool] = []

    def wrapper(*args: Any) -> Any:
        if not fired:
            fired.append(True)
            raise RuntimeError(error)
        return real(*args)
    return wrapper


@pytest.mark.parametrize("rig", [{"modem": {"reinit_interval": 0.5}}], indirect=True)
def test_control_thread_death_in_a_call_is_logged_and_the_line_comes_back(
        rig: tuple[ModemTwin, VoiceModem, Events], caplog: pytest.LogCaptureFixture) -> None:
    twin, modem, events = rig
    _answered_call(twin, modem, events)
    modem._on_dle = _raise_once(modem._on_dle, "event handler bug")  # type: ignore[method-assign]
    twin.send_event("5")
    assert events.wait(Hangup)[0].reason.startswith("modem failure: control thread died")
    events.wait(ModemReady, 2, timeout=3)  # initialised again
    ctrl = modem.health()[0]
    assert ctrl.alive and ctrl.deaths == 1 and ctrl.restarts == 1, ctrl
    assert ctrl.last_error == "RuntimeError: event handler bug"
    assert "control thread died" in caplog.text and "event handler bug" in caplog.text
    _answered_call(twin, modem, events)  # a call works again
    twin.send_event("7")
    assert Dtmf("7") in events.wait(Dtmf)


@pytest.mark.parametrize("rig", [{"modem": {"reinit_interval": 0.5}}], indirect=True)
def test_reader_thread_death_reopens_the_port_and_the_line_comes_back(
        rig: tuple[ModemTwin, VoiceModem, Events], caplog: pytest.LogCaptureFixture) -> None:
    twin, modem, events = rig
    modem._route = _raise_once(modem._route, "token router bug")  # type: ignore[method-assign]
    twin.ring("5551234", "ALICE")  # the RING line kills the reader
    _wait_until(lambda: modem.health()[1].deaths == 1)
    events.wait(ModemReady, 2, timeout=4)  # the port re-opened with a new reader
    reader = modem.health()[1]
    assert reader.alive and reader.restarts == 1 and reader.last_error == "RuntimeError: token router bug"
    assert "reader thread died" in caplog.text
    _answered_call(twin, modem, events)
    assert all(h.alive for h in modem.health())
