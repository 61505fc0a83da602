"""The serial link to one line board (hw/PROTOCOL.md): handshake, keep-alive, counters, reconnect.

`BoardLink` opens the port by URL with pyserial's `serial_for_url`, so the same code runs on
`/dev/ttyACM0`, on the twin's pty (hw/sim/lineboard.py) or on `loop://`. Two threads:

- the reader opens the port (again every `reopen_interval` s while it is missing: a board
  unplugged and plugged back is a device that vanishes and reappears), reads, decodes and
  posts typed events to `on_event`; it never calls into the PBX itself;
- the keeper sends HELLO until CAPS arrives (and whenever nothing was heard for 3 s), PING
  every second once the board is up, and declares the board gone after 3 missed PONGs.

`on_event` runs on the reader thread (or the keeper for `BoardGone` by timeout): the receiver
hands call-control events to its own loop and may relay AUDIO directly.
"""
from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import serial

from appliance.system.liveness import Heartbeat, PartHealth
from hw.frames import (
    BOARD,
    PROTOCOL_VERSION,
    Ack,
    AckStatus,
    Caps,
    Deframer,
    Frame,
    FrameError,
    Hello,
    Message,
    Ping,
    Pong,
    RangeError,
    encode_frame,
)

log = logging.getLogger("plateau.hw")
PING_INTERVAL_S = 1.0
MISSED_PONGS = 3
HELLO_SILENCE_S = 3.0
REOPEN_INTERVAL_S = 2.0
RESTART_DELAY_S = 0.2  # a thread that died waits this long before it runs again (no busy crash loop)


class LinkState(enum.Enum):
    CLOSED = "closed"  # no serial device (unplugged, or not opened yet)
    HANDSHAKE = "handshake"  # port open, HELLO sent, waiting for CAPS
    UP = "up"  # CAPS of our protocol version received, PONGs arriving
    REFUSED = "refused"  # the board speaks another protocol version: its ports stay unused


# -- events posted to the owner ------------------------------------------------------------------
@dataclass(frozen=True)
class BoardUp:
    caps: Caps
    # True when the link was already up with the same CAPS: our own re-HELLO answered (after a
    # reader restart), not a board that restarted, so ports in a call keep their state.
    again: bool = False


@dataclass(frozen=True)
class BoardGone:
    reason: str


@dataclass(frozen=True)
class BoardRefused:
    protocol_version: int


@dataclass(frozen=True)
class Received:
    """Any other frame from the board (port events, STATUS, AUDIO, ACK)."""

    frame: Frame


LinkEvent = BoardUp | BoardGone | BoardRefused | Received


@dataclass
class LinkCounters:
    frames_in: int = 0
    frames_out: int = 0
    crc_errors: int = 0
    framing_errors: int = 0
    unknown_frames: int = 0
    range_errors: int = 0  # well-formed frames with a value out of range (hw.frames.check_ranges, CAPS ports)
    seq_gaps: int = 0
    nacks: int = 0  # ACKs with a non-zero status
    send_errors: int = 0
    missed_pongs: int = 0
    opens: int = 0
    board_lost: int = 0


