"""A V.253 voice modem twin on a pty: the real driver (hw/modem.py) talks to it as to a USB modem.

It answers the AT commands a voice driver uses with OK/ERROR as a real modem does (echo on
after ATZ, voice commands refused outside +FCLASS=8, +VSM listing in the USR style by default),
and a test can make the line ring with caller ID, stream DTMF and a tone in the voice stream,
record what the driver sends, answer a dial busy, lose the far end, hang (stop answering) or
vanish (unplug). The DLE handling here is written separately from the driver's on purpose, so
a shielding bug on one side is not mirrored on the other.

`url` is a symlink to the current pty, as udev gives /dev/serial/by-id/...: after `replug()`
the same path leads to the new pty.
"""

from __future__ import annotations

import os
import queue
import select
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import numpy as np

from appliance.media.g711 import ulaw_encode

DLE, ETX = b"\x10", b"\x03"
# AT+VSM=? as a USRobotics modem lists it: 131 is µ-law, 132 A-law.
USR_VSM = ['1,"UNSIGNED PCM",8,0,(7200,8000),(0),(0)', '128,"8-BIT LINEAR",8,0,(7200,8000),(0),(0)',
           '129,"ADPCM",4,0,(7200,8000),(0),(0)', '131,"ULAW",8,0,(7200,8000),(0),(0)',
           '132,"ALAW",8,0,(7200,8000),(0),(0)', '133,"LINEAR",16,0,(7200,8000),(0),(0)']
# A Conexant-style listing with other numbers.
CONEXANT_VSM = ['0,"SIGNED PCM",8,0,(7200,8000,11025),(0),(0)', '1,"UNSIGNED PCM",8,0,(7200,8000,11025),(0),(0)',
                '4,"G711U",8,0,(7200,8000,11025),(0),(0)', '5,"G711A",8,0,(7200,8000,11025),(0),(0)']
SILENCE_ULAW = 0xFF
TICK = 0.02  # 20 ms: one 160-byte voice block per tick, like the modem's codec
MAX_OUT = 8192  # a modem's transmit buffer: voice beyond it is dropped if the DTE does not read


def ulaw_tone(freq: float, seconds: float = 1.0, amplitude: int = 8000) -> bytes:
    """µ-law bytes of a sine at 8 kHz, a whole number of 160-byte blocks."""
    n = int(seconds * 8000) // 160 * 160
    t = np.arange(n) / 8000.0
    return ulaw_encode(np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)).tobytes()


