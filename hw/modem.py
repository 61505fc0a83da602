"""Voice modem as an FXO line: an ITU-T V.253 driver over pyserial.

A voice modem in `+FCLASS=8` answers AT commands with result codes in command mode and, once
`+VTR` (duplex) or `+VRX` (receive) has returned CONNECT, streams 8 kHz G.711 µ-law in which
the byte 0x10 (<DLE>) introduces a *shielded code*: <DLE><DLE> is a literal 0x10, <DLE><ETX>
ends the stream, anything else is an event (DTMF digit, busy tone...) (V.253 clause 9, DLE
shielding; the same rule applies to what the DTE sends).

Threads: a reader per open port only splits bytes into tokens and posts them; one control
thread owns the state machine, issues every command and calls `on_event`, so events arrive in
order on one thread. Public calls (`answer`, `dial`, `hangup`) are posted to that thread and
return a `Future`; `send_audio` writes directly (it is the media engine's 20 ms path).
The byte-level format (tokens, result codes, DLE shielding, +VSM choice) is in hw/v253.py.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import serial

from appliance.system.liveness import Heartbeat, PartHealth
from hw.v253 import (
    CID_FIELD,
    DIAL_STRING,
    DLE_EVENTS,
    DTMF_DIGITS,
    FINAL_CODES,
    UNSOLICITED,
    DleCode,
    Line,
    Malformed,
    ModemError,
    Token,
    UnsupportedModem,
    V253Parser,
    VoiceData,
    dle_shield,
    pick_ulaw,
)

log = logging.getLogger(__name__)

FRAME_BYTES = 160  # 20 ms of 8 kHz µ-law, the media engine's frame


# -- errors (ModemError and UnsupportedModem come from hw.v253, which raises the latter) --------
class ModemNotResponding(ModemError):
    """The modem gave no final result code in time, or its voice stream stalled."""


class PortLost(ModemError):
    """The serial port failed or vanished (USB modem unplugged)."""


class CommandRejected(ModemError):
    """The modem answered a command with something other than the expected result code."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"{command!r} -> {result!r}")
        self.command = command
        self.result = result


class IllegalTransition(ModemError):
    """A request or line event does not fit the line's current state."""


# -- events (what the driver tells its owner) --------------------------------------------
@dataclass(frozen=True)
class Ring:
    count: int  # 1 for the first RING of a call


@dataclass(frozen=True)
class CallerId:
    number: str  # as the modem reports it ("P" private, "O" unavailable per Bellcore/ETSI CLIP)
    name: str = ""
    date: str = ""
    time: str = ""


@dataclass(frozen=True)
class Answered:
    outbound: bool  # True when our dial was answered, False when we answered a ring


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Busy:
    """Busy tone (<DLE>b) or the BUSY result code of a dial."""


@dataclass(frozen=True)
class DialTone:
    """Dial tone on the line (<DLE>d): during a call it means the far end has gone."""


@dataclass(frozen=True)
class Silence:
    quiet: bool  # <DLE>q "quiet" (after voice) vs <DLE>s "silence" (no voice at all)


@dataclass(frozen=True)
class LineSignal:
    """Any other DLE-shielded event, reported as is."""

    code: str
    meaning: str


@dataclass(frozen=True)
class Hangup:
    reason: str
    remote: bool  # True when the far end (or the line) ended it


@dataclass(frozen=True)
class Audio:
    data: bytes = field(repr=False)  # FRAME_BYTES of G.711 µ-law, DLE shielding removed


@dataclass(frozen=True)
class ModemReady:
    ulaw_code: int  # the +VSM compression method selected for µ-law
    duplex: bool  # +VTR offered: audio both ways at once


@dataclass(frozen=True)
class ModemDown:
    error: ModemError  # the driver retries initialisation every `reinit_interval` seconds


ModemEvent = (Ring | CallerId | Answered | Dtmf | Busy | DialTone | Silence | LineSignal | Hangup | Audio
              | ModemReady | ModemDown)