class BoardLink:
    """One board on one serial URL (see module docstring)."""

    def __init__(self, url: str, on_event: Callable[[LinkEvent], None], *,
                 ping_interval: float = PING_INTERVAL_S, reopen_interval: float = REOPEN_INTERVAL_S,
                 hello_silence: float = HELLO_SILENCE_S, missed_pongs: int = MISSED_PONGS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.on_event = on_event
        self.ping_interval = ping_interval
        self.reopen_interval = reopen_interval
        self.hello_silence = hello_silence
        self.max_missed = missed_pongs
        self.clock = clock
        self.state = LinkState.CLOSED
        self.caps: Caps | None = None
        self.counters = LinkCounters()
        self.last_error = ""
        self._port: Any = None  # serial.SerialBase while open
        self._tx_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._seq = 0
        self._peer_seq: int | None = None
        self._tokens = itertools.count(1)
        self._ping_out: int | None = None
        self._missed = 0
        self._last_rx = 0.0
        self._last_hello = 0.0
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._keeper: threading.Thread | None = None
        self.rx_beat = Heartbeat()
        self.keep_beat = Heartbeat()

    # -- lifetime -------------------------------------------------------------------------------
    def start(self) -> BoardLink:
        """Start the reader and keeper threads; the port is opened (and reopened) by the reader."""
        self._reader = threading.Thread(target=self._supervised, args=(self._read_loop, self.rx_beat, "reader"),
                                        name=f"hw-link-rx {self.url}", daemon=True)
        self._keeper = threading.Thread(target=self._supervised, args=(self._keep_loop, self.keep_beat, "keeper"),
                                        name=f"hw-link-keep {self.url}", daemon=True)
        self._reader.start()
        self._keeper.start()
        return self

    def close(self, timeout: float = 3.0) -> None:
        """Stop both threads and close the port; idempotent."""
        self._stop.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()
            except (AttributeError, OSError, serial.SerialException):
                pass  # loop:// and closed ports have nothing to cancel
        for t in (self._reader, self._keeper):
            if t is not None and t is not threading.current_thread():
                t.join(timeout)
        self._close_port()
        self.state = LinkState.CLOSED

    def health(self) -> list[PartHealth]:
        """The reader's and the keeper's liveness (hw.manager gathers them for the engine's supervisor)."""
        out = []
        for name, thread, beat in ((f"hw-link-rx {self.url}", self._reader, self.rx_beat),
                                   (f"hw-link-keep {self.url}", self._keeper, self.keep_beat)):
            out.append(beat.health(name, thread is not None and thread.is_alive()))
        return out

    def _supervised(self, loop: Callable[[], None], beat: Heartbeat, what: str) -> None:
        """Run `loop` until close(); when it dies, log the cause, count it and run it again.

        A reader that died may have lost the middle of a frame or an event, so the board is
        HELLOed again: its CAPS brings the link back UP (ports in a call stay in it, board_up is
        idempotent) and the next STATUS puts the port states right.
        """
        while not self._stop.is_set():
            try:
                loop()
                return
            except Exception as exc:  # any bug in a frame handler: this thread must outlive it
                beat.died(exc)
                self.last_error = f"{what} died: {type(exc).__name__}: {exc}"
                log.exception("line board %s: link %s thread died; restarting it", self.url, what)
            if self._stop.wait(RESTART_DELAY_S):
                return
            beat.restarted()
            if what == "reader" and self._port is not None:
                self._hello()

    @property
    def is_up(self) -> bool:
        return self.state == LinkState.UP

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for the control API."""
        caps = self.caps
        return {
            "device": self.url,
            "state": self.state.value,
            "serial": caps.serial if caps else None,
            "firmware": f"{caps.fw_major}.{caps.fw_minor}" if caps else None,
            "last_error": self.last_error,
            "counters": asdict(self.counters),
        }

    # -- sending -----------------------------------------------------------------------------------
    def send(self, msg: Message) -> int | None:
        """Send one frame with the next sequence number; returns the seq, None if not sent."""
        with self._tx_lock:
            port = self._port
            if port is None:
                return None
            seq = self._seq
            data = encode_frame(msg, seq)
            try:
                port.write(data)
            except (OSError, serial.SerialException) as exc:
                # SerialTimeoutException included: a board that stopped reading. The reader
                # notices a vanished device; here we only count.
                self.counters.send_errors += 1
                self.last_error = f"write: {exc}"
                return None
            self._seq = (seq + 1) & 0xFF
            self.counters.frames_out += 1
            return seq

    # -- reader thread ------------------------------------------------------------------------------
    def _open(self) -> bool:
        try:
            port = serial.serial_for_url(self.url, baudrate=115200, timeout=0.2, write_timeout=0.5)
        except (OSError, serial.SerialException, ValueError) as exc:
            self.last_error = f"open: {exc}"
            return False
        with self._tx_lock:
            self._port = port
        self.counters.opens += 1
        self._peer_seq = None
        self._set_state(LinkState.HANDSHAKE)
        log.info("line board %s: port open, sending HELLO", self.url)
        self._hello()
        return True

    def _close_port(self) -> None:
        with self._tx_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (OSError, serial.SerialException):
                pass  # a vanished device may fail to close: it is gone either way

    def _read_loop(self) -> None:
        deframer = Deframer()
        while not self._stop.is_set():
            self.rx_beat.beat()
            port = self._port
            if port is None:
                if not self._open():
                    self._stop.wait(self.reopen_interval)
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except (OSError, serial.SerialException, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial on a port closed under it (close()).
                if self._stop.is_set():
                    break
                self.last_error = f"read: {exc}"
                log.warning("line board %s: device lost (%s)", self.url, exc)
                self._close_port()
                deframer = Deframer()
                self._lost(f"device lost: {exc}", LinkState.CLOSED)
                continue
            if data:
                for item in deframer.feed(data):
                    if isinstance(item, FrameError):
                        setattr(self.counters, item.counter, getattr(self.counters, item.counter) + 1)
                        log.debug("line board %s: dropped frame: %s", self.url, item)
                    else:
                        self._frame(item)

    def _frame(self, frame: Frame) -> None:
        self.counters.frames_in += 1
        self._last_rx = self.clock()
        msg = frame.message
        if isinstance(msg, Caps):
            self._peer_seq = frame.seq  # a (re)started board begins a new sequence
            self._caps(msg)
            return
        if self._peer_seq is not None:
            gap = (frame.seq - self._peer_seq - 1) & 0xFF
            self.counters.seq_gaps += gap
        self._peer_seq = frame.seq
        if self.state == LinkState.REFUSED:
            return
        caps = self.caps
        if caps is not None and msg.port != BOARD and msg.port >= len(caps.ports):
            # A port the board's own CAPS did not announce: nothing here may act on it.
            self.counters.range_errors += 1
            log.debug("line board %s: dropped frame: %s", self.url, RangeError(f"port {msg.port} not in CAPS"))
            return
        if isinstance(msg, Pong):
            with self._state_lock:
                if msg.token == self._ping_out:
                    self._ping_out = None
                    self._missed = 0
            return
        if isinstance(msg, Ack) and msg.status != AckStatus.OK:
            self.counters.nacks += 1
            log.warning("line board %s: command seq %d refused: %s", self.url, msg.acked_seq, msg.status.name)
        if self.state == LinkState.UP:
            self.on_event(Received(frame))

    def _caps(self, caps: Caps) -> None:
        if caps.protocol_version != PROTOCOL_VERSION:
            log.error("line board %s speaks protocol %d, not %d: refused, its ports stay unused",
                      self.url, caps.protocol_version, PROTOCOL_VERSION)
            was_up = self.state == LinkState.UP
            self._set_state(LinkState.REFUSED)
            self.caps = None
            if was_up:
                self.on_event(BoardGone("protocol version changed"))
            self.on_event(BoardRefused(caps.protocol_version))
            return
        with self._state_lock:
            self._missed = 0
            self._ping_out = None
        first = self.state != LinkState.UP
        again = not first and caps == self.caps
        self.caps = caps
        self._set_state(LinkState.UP)
        if first:
            log.info("line board %s up: serial %s, firmware %d.%d, %d ports", self.url, caps.serial,
                     caps.fw_major, caps.fw_minor, len(caps.ports))
        self.on_event(BoardUp(caps, again))

    def _lost(self, reason: str, new_state: LinkState) -> None:
        was_up = self.state == LinkState.UP
        self._set_state(new_state)
        if was_up:
            self.counters.board_lost += 1
            self.on_event(BoardGone(reason))

    def _set_state(self, new: LinkState) -> None:
        with self._state_lock:
            self.state = new

    # -- keeper thread --------------------------------------------------------------------------
    def _hello(self) -> None:
        self._last_hello = self.clock()
        self.send(Hello(PROTOCOL_VERSION))

    def _keep_loop(self) -> None:
        while not self._stop.wait(self.ping_interval):
            self.keep_beat.beat()
            self._tick()

    def _tick(self) -> None:
        """Once per ping interval: PING (or count its miss), and HELLO after silence."""
        if self._port is None:
            return
        now = self.clock()
        if self.state == LinkState.UP:
            with self._state_lock:
                if self._ping_out is not None:
                    self._missed += 1
                    self.counters.missed_pongs += 1
                gone = self._missed >= self.max_missed
            if gone:
                log.warning("line board %s: %d PONGs missed, board gone", self.url, self.max_missed)
                self.last_error = f"{self.max_missed} PONGs missed"
                with self._state_lock:
                    self._missed = 0
                    self._ping_out = None
                self._lost("no PONG", LinkState.HANDSHAKE)
                self._hello()
                return
            token = next(self._tokens) & 0xFFFFFFFF
            with self._state_lock:
                self._ping_out = token
            self.send(Ping(token))
        elif now - self._last_hello >= self.hello_silence:
            # Not up: HELLO again every 3 s, even if STATUS keeps arriving (a board that lost
            # us, or was hung and came back, answers only HELLO with CAPS).
            self._hello()
