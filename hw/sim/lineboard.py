"""A software twin of the line board: the protocol of hw/PROTOCOL.md on a pty, lines driven by tests.

The twin answers HELLO with CAPS, PING with PONG and every command with ACK, sends STATUS every
second and on change, and AUDIO every 20 ms for each active port (off-hook FXS, seized FXO):
a sine the test chooses, or silence. It records the AUDIO it receives per port so a test can
Goertzel it. Tests act as the phone or the carrier: `off_hook`, `press` (DTMF), `flash`,
`ring_in` with caller ID, `polarity`, `busy_tone`.

A BRI port's line side is the network: `nt[port]` is a libpri in NT mode (`SimBri`) whose LAPD
frames travel as DCHAN frames, so a test places calls from the network and sees, answers or
refuses the calls the PBX places. The line's A-law (EuroISDN) is converted to and from the
link's µ-law, as the board does. A host whose HELLO asks for BAUDIO (features bit 0) gets CAPS
bit 2 on each BRI port and both B channels as BAUDIO, each B channel with an active call sending
its own tone (`play(port, freq, b=...)`) and recording what the host sends it
(`recorded(port, b=...)`); otherwise (a v1 host, or `two_b=False`: an older board) the B
channel of the active call flows as AUDIO, as before.

`path` is a stable symlink to the pty (like /dev/serial/by-id/...): `unplug` closes the pty
(the device vanishes), `plug` makes a new one behind the same symlink.
"""
from __future__ import annotations

import contextlib
import math
import os
import select
import termios
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from appliance.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from hw import libpri
from hw.frames import (
    AUDIO_BYTES,
    B_CHANNELS,
    CAPS_AUDIO_ON_LINK,
    CAPS_TWO_B,
    HOST_BAUDIO,
    PROTOCOL_VERSION,
    Ack,
    AckStatus,
    Audio,
    BAudio,
    BusyTone,
    CallerId,
    Caps,
    DChan,
    Deframer,
    Dial,
    Dtmf,
    Flash,
    Frame,
    FrameError,
    Hello,
    Message,
    OffHookEvent,
    OffhookCommand,
    OnHookEvent,
    OnhookCommand,
    Ping,
    Polarity,
    Pong,
    PortCaps,
    PortKind,
    PortStatus,
    Ring,
    RingStart,
    RingStop,
    SetGain,
    Status,
    StopRing,
    Tone,
    ToneKind,
    encode_frame,
)

FXS_IDLE, FXS_OFFHOOK, FXS_RINGING = 0, 1, 2
FXO_IDLE, FXO_RINGING, FXO_OFFHOOK = 0, 1, 2
BRI_IDLE, BRI_ACTIVE = 0, 1  # STATUS of a BRI port: a call's B channel is through-connected or not
# With BAUDIO, STATUS of a BRI port is a bit mask of the through-connected B channels: bit 0 B1, bit 1 B2.
FRAME_S = 0.020
RATE = 8000


@dataclass
class SimB:
    """One B channel of a BRI port: what the network sends on it, and what the host sent it."""

    tx_freq: float | None = None
    tx_amplitude: int = 8000
    tx_own: bool = False  # False: it plays the port's tone (`play` without `b`)
    tx_phase: float = 0.0
    rx: list[bytes] = field(default_factory=list)


@dataclass
class SimPort:
    """One simulated line: its state as STATUS reports it, and its audio."""

    index: int
    kind: PortKind
    state: int = 0
    tone: ToneKind = ToneKind.OFF
    ring: Ring | None = None  # the RING that started the current ringing (FXS), with its caller ID
    ring_started: float | None = None  # monotonic time the cadence started (firmware's ring_start)
    dialed: str = ""  # digits DIALled on this FXO line
    gain: tuple[int, int] = (0, 0)
    line: int = 480  # FXO: 48.0 V idle line; FXS: loop current in 0.1 mA
    alarms: int = 0
    tx_freq: float | None = None
    tx_amplitude: int = 8000
    tx_phase: float = 0.0
    rx: list[bytes] = field(default_factory=list)  # every AUDIO (and BAUDIO, any B channel) from the host
    b: dict[int, SimB] = field(default_factory=lambda: {b: SimB() for b in B_CHANNELS})
    b_active: tuple[int, ...] = ()  # BRI: the B channels whose call is active

    @property
    def active(self) -> bool:
        """Audio flows on off-hook FXS and seized FXO ports, and on BRI ports with an active call."""
        if self.kind == PortKind.BRI:
            return self.state != BRI_IDLE
        return self.state == (FXS_OFFHOOK if self.kind == PortKind.FXS else FXO_OFFHOOK)