# -- line state machine ---------------------------------------------------------------
class ModemState(enum.Enum):
    OFFLINE = "offline"  # not initialised, or failed: re-initialisation pending
    IDLE = "idle"  # on-hook, waiting for RING or a dial request
    RINGING = "ringing"
    ANSWERING = "answering"  # off-hook, voice stream being opened
    DIALING = "dialing"  # ATD sent, waiting for its result code
    VOICE_RX_TX = "voice"  # in a call, voice stream open
    HUNGUP = "hungup"  # call ended, line being released


_S = ModemState
# The one place where line transitions are decided. Anything may fall to OFFLINE (modem failure).
_ALLOWED: dict[ModemState, set[ModemState]] = {
    _S.OFFLINE: {_S.IDLE, _S.OFFLINE},
    _S.IDLE: {_S.RINGING, _S.DIALING, _S.OFFLINE},
    _S.RINGING: {_S.ANSWERING, _S.HUNGUP, _S.OFFLINE},
    _S.ANSWERING: {_S.VOICE_RX_TX, _S.HUNGUP, _S.OFFLINE},
    _S.DIALING: {_S.VOICE_RX_TX, _S.HUNGUP, _S.OFFLINE},
    _S.VOICE_RX_TX: {_S.HUNGUP, _S.OFFLINE},
    _S.HUNGUP: {_S.IDLE, _S.OFFLINE},
}
_IN_CALL = {_S.ANSWERING, _S.DIALING, _S.VOICE_RX_TX}

# Codes after which the far end is gone: busy/dial tone on the line, loop current lost.
_RELEASE_CODES = {"b": "busy tone", "d": "dial tone", "h": "line current break", "l": "loop current interruption"}


@dataclass(frozen=True)
class _PortError:
    generation: int
    error: Exception


@dataclass
class _Request:
    action: Callable[[], None]
    future: Future[None]