class ModemTwin:
    """The simulated modem. All state lives in its thread; test calls are queued to it."""

    def __init__(self, *, duplex: bool = True, vsm: list[str] | None = None, ring_period: float = 1.0,
                 dial_delay: float = 0.3, link_dir: str | os.PathLike[str] | None = None) -> None:
        self.duplex = duplex
        self.vsm = list(vsm if vsm is not None else USR_VSM)
        self.ring_period = ring_period
        self.dial_delay = dial_delay
        self.dial_outcome = "OK"  # what ATD<n>; ends with: OK (answered), BUSY, NO ANSWER...
        self._tmp = None if link_dir is not None else tempfile.TemporaryDirectory(prefix="modem-twin-")
        self.url = str(Path(link_dir if link_dir is not None else self._tmp.name) / "ttyModem")  # type: ignore[union-attr]
        self.commands: list[str] = []  # every command line received, in order
        self.dialed: list[str] = []
        self._lock = threading.Lock()
        self._received = bytearray()  # voice from the DTE, unshielded
        self._wire_in = bytearray()  # raw stream bytes from the DTE, shielding included
        self._actions: queue.Queue[Callable[[], None]] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._master = -1
        self._slave = -1
        self._thread: threading.Thread | None = None
        self._plug()
        self._reset()

    # -- test controls (thread-safe) ----------------------------------------------------
    def start(self) -> ModemTwin:
        self._thread = threading.Thread(target=self._run, name="modem-twin", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._unplug()
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> ModemTwin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ring(self, number: str = "", name: str = "", date: str = "0101", clock: str = "1200") -> None:
        """Ring every `ring_period` s; formatted caller ID (+VCID=1) after the first ring, as on a real line."""
        self._do(lambda: self._start_ring(number, name, date, clock))

    def stop_ringing(self) -> None:
        self._do(lambda: setattr(self, "_ringing", False))

    def send_dtmf(self, digits: str) -> None:
        """Report `digits` as <DLE><digit> in the voice stream (the modem's DTMF detector)."""
        self._do(lambda: self._events.extend(digits))

    def send_event(self, code: str) -> None:
        """Report any shielded event code in the voice stream."""
        self._do(lambda: self._events.append(code))

    def play(self, ulaw: bytes) -> None:
        """Loop `ulaw` as the far end's voice (a whole number of 160-byte blocks keeps frames aligned)."""
        self._do(lambda: setattr(self, "_source", bytes(ulaw)))

    def far_end_hangup(self, code: str = "b") -> None:
        """The far end hangs up: the line gives busy tone (<DLE>b), or `code` ('d' dial tone, 'l' loop break)."""
        def act() -> None:
            self._events.append(code)
            self._source = bytes([SILENCE_ULAW]) * 160
        self._do(act)

    def hang(self) -> None:
        """Stop answering anything (firmware lock-up)."""
        self._do(lambda: setattr(self, "_hung", True))

    def unhang(self) -> None:
        """Come back as after a watchdog reset: command mode, on-hook, defaults."""
        def act() -> None:
            self._hung = False
            self._reset()
        self._do(act)

    def unplug(self) -> None:
        """The USB modem vanishes: the pty closes, the symlink goes."""
        self._do(self._unplug)

    def replug(self) -> None:
        """A fresh modem appears behind the same path."""
        def act() -> None:
            self._plug()
            self._reset()
        self._do(act)

    def inject(self, raw: bytes) -> None:
        """Write raw bytes to the DTE (malformed lines, unknown result codes)."""
        self._do(lambda: self._send(raw))

    def received_audio(self) -> bytes:
        with self._lock:
            return bytes(self._received)

    def wire_from_dte(self) -> bytes:
        with self._lock:
            return bytes(self._wire_in)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def off_hook(self) -> bool:
        return self._off_hook

    # -- the modem ----------------------------------------------------------------------
    def _do(self, action: Callable[[], None]) -> None:
        self._actions.put(action)
        os.write(self._wake_w, b"x")

    def _plug(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no CR/LF translation or echo in the line discipline: a byte pipe
        os.set_blocking(self._master, False)
        tmp_link = self.url + ".new"
        os.symlink(os.ttyname(self._slave), tmp_link)
        os.replace(tmp_link, self.url)

    def _unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        try:
            os.unlink(self.url)
        except FileNotFoundError:
            pass

    def _reset(self) -> None:
        self._echo = True
        self._fclass = 0
        self._vcid = 0
        self._vsm = 0
        self._off_hook = False
        self._mode = "command"  # or "vtr", "vrx", "vtx"
        self._cmd = bytearray()
        self._out = bytearray()
        self._in_call = False
        self._ringing = False
        self._next_ring = 0.0
        self._cid: list[str] = []
        self._dial_at = 0.0
        self._events: list[str] = []
        self._source = bytes([SILENCE_ULAW]) * 160
        self._src_pos = 0
        self._next_tick = 0.0
        self._dle = False
        self._hung = getattr(self, "_hung", False)

    def _run(self) -> None:
        while not self._stop:
            fds = [self._wake_r] + ([self._master] if self._master >= 0 else [])
            wfds = [self._master] if self._out and self._master >= 0 else []
            readable, writable, _ = select.select(fds, wfds, [], TICK / 2)
            if self._wake_r in readable:
                os.read(self._wake_r, 512)
            while not self._actions.empty():
                self._actions.get_nowait()()
            if self._master < 0:
                continue
            if self._master in readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:  # no DTE has the pty open: nothing to read
                    data = b""
                if data and not self._hung:
                    self._receive(data)
            self._clock()
            self._flush()

    def _send(self, data: bytes) -> None:
        self._out += data
        self._flush()

    def _line(self, text: str) -> None:
        self._send(b"\r\n" + text.encode() + b"\r\n")  # verbose result codes (ATV1)

    def _flush(self) -> None:
        if not self._out or self._master < 0:
            return
        try:
            n = os.write(self._master, self._out)
        except (BlockingIOError, OSError):
            return
        del self._out[:n]

    def _clock(self) -> None:
        now = time.monotonic()
        if self._hung:
            return
        if self._ringing and now >= self._next_ring:
            self._line("RING")
            for cid in self._cid:  # caller ID goes in the first silence after the first ring
                self._line(cid)
            self._cid = []
            self._next_ring = now + self.ring_period
        if self._dial_at and now >= self._dial_at:
            self._dial_at = 0.0
            self._in_call = self.dial_outcome == "OK"
            if not self._in_call:
                self._off_hook = False
            self._line(self.dial_outcome)
        if self._mode in ("vtr", "vrx"):
            while now >= self._next_tick:
                self._next_tick += TICK
                for code in self._events:
                    self._out += DLE + code.encode()
                self._events = []
                if len(self._out) < MAX_OUT:
                    block = (self._source * 2)[self._src_pos:self._src_pos + 160]
                    self._src_pos = (self._src_pos + 160) % len(self._source)
                    self._out += block.replace(DLE, DLE + DLE)

    def _start_ring(self, number: str, name: str, date: str, clock: str) -> None:
        self._ringing = True
        self._next_ring = 0.0
        self._cid = []
        if self._vcid and number:
            self._cid = [f"DATE = {date}", f"TIME = {clock}", f"NMBR = {number}"] + ([f"NAME = {name}"] if name else [])

    # -- DTE -> modem ---------------------------------------------------------------------
    def _receive(self, data: bytes) -> None:
        if self._mode == "command":
            self._command_bytes(data)
            return
        with self._lock:
            self._wire_in += data
        for i, b in enumerate(data):
            if self._dle:
                self._dle = False
                if b == 0x10:
                    with self._lock:
                        self._received.append(0x10)
                elif b in (0x5E, 0x21, 0x03):  # <DLE>^ ends +VTR, <DLE>! aborts +VRX, <DLE><ETX> ends +VTX
                    self._end_stream()
                    self._command_bytes(data[i + 1:])
                    return
                # other codes (volume u/d, <CAN>...) change nothing in the twin
            elif b == 0x10:
                self._dle = True
            elif self._mode in ("vtr", "vtx"):
                with self._lock:
                    self._received.append(b)

    def _end_stream(self) -> None:
        if self._mode in ("vtr", "vrx"):
            self._out += DLE + ETX
        self._mode = "command"
        self._line("OK")

    def _command_bytes(self, data: bytes) -> None:
        for b in data:
            if self._dial_at:  # any character aborts dialing (V.250 6.3.1)
                self._dial_at = 0.0
                self._off_hook = False
                self._line("NO CARRIER")
                continue
            if b in (0x0D, 0x0A):
                if self._cmd:
                    text = self._cmd.decode("ascii", errors="replace").strip()
                    self._cmd.clear()
                    if self._echo:
                        self._send(text.encode() + b"\r")
                    self._execute(text)
                    if self._mode != "command":
                        return  # what follows belongs to the voice stream (none expected before CONNECT)
            elif len(self._cmd) < 256:
                self._cmd.append(b)

    def _execute(self, text: str) -> None:
        self.commands.append(text)
        cmd = text.upper()
        if not cmd.startswith("AT"):
            return self._line("ERROR")
        body = cmd[2:]
        voice = self._fclass == 8
        if body == "":
            return self._line("OK")
        if body in ("Z", "Z0"):
            hung = self._hung
            self._reset()
            self._hung = hung
            return self._line("OK")
        if body in ("E0", "E1"):
            self._echo = body == "E1"
            return self._line("OK")
        if body in ("I", "I0", "I3"):
            self._line("Plateau V.253 modem twin")
            return self._line("OK")
        if body in ("H", "H0"):
            self._off_hook = self._in_call = self._ringing = False
            return self._line("OK")
        if body.startswith("+FCLASS"):
            return self._param(body[7:], lambda v: v in ("0", "1", "8"), "_fclass", "(0,1,8)")
        if not voice and (body.startswith("D") or body.startswith("+V")):  # voice commands need +FCLASS=8
            return self._line("ERROR")
        if body.startswith("D"):
            if not body.endswith(";") or len(body) < 3:
                return self._line("ERROR")
            self.dialed.append(body[1:-1])
            self._off_hook = True
            self._dial_at = time.monotonic() + self.dial_delay
            return None
        if body.startswith("+VCID"):
            return self._param(body[5:], lambda v: v in ("0", "1", "2"), "_vcid", "(0-2)")
        if body == "+VSM=?":
            for line in self.vsm:
                self._line(line)
            return self._line("OK")
        if body == "+VSM?":
            self._line(f"{self._vsm},8000,0,0")
            return self._line("OK")
        if body.startswith("+VSM="):
            parts = body[5:].split(",")
            codes = {line.split(",", 1)[0] for line in self.vsm}
            ok = parts[0] in codes and (len(parts) < 2 or parts[1] == "8000")
            if ok:
                self._vsm = int(parts[0])
            return self._line("OK" if ok else "ERROR")
        if body.startswith("+VLS"):
            if body == "+VLS=1":
                self._off_hook = True
                if self._ringing:  # answering: the ring stops, the call is up
                    self._ringing = False
                    self._in_call = True
                return self._line("OK")
            if body == "+VLS=0":
                self._off_hook = self._in_call = False
                return self._line("OK")
            return self._line("OK" if body in ("+VLS?", "+VLS=?") else "ERROR")
        if body == "+VTR=?":
            return self._line("OK" if self.duplex else "ERROR")
        if body in ("+VTR", "+VRX", "+VTX"):
            if (body == "+VTR" and not self.duplex) or not (self._off_hook and self._in_call):
                return self._line("ERROR")
            self._mode = body[1:].lower()
            self._line("CONNECT")
            self._next_tick = time.monotonic()
            self._src_pos = 0
            return None
        return self._line("ERROR")

    def _param(self, rest: str, valid: Callable[[str], bool], attr: str, ranges: str) -> None:
        if rest == "=?":
            self._line(ranges)
        elif rest == "?":
            self._line(str(getattr(self, attr)))
        elif rest.startswith("=") and valid(rest[1:]):
            setattr(self, attr, int(rest[1:]))
        else:
            return self._line("ERROR")
        return self._line("OK")