@dataclass
class NtCall:
    """A call as the network side of a BRI sees it."""

    handle: int  # libpri's call pointer on the NT side
    direction: str  # "to-pbx" (the network placed it) or "from-pbx" (the PBX's SETUP)
    calling: str
    called: str
    channel: int  # the B channel (1 or 2; 0 offered with none: both were busy)
    state: str = "setup"  # setup, proceeding, alerting, active, cleared
    cause: int | None = None  # Q.850 cause once cleared (ours or theirs)


class SimBri:
    """The network (NT) side of one BRI port of the twin: libpri in NT mode, frames as DCHAN.

    Thread-safe: the twin's reader feeds it, its tick runs the timers, the test places and
    answers calls. Every change wakes `LineBoardSim.wait_for`.
    """

    def __init__(self, sim: LineBoardSim, port: int) -> None:
        self.sim = sim
        self.port = port
        self.link_up = False
        self.calls: list[NtCall] = []
        self.events: list[libpri.PriEvent] = []
        self._lock = threading.RLock()
        self.pri = libpri.Pri(libpri.Node.NETWORK, self._send, ptp=True, name=f"twin-nt{port}")

    def _send(self, lapd: bytes) -> None:
        self.sim.send(DChan(self.port, lapd))

    def _call(self, handle: int) -> NtCall | None:
        return next((c for c in self.calls if c.handle == handle and c.state != "cleared"), None)

    def _free_b(self) -> int:
        """A B channel no live call holds, or 0 when both are busy."""
        used = {c.channel for c in self.calls if c.state != "cleared"}
        return next((b for b in B_CHANNELS if b not in used), 0)

    def _took(self, events: list[libpri.PriEvent]) -> None:
        """Act on the NT's events as the exchange's upper layer would (under the lock)."""
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, libpri.DchanUp):
                self.link_up = True
            elif isinstance(ev, libpri.DchanDown):
                self.link_up = False
            elif isinstance(ev, libpri.Ring):
                self.calls.append(NtCall(ev.call, "from-pbx", ev.calling_number, ev.called_number, self._free_b()))
            elif isinstance(ev, (libpri.Answer, libpri.Ringing, libpri.Proceeding)):
                call = self._call(ev.call)
                if call is not None and call.state != "active":
                    call.state = ("active" if isinstance(ev, libpri.Answer)
                                  else "alerting" if isinstance(ev, libpri.Ringing) else call.state)
            elif isinstance(ev, libpri.Hangup):
                call = self._call(ev.call)
                if call is not None:
                    call.state, call.cause = "cleared", ev.cause
                if ev.kind in (libpri.EventType.HANGUP_REQ, libpri.EventType.HANGUP):
                    # DISCONNECT received: send RELEASE; RELEASE received: free the record (RELEASE COMPLETE).
                    self._took(self.pri.hangup(ev.call, ev.cause))
        active = tuple(sorted({c.channel for c in self.calls if c.state == "active" and c.channel}))
        p = self.sim.ports[self.port]
        state = sum(1 << (b - 1) for b in active) if self.sim.baudio else (BRI_ACTIVE if active else BRI_IDLE)
        p.b_active = active
        if p.state != state:
            p.state = state
            self.sim._status_due = True

    def _run(self, fn: Callable[[], list[libpri.PriEvent]]) -> None:
        with self._lock:
            self._took(fn())
        with self.sim._cond:  # not under our lock: wait_for predicates read us holding _cond
            self.sim._cond.notify_all()

    def feed(self, lapd: bytes) -> None:
        self._run(lambda: self.pri.feed(lapd))

    def tick(self) -> None:
        due = self.pri.next_timer()
        if due is not None and due <= time.time():
            self._run(self.pri.run_timers)

    # -- the network's actions (test thread) ----------------------------------------------------
    def place_call(self, called: str, calling: str, name: str = "") -> NtCall:
        """SETUP towards the PBX on a free B channel (exclusive: the network chose it).

        With both B channels busy the SETUP names none (a waiting call, Q.931 5.2.3.1 c).
        """
        with self._lock:
            b = self._free_b()
            handle, events = self.pri.setup(called, calling, name, channel=b or -1, exclusive=bool(b))
            call = NtCall(handle, "to-pbx", calling, called, b)
            self.calls.append(call)
        self._run(lambda: events)
        return call

    def proceeding(self, call: NtCall) -> None:
        self._run(lambda: self._mark(call, "proceeding", self.pri.proceeding(call.handle, call.channel)))

    def alert(self, call: NtCall) -> None:
        self._run(lambda: self._mark(call, "alerting", self.pri.acknowledge(call.handle, call.channel)))

    def answer(self, call: NtCall) -> None:
        self._run(lambda: self._mark(call, "active", self.pri.answer(call.handle, call.channel)))

    def hangup(self, call: NtCall, cause: int) -> None:
        """Clear (or refuse) with a Q.850 cause: RELEASE COMPLETE, DISCONNECT or RELEASE as the state needs."""
        self._run(lambda: self._mark(call, "cleared", self.pri.hangup(call.handle, cause), cause))

    @staticmethod
    def _mark(call: NtCall, state: str, events: list[libpri.PriEvent],
              cause: int | None = None) -> list[libpri.PriEvent]:
        if call.state != "cleared":
            call.state = state
            if cause is not None:
                call.cause = cause
        return events

    def from_pbx(self) -> list[NtCall]:
        """The calls the PBX placed (SETUPs received), oldest first."""
        return [c for c in list(self.calls) if c.direction == "from-pbx"]

    def close(self) -> None:
        with self._lock:
            self.pri.close()