class VoiceModem:
    """One voice modem on one analog line (an FXO port), driven per ITU-T V.253."""

    def __init__(self, url: str, on_event: Callable[[ModemEvent], None], *, baudrate: int = 115200,
                 command_timeout: float = 2.0, reinit_interval: float = 5.0, keepalive_interval: float = 10.0,
                 ring_timeout: float = 8.0, dial_timeout: float = 60.0, frame_bytes: int = FRAME_BYTES) -> None:
        self.url = url
        self.on_event = on_event
        self.baudrate = baudrate
        self.command_timeout = command_timeout
        self.reinit_interval = reinit_interval
        self.keepalive_interval = keepalive_interval
        self.ring_timeout = ring_timeout
        self.dial_timeout = dial_timeout
        self.frame_bytes = frame_bytes
        self._state = ModemState.OFFLINE
        self.ulaw_code: int | None = None
        self.duplex = False
        self._port: serial.SerialBase | None = None
        self._parser = V253Parser()
        self._gen = 0
        self._reader: threading.Thread | None = None
        self._control: threading.Thread | None = None
        self._stop = threading.Event()
        self._q: queue.Queue[Token | _PortError | _Request] = queue.Queue()
        self._resp: queue.Queue[str | _PortError] = queue.Queue()
        self._pending: str | None = None  # command awaiting its final result code
        self._write_lock = threading.Lock()
        self._tx_open = False  # voice stream accepts DTE audio (guarded by _write_lock)
        self._rx_buf = bytearray()
        self._cid: dict[str, str] = {}
        self._rings = 0
        self._last_ring = 0.0
        self._last_rx = 0.0
        self._last_ok = 0.0
        self._dial_started = 0.0
        self._dial_active = False  # ATD sent, no final result code yet
        self._next_init = 0.0
        self._down_reported = False
        self.malformed = 0  # tokens dropped at the boundary (hw.v253.Malformed), shown in the status
        self.last_malformed = ""
        self.control_beat = Heartbeat()
        self.reader_beat = Heartbeat()

    # -- public API ---------------------------------------------------------------------
    @property
    def state(self) -> ModemState:
        return self._state

    def start(self) -> Future[None]:
        """Open the port and initialise; the future fails if the first attempt does (retries go on)."""
        self._control = threading.Thread(target=self._run, name=f"modem-ctrl {self.url}", daemon=True)
        self._control.start()
        return self._request(self._initialise)

    def answer(self) -> Future[None]:
        """Take the ringing line off-hook and open the voice stream (AT+VLS=1, then AT+VTR or AT+VRX)."""
        return self._request(self._do_answer)

    def dial(self, number: str) -> Future[None]:
        """Dial `number` in voice mode (ATD<number>;); done once sent, the outcome comes as events."""
        if not DIAL_STRING.fullmatch(number):
            raise ValueError(f"dial string {number!r}: only 0-9 * # A-D , W P T ! @ (V.250 6.3.1)")
        return self._request(lambda: self._do_dial(number))

    def hangup(self) -> Future[None]:
        """End the call (or reject a ringing one): close the stream, ATH, AT+VLS=0."""
        return self._request(lambda: self._release("local hangup", remote=False, idle_ok=True))

    def send_audio(self, ulaw: bytes) -> bool:
        """Send G.711 µ-law to the line, DLE-shielded; False (dropped) when no duplex stream is open."""
        with self._write_lock:
            if not self._tx_open or self._port is None:
                return False
            try:
                self._port.write(dle_shield(ulaw))
            except (serial.SerialException, OSError) as exc:
                self._q.put(_PortError(self._gen, exc))
                return False
        return True

    def health(self) -> list[PartHealth]:
        """The control thread's and the port reader's liveness (no reader while the port is closed)."""
        control, reader = self._control, self._reader
        started = control is not None and not self._stop.is_set()
        return [self.control_beat.health(f"modem-ctrl {self.url}", started and control is not None
                                         and control.is_alive()),
                self.reader_beat.health(f"modem-reader {self.url}", not started or self._port is None
                                        or (reader is not None and reader.is_alive()))]

    def close(self) -> None:
        """Go on-hook if possible and stop every thread."""
        if self._control is not None and self._control.is_alive() and self._state in _IN_CALL:
            try:
                self.hangup().result(timeout=self.command_timeout * 3)
            except (ModemError, TimeoutError) as exc:
                log.warning("modem %s: hangup on close failed: %s", self.url, exc)
        self._stop.set()
        if self._control is not None:
            self._control.join(timeout=5)
        self._close_port()

    # -- control thread -----------------------------------------------------------------
    def _request(self, action: Callable[[], None]) -> Future[None]:
        fut: Future[None] = Future()
        if self._stop.is_set():
            fut.set_exception(ModemError("modem driver closed"))
        else:
            self._q.put(_Request(action, fut))
        return fut

    def _run(self) -> None:
        while not self._stop.is_set():
            self.control_beat.beat()
            try:
                item = self._q.get(timeout=0.05)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._handle(item)
                self._timers()
            except (ModemNotResponding, PortLost) as exc:
                self._fail(exc)
            except ModemError as exc:  # a line event that does not fit, a rejected command: log, go on
                log.warning("modem %s: %s", self.url, exc)
            except Exception as exc:  # a bug: the control thread outlives it, the modem is initialised again
                self.control_beat.died(exc)
                log.exception("modem %s: control thread died on %r; restarting it", self.url, item)
                if isinstance(item, _Request) and not item.future.done():
                    item.future.set_exception(ModemError(f"modem {self.url}: {type(exc).__name__}: {exc}"))
                self._fail(ModemError(f"control thread died: {type(exc).__name__}: {exc}"), force=True)
                self.control_beat.restarted()
        while True:  # nobody will run what is still queued
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request):
                item.future.set_exception(ModemError("modem driver closed"))

    def _handle(self, item: Token | _PortError | _Request) -> None:
        if isinstance(item, _Request):
            if not item.future.set_running_or_notify_cancel():
                return
            try:
                item.action()
            except ModemError as exc:
                item.future.set_exception(exc)
                if isinstance(exc, ModemNotResponding | PortLost):
                    raise
            else:
                item.future.set_result(None)
        elif isinstance(item, _PortError):
            if item.generation == self._gen:
                raise PortLost(f"{self.url}: {item.error}")
        elif isinstance(item, Line):
            self._on_line(item.text)
        elif isinstance(item, DleCode):
            self._on_dle(item.code)
        elif isinstance(item, VoiceData):
            if self._state is _S.VOICE_RX_TX:
                self._rx_buf += item.data
                fb = self.frame_bytes
                while len(self._rx_buf) >= fb:
                    self._post(Audio(bytes(self._rx_buf[:fb])))
                    del self._rx_buf[:fb]
        elif self._state is _S.VOICE_RX_TX:  # StreamEnd we did not ask for: modem inactivity timer
            self._release("voice stream ended by the modem", remote=True)

    def _set_state(self, new: ModemState) -> None:
        if new not in _ALLOWED[self._state]:
            raise IllegalTransition(f"modem {self.url}: {self._state.value} -> {new.value}")
        log.debug("modem %s: %s -> %s", self.url, self._state.value, new.value)
        self._state = new

    def _post(self, event: ModemEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a listener bug must not kill the line
            log.exception("modem %s: event listener failed on %r", self.url, event)

    def _timers(self) -> None:
        now = time.monotonic()
        st = self._state
        if st is _S.OFFLINE:
            if now >= self._next_init and self._next_init > 0:
                self._initialise()
        elif st is _S.IDLE and now - self._last_ok >= self.keepalive_interval:
            self._command("AT")  # a hung modem is found even when no call comes
        elif st is _S.RINGING and now - self._last_ring > self.ring_timeout:
            self._flush_cid()
            self._set_state(_S.HUNGUP)
            self._set_state(_S.IDLE)
            self._post(Hangup("caller abandoned", remote=True))
        elif st is _S.VOICE_RX_TX and now - self._last_rx > self.command_timeout:
            raise ModemNotResponding(f"{self.url}: voice stream stalled for {self.command_timeout} s")
        elif st is _S.DIALING and now - self._dial_started > self.dial_timeout:
            self._release("no answer", remote=False)

    def _fail(self, exc: ModemError, force: bool = False) -> None:
        log.warning("modem %s down: %s", self.url, exc)
        in_call = self._state in _IN_CALL | {_S.RINGING}
        if force:  # after a bug the state may be anything: OFFLINE is always reachable
            self._state = _S.OFFLINE
            self._end_stream_quietly()
        self._set_state(_S.OFFLINE)
        self._close_port()
        self._next_init = time.monotonic() + self.reinit_interval
        if in_call:
            self._post(Hangup(f"modem failure: {exc}", remote=False))
        self._report_down(exc)

    def _end_stream_quietly(self) -> None:
        """Best effort, without waiting: a modem left streaming voice would not hear the ATZ of the
        re-initialisation (<DLE>^ ends +VTR, <DLE>! aborts +VRX; V.253 DLE codes)."""
        port = self._port
        if port is None or not self._parser.streaming:
            return
        try:
            with self._write_lock:
                port.write(b"\x10^" if self.duplex else b"\x10!")
        except (serial.SerialException, OSError) as exc:
            log.debug("modem %s: ending the stream: %s", self.url, exc)

    def _report_down(self, exc: ModemError) -> None:
        if not self._down_reported:  # once per outage, not once per failed retry
            self._down_reported = True
            self._post(ModemDown(exc))

    # -- port and commands --------------------------------------------------------------
    def _open_port(self) -> None:
        self._close_port()
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.05,
                                         write_timeout=self.command_timeout)
        except (serial.SerialException, OSError) as exc:
            raise PortLost(f"{self.url}: {exc}") from exc
        self._parser = V253Parser()
        self._gen += 1
        self._port = port
        self._reader = threading.Thread(target=self._read_loop, args=(port, self._gen),
                                        name=f"modem-reader {self.url}", daemon=True)
        self._reader.start()
        if self.reader_beat.deaths > self.reader_beat.restarts:
            self.reader_beat.restarted()

    def _close_port(self) -> None:
        with self._write_lock:
            self._tx_open = False
            port, self._port = self._port, None
        self._gen += 1  # the reader sees a new generation and exits within its read timeout
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=2)
        self._reader = None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                log.debug("modem %s: close: %s", self.url, exc)

    def _read_loop(self, port: serial.SerialBase, gen: int) -> None:
        try:
            self._read(port, gen)
        except Exception as exc:  # a bug: the port is re-opened with a new reader, like a lost port
            self.reader_beat.died(exc)
            log.exception("modem %s: reader thread died; the modem is initialised again", self.url)
            if gen == self._gen:
                self._q.put(_PortError(gen, exc))
                self._resp.put(_PortError(gen, exc))

    def _read(self, port: serial.SerialBase, gen: int) -> None:
        parser = self._parser
        while gen == self._gen and not self._stop.is_set():
            self.reader_beat.beat()
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                if gen == self._gen:
                    self._q.put(_PortError(gen, exc))
                    self._resp.put(_PortError(gen, exc))
                return
            if not data:
                continue
            self._last_rx = time.monotonic()
            for tok in parser.feed(data):
                self._route(tok)

    def _route(self, tok: Token) -> None:
        """Reader side: answers to the pending command go to `_resp`, everything else to the control queue."""
        if isinstance(tok, Malformed):
            self.malformed += 1
            self.last_malformed = tok.reason
            log.debug("modem %s: dropped: %s", self.url, tok.reason)
            return
        pending = self._pending
        if isinstance(tok, Line) and pending is not None and not UNSOLICITED.match(tok.text):
            if tok.text != pending:  # ignore our own echo (ATE1 after ATZ)
                self._resp.put(tok.text)
            return
        self._q.put(tok)

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None:
            raise PortLost(f"{self.url}: port not open")
        try:
            with self._write_lock:
                port.write(data)
        except serial.SerialTimeoutException as exc:
            raise ModemNotResponding(f"{self.url}: write blocked: {exc}") from exc
        except (serial.SerialException, OSError) as exc:
            raise PortLost(f"{self.url}: {exc}") from exc

    def _command(self, cmd: str, ok: tuple[str, ...] = ("OK",), raw: bytes | None = None) -> list[str]:
        """Send `cmd` (or `raw` bytes) and wait for its final result code; returns the information lines."""
        while not self._resp.empty():  # stale answers from before a failure
            self._resp.get_nowait()
        self._pending = cmd
        info: list[str] = []
        try:
            self._write(raw if raw is not None else cmd.encode("ascii") + b"\r")
            deadline = time.monotonic() + self.command_timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ModemNotResponding(f"{self.url}: no result code for {cmd!r} within "
                                             f"{self.command_timeout} s")
                try:
                    line = self._resp.get(timeout=left)
                except queue.Empty:
                    continue
                if isinstance(line, _PortError):
                    raise PortLost(f"{self.url}: {line.error}")
                if line in FINAL_CODES or line.startswith("+CME ERROR"):
                    if line not in ok:
                        raise CommandRejected(cmd, line)
                    self._last_ok = time.monotonic()
                    return info
                info.append(line)
        finally:
            self._pending = None

    def _initialise(self) -> None:
        self._next_init = time.monotonic() + self.reinit_interval  # the next try, should this one fail
        if self._state is not _S.OFFLINE:
            self._set_state(_S.OFFLINE)
        self._open_port()
        try:
            self._command("ATZ")
            self._command("ATE0")  # no echo: keeps command answers apart from our own bytes
            self._command("AT+FCLASS=8")  # V.253 voice mode
            self._command("AT+VCID=1")  # formatted caller ID: DATE/TIME/NMBR/NAME lines
            code = pick_ulaw(self._command("AT+VSM=?"))
            self._command(f"AT+VSM={code},8000")
            try:
                self._command("AT+VTR=?")  # V.250 test form: OK only if +VTR (duplex) exists
                duplex = True
            except CommandRejected:
                duplex = False
            self._command("AT+VLS=0")  # line on-hook, nothing connected
        except (CommandRejected, UnsupportedModem) as exc:
            self._close_port()
            self._report_down(exc)
            raise
        self.ulaw_code, self.duplex = code, duplex
        self._rings = 0
        self._set_state(_S.IDLE)
        self._down_reported = False
        self._post(ModemReady(code, duplex))

    # -- call handling ------------------------------------------------------------------
    def _on_line(self, text: str) -> None:
        st = self._state
        if text.startswith("RING"):
            self._flush_cid()
            if st is _S.IDLE:
                self._set_state(_S.RINGING)
                self._rings = 0
            if self._state is _S.RINGING:
                self._rings += 1
                self._last_ring = time.monotonic()
                self._post(Ring(self._rings))
            return
        m = CID_FIELD.match(text)
        if m is not None:
            self._cid[m.group(1)] = m.group(2).strip()
            if m.group(1) == "NAME":
                self._flush_cid()
            return
        if st is _S.DIALING and text in FINAL_CODES:
            self._dial_active = False
            if text in ("OK", "VCON"):  # V.253: voice dial ends when ringback goes away (+VRA)
                self._start_voice()
                self._post(Answered(outbound=True))
            elif text == "BUSY":
                self._post(Busy())
                self._release("busy", remote=True)
            else:
                self._release(text.lower(), remote=True)
            return
        if st is _S.VOICE_RX_TX and text == "NO CARRIER":
            self._release("no carrier", remote=True)
            return
        log.debug("modem %s: ignored line %r in %s", self.url, text, st.value)

    def _flush_cid(self) -> None:
        if "NMBR" in self._cid or "NAME" in self._cid:
            c = self._cid
            self._post(CallerId(c.get("NMBR", ""), c.get("NAME", ""), c.get("DATE", ""), c.get("TIME", "")))
        self._cid = {}

    def _on_dle(self, code: str) -> None:
        if code in DTMF_DIGITS:
            self._post(Dtmf(code))
        elif code == "b":
            self._post(Busy())
        elif code == "d":
            self._post(DialTone())
        elif code in ("s", "q"):
            self._post(Silence(quiet=code == "q"))
        else:
            self._post(LineSignal(code, DLE_EVENTS.get(code, "unknown")))
        if code in _RELEASE_CODES and self._state is _S.VOICE_RX_TX:
            self._release(_RELEASE_CODES[code], remote=True)

    def _do_answer(self) -> None:
        if self._state is not _S.RINGING:
            raise IllegalTransition(f"modem {self.url}: answer in state {self._state.value}")
        self._flush_cid()
        self._set_state(_S.ANSWERING)
        try:
            self._command("AT+VLS=1")  # off-hook, line to the DTE (V.253 +VLS)
            self._start_voice()
        except CommandRejected:
            self._release("answer failed", remote=False)
            raise
        self._post(Answered(outbound=False))

    def _do_dial(self, number: str) -> None:
        if self._state is not _S.IDLE:
            raise IllegalTransition(f"modem {self.url}: dial in state {self._state.value}")
        self._set_state(_S.DIALING)
        self._dial_started = time.monotonic()
        self._dial_active = True
        # The ';' keeps the modem in voice command mode; the result code arrives later, unsolicited.
        self._write(f"ATD{number};\r".encode("ascii"))

    def _start_voice(self) -> None:
        self._parser.expect_stream = True
        try:
            self._command("AT+VTR" if self.duplex else "AT+VRX", ok=("CONNECT",))
        except ModemError:
            self._parser.expect_stream = False
            raise
        self._rx_buf.clear()
        self._last_rx = time.monotonic()
        self._set_state(_S.VOICE_RX_TX)
        with self._write_lock:
            self._tx_open = self.duplex

    def _release(self, reason: str, remote: bool, idle_ok: bool = False) -> None:
        st = self._state
        if st in (_S.IDLE, _S.OFFLINE, _S.HUNGUP):
            if idle_ok:
                return
            raise IllegalTransition(f"modem {self.url}: hangup in state {st.value}")
        self._set_state(_S.HUNGUP)
        if st is _S.VOICE_RX_TX:
            with self._write_lock:
                self._tx_open = False
            if self._parser.streaming:
                # <DLE>^ ends +VTR, <DLE>! aborts +VRX; the modem answers <DLE><ETX> then OK.
                self._command("<end stream>", raw=b"\x10^" if self.duplex else b"\x10!")
        elif st is _S.RINGING:
            self._command("AT+VLS=1")  # an analog line is rejected by seizing and releasing it
        elif st is _S.DIALING and self._dial_active:  # any character aborts a dial in progress (V.250 6.3.1)
            self._command("<abort dial>", ok=tuple(FINAL_CODES), raw=b"\r")
        self._command("ATH")
        self._command("AT+VLS=0")
        self._rx_buf.clear()
        self._set_state(_S.IDLE)
        self._post(Hangup(reason, remote))