class LineBoardSim:
    """The twin (see module docstring). Use as a context manager."""

    def __init__(self, kinds: Sequence[str] = ("fxs", "fxo"), link: str | Path | None = None,
                 serial: str = "VB0001", protocol_version: int = PROTOCOL_VERSION,
                 firmware: tuple[int, int] = (1, 0), two_b: bool = True) -> None:
        self.ports = [SimPort(i, PortKind[k.upper()]) for i, k in enumerate(kinds)]
        for p in self.ports:
            p.line = 480 if p.kind == PortKind.FXO else 0  # 48.0 V on an idle analog line
        self.link = Path(link) if link is not None else None
        self.serial = serial
        self.protocol_version = protocol_version
        self.firmware = firmware
        self.two_b = two_b  # False: an older board, one B channel (one call) per BRI port as AUDIO
        self.baudio = False  # both B channels as BAUDIO: two_b and the last HELLO asked for it
        self.received: list[Frame] = []  # every frame from the host, AUDIO excepted
        self.errors: list[FrameError] = []
        self.hung = False  # True: a hung firmware, answers nothing
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""
        self._seq = 0
        self._tx_lock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._status_due = True
        self.nt = {p.index: SimBri(self, p.index) for p in self.ports if p.kind == PortKind.BRI}

    # -- lifetime ------------------------------------------------------------------------------------
    def start(self) -> LineBoardSim:
        self.plug()
        for target, name in ((self._read_loop, "sim-rx"), (self._tick_loop, "sim-tick")):
            t = threading.Thread(target=target, name=f"lineboard-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(3.0)
        for nt in self.nt.values():
            nt.close()
        self.unplug()

    def __enter__(self) -> LineBoardSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> str:
        """What the host opens: the symlink if one was asked for, else the pty itself."""
        return str(self.link) if self.link is not None else self._slave_name

    def plug(self) -> None:
        """Attach (again): a new pty appears behind `path`."""
        master, slave = os.openpty()
        tty.setraw(slave, termios.TCSANOW)  # no echo, no line discipline: a byte pipe like CDC-ACM
        os.set_blocking(master, False)
        self._slave_name = os.ttyname(slave)
        self._seq = 0
        with self._tx_lock:
            self._master, self._slave = master, slave
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".new")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self._slave_name)
            tmp.replace(self.link)

    def unplug(self) -> None:
        """Detach: the pty disappears, as a USB device pulled out."""
        with self._tx_lock:
            master, slave = self._master, self._slave
            self._master = self._slave = None
        if self.link is not None:
            self.link.unlink(missing_ok=True)
        for fd in (master, slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- sending -------------------------------------------------------------------------------------
    def send(self, msg: Message) -> None:
        """Send one frame to the host (dropped while unplugged or when the host does not read)."""
        with self._tx_lock:
            if self._master is None:
                return
            data = encode_frame(msg, self._seq)
            self._seq = (self._seq + 1) & 0xFF
            self._write(data)

    def inject(self, raw: bytes) -> None:
        """Write raw bytes to the host: corrupted frames, noise."""
        with self._tx_lock:
            if self._master is not None:
                self._write(raw)

    def skip_seq(self, n: int) -> None:
        """Pretend `n` frames were lost on the way (the host should count a gap)."""
        with self._tx_lock:
            self._seq = (self._seq + n) & 0xFF

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._master, data)  # a full pty buffer: the frame is lost, as on a stalled USB pipe

    # -- the phone on an FXS port --------------------------------------------------------------------
    def off_hook(self, port: int) -> None:
        p = self.ports[port]
        p.state = FXS_OFFHOOK
        p.tone = ToneKind.OFF
        self.send(OffHookEvent(port))
        self._status_due = True

    def on_hook(self, port: int) -> None:
        p = self.ports[port]
        p.state = FXS_IDLE
        p.tone = ToneKind.OFF
        self.send(OnHookEvent(port))
        self._status_due = True

    def flash(self, port: int) -> None:
        self.send(Flash(port))

    def press(self, port: int, digits: str, duration_ms: int = 100, gap_s: float = 0.0) -> None:
        """Key digits: one DTMF event each (sent at the end of the digit, as the board does)."""
        for d in digits:
            self.send(Dtmf(port, d, duration_ms))
            if gap_s:
                time.sleep(gap_s)

    # -- the carrier on an FXO port --------------------------------------------------------------------
    def ring_in(self, port: int, number: str, name: str = "") -> None:
        """An inbound call: ring voltage, then the FSK caller ID of the first silence."""
        self.ports[port].state = FXO_RINGING
        self.send(RingStart(port))
        if number or name:
            self.send(CallerId(port, number, name))
        self._status_due = True

    def ring_stop(self, port: int) -> None:
        """The caller gave up before the line was seized."""
        self.ports[port].state = FXO_IDLE
        self.send(RingStop(port))
        self._status_due = True

    def polarity(self, port: int, reversed_: bool) -> None:
        self.send(Polarity(port, reversed_))

    def busy_tone(self, port: int) -> None:
        self.send(BusyTone(port))

    # -- audio -----------------------------------------------------------------------------------
    def play(self, port: int, freq: float | None, amplitude: int = 8000, b: int | None = None) -> None:
        """What the phone (or line) sends from now on: a sine of `freq` Hz, or silence (None).

        `b` (BRI with BAUDIO): on that B channel only; without it, on the port (every B channel
        that has no tone of its own).
        """
        p = self.ports[port]
        if b is None:
            p.tx_freq, p.tx_amplitude = freq, amplitude
            for sb in p.b.values():
                sb.tx_own = False
        else:
            sb = p.b[b]
            sb.tx_freq, sb.tx_amplitude, sb.tx_own = freq, amplitude, True

    def recorded(self, port: int, b: int | None = None) -> np.ndarray:
        """The audio received from the host for `port` (or only its B channel `b`), decoded to int16 samples."""
        with self._cond:
            data = b"".join(self.ports[port].rx if b is None else self.ports[port].b[b].rx)
        pcm = ulaw_decode(data).astype(np.int16)
        if self.ports[port].kind == PortKind.BRI:
            pcm = alaw_decode(alaw_encode(pcm)).astype(np.int16)  # the board re-encodes for the A-law line
        return pcm

    def clear_recorded(self, port: int) -> None:
        with self._cond:
            self.ports[port].rx.clear()
            for sb in self.ports[port].b.values():
                sb.rx.clear()

    def wait_for(self, predicate: Callable[[], object], timeout: float = 5.0) -> object:
        """Wait until `predicate()` is truthy (it is re-checked on every frame); returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"twin: condition not met in {timeout}s; got {self.commands()[-10:]}")
                self._cond.wait(min(left, 0.1))

    def tones(self, port: int) -> list[ToneKind]:
        """Every TONE the host asked `port` to play, in order."""
        return [m.tone for m in self.commands(Tone, port) if isinstance(m, Tone)]

    def commands(self, kind: type | None = None, port: int | None = None) -> list[Message]:
        """Messages received from the host so far (AUDIO excepted)."""
        with self._cond:
            return [f.message for f in self.received
                    if (kind is None or isinstance(f.message, kind))
                    and (port is None or f.message.port == port)]

    # -- board firmware ------------------------------------------------------------------------
    def _read_loop(self) -> None:
        deframer = Deframer()
        fd_seen: int | None = None
        while not self._stop.is_set():
            fd = self._master
            if fd is None:
                time.sleep(0.02)
                continue
            if fd != fd_seen:
                deframer, fd_seen = Deframer(), fd
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(fd, 4096)
            except (OSError, ValueError):
                time.sleep(0.02)  # unplugged under us, or no reader on the other side yet
                continue
            for item in deframer.feed(data):
                if isinstance(item, FrameError):
                    self.errors.append(item)
                elif not self.hung:
                    self._handle(item)

    def _handle(self, frame: Frame) -> None:
        msg = frame.message
        if isinstance(msg, Audio):
            with self._cond:
                if 0 <= msg.port < len(self.ports):
                    self.ports[msg.port].rx.append(msg.ulaw)
            return
        if isinstance(msg, BAudio):
            with self._cond:
                if 0 <= msg.port < len(self.ports) and self.ports[msg.port].kind == PortKind.BRI and self.baudio:
                    self.ports[msg.port].rx.append(msg.ulaw)
                    self.ports[msg.port].b[msg.b_channel].rx.append(msg.ulaw)
            return
        with self._cond:
            self.received.append(frame)
            self._cond.notify_all()
        if isinstance(msg, DChan):
            nt = self.nt.get(msg.port)
            if nt is not None:
                nt.feed(msg.lapd)
        elif isinstance(msg, Hello):
            # The host's features byte chooses, per HELLO, how BRI B channels travel (hw/PROTOCOL.md).
            self.baudio = self.two_b and bool(msg.features & HOST_BAUDIO)
            two_b = CAPS_TWO_B if self.baudio else 0
            caps = Caps(self.protocol_version, self.firmware[0], self.firmware[1],
                        tuple(PortCaps(p.kind, CAPS_AUDIO_ON_LINK | (two_b if p.kind == PortKind.BRI else 0))
                              for p in self.ports), self.serial)
            self.send(caps)
            self._status_due = True
        elif isinstance(msg, Ping):
            self.send(Pong(msg.token))
        elif isinstance(msg, (Ring, StopRing, OffhookCommand, OnhookCommand, Dial, SetGain, Tone)):
            status = self._command(msg)
            self.send(Ack(frame.seq, status))
            with self._cond:
                self._cond.notify_all()

    def _command(self, msg: Message) -> AckStatus:
        if not 0 <= msg.port < len(self.ports):
            return AckStatus.BAD_PORT
        p = self.ports[msg.port]
        fxs = p.kind == PortKind.FXS
        if isinstance(msg, SetGain):
            p.gain = (msg.tx_db, msg.rx_db)
            return AckStatus.OK
        if p.kind == PortKind.BRI:
            return AckStatus.UNSUPPORTED  # a BRI port is driven by its D channel only
        if isinstance(msg, (Ring, StopRing, Tone)) and not fxs:
            return AckStatus.UNSUPPORTED
        if isinstance(msg, (OffhookCommand, OnhookCommand, Dial)) and fxs:
            return AckStatus.UNSUPPORTED
        if isinstance(msg, Ring):
            if p.state == FXS_RINGING:
                # A repeated RING (its ACK was lost) changes nothing: ACK 0, the cadence and caller ID
                # of the first one go on (firmware/src/fxs.c fxs_ring; PROTOCOL.md: commands are idempotent).
                return AckStatus.OK
            if p.state != FXS_IDLE:
                return AckStatus.BAD_STATE
            p.state, p.ring, p.ring_started = FXS_RINGING, msg, time.monotonic()
        elif isinstance(msg, StopRing):
            if p.state == FXS_RINGING:
                p.state = FXS_IDLE
        elif isinstance(msg, Tone):
            p.tone = msg.tone
        elif isinstance(msg, OffhookCommand):
            p.state = FXO_OFFHOOK
        elif isinstance(msg, OnhookCommand):
            p.state = FXO_IDLE
            p.dialed = ""
        elif isinstance(msg, Dial):
            if p.state != FXO_OFFHOOK:
                return AckStatus.BAD_STATE
            p.dialed += msg.digits
        self._status_due = True
        return AckStatus.OK

    def answer_ring(self, port: int) -> None:
        """The phone on a ringing FXS port is lifted (the board stops ringing, reports OFF_HOOK)."""
        self.off_hook(port)

    def _tick_loop(self) -> None:
        next_at = time.monotonic()
        next_status = next_at
        while not self._stop.is_set():
            next_at += FRAME_S
            if not self.hung and self._master is not None:
                for nt in self.nt.values():
                    nt.tick()
                for p in self.ports:
                    if p.kind == PortKind.BRI and self.baudio:
                        for b in p.b_active:
                            self.send(BAudio(p.index, b, self._samples(p, p.b[b])))
                    elif p.active:
                        self.send(Audio(p.index, self._samples(p)))
                now = time.monotonic()
                if self._status_due or now >= next_status:
                    self._status_due = False
                    next_status = now + 1.0
                    self.send(Status(tuple(PortStatus(p.state, p.line, p.alarms) for p in self.ports)))
            delay = next_at - time.monotonic()
            if delay < -0.2:
                next_at = time.monotonic()  # far behind (a stalled test machine): do not burst
            elif delay > 0:
                time.sleep(delay)

    @staticmethod
    def _samples(p: SimPort, sb: SimB | None = None) -> bytes:
        """20 ms of the port's tone, or of B channel `sb`'s (its own, or the port's, with its own phase)."""
        gen: SimPort | SimB = p if sb is None else sb
        freq, amplitude = (sb.tx_freq, sb.tx_amplitude) if sb is not None and sb.tx_own else (p.tx_freq, p.tx_amplitude)
        if freq is None:
            return bytes([0xFF]) * AUDIO_BYTES  # µ-law silence
        step = 2.0 * math.pi * freq / RATE
        phase = gen.tx_phase + step * np.arange(AUDIO_BYTES)
        gen.tx_phase = float((gen.tx_phase + step * AUDIO_BYTES) % (2.0 * math.pi))
        pcm = np.round(amplitude * np.sin(phase)).astype(np.int16)
        if p.kind == PortKind.BRI:
            pcm = alaw_decode(alaw_encode(pcm)).astype(np.int16)  # the line is A-law; the link µ-law
        return ulaw_encode(pcm).tobytes()
