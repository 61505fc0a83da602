"""ITU-T V.253 wire format: the pure half of the voice-modem driver (no I/O, no threads).

What the DCE sends in voice mode (`+FCLASS=8`) is result-code lines in command mode and, once
`+VTR` (duplex) or `+VRX` (receive) has answered CONNECT, a G.711 stream in which the byte 0x10
(<DLE>) introduces a *shielded code*: <DLE><DLE> is a literal 0x10, <DLE><SUB> two of them,
<DLE><ETX> ends the stream, anything else is an event (V.253 clause 9, DLE shielding; the
event-report table is IS-101 heritage). The same rule applies to what the DTE sends, hence
`dle_shield`. The compression method is chosen from the `AT+VSM=?` listing (V.253 +VSM) by
name, since chipsets number their methods differently. Dial strings follow V.250 6.3.1.

Everything here works on bytes and strings only, so it is tested without a port; hw/modem.py
owns the serial port, the threads and the line state machine. hw/sim/modem.py keeps its own
parser on purpose, so the twin does not share this module's mistakes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DLE = 0x10
ETX = 0x03
SUB = 0x1A  # <DLE><SUB>: a compact form of two 0x10 data bytes (V.253 DLE codes)


class ModemError(Exception):
    """Base of everything the modem driver raises (the driver's own errors live in hw/modem.py)."""


class UnsupportedModem(ModemError):
    """The modem lacks something the driver needs (µ-law at 8 kHz)."""


# -- result codes and shielded codes --------------------------------------------------------
# DCE -> DTE shielded event codes (V.253 event-report table; IS-101 heritage).
DLE_EVENTS: dict[str, str] = {
    "b": "busy tone", "d": "dial tone", "s": "silence", "q": "quiet", "c": "fax calling tone",
    "e": "data calling tone", "a": "fax answer tone", "f": "data answer tone", "h": "line current break",
    "l": "loop current interruption", "L": "loop current reversal", "r": "ringback", "R": "ring",
    "o": "receive buffer overrun", "u": "transmit buffer underrun", "T": "timing mark",
    "/": "start of DTMF shielding", "~": "end of DTMF shielding", "$": "bong tone", "!": "abort",
}
DTMF_DIGITS = frozenset("0123456789*#ABCD")

FINAL_CODES = frozenset({"OK", "ERROR", "CONNECT", "NO CARRIER", "BUSY", "NO ANSWER", "NO DIALTONE",
                         "NO DIAL TONE", "VCON"})
# Lines the DCE sends on its own, which are never the answer to a pending command.
UNSOLICITED = re.compile(r"^(RING\b|(DATE|TIME|NMBR|NAME|MESG|DDN_NMBR)\s*=)")
CID_FIELD = re.compile(r"^(DATE|TIME|NMBR|NAME)\s*=\s*(.*)$")
DIAL_STRING = re.compile(r"[0-9*#A-D,WPT!@]{1,40}")  # V.250 6.3.1 dial modifiers; no ';' or CR
_ULAW_NAME = re.compile(r"U-?LAW|U-?LOG|MU-?LAW|G\.?711\s*U|G711U", re.IGNORECASE)
_VSM_LINE = re.compile(r'^(?:\+VSM:\s*)?(\d+)\s*,\s*"?([^",]*)"?\s*,(.*)$')
MAX_LINE = 256
# Caller ID from the DCE (the NMBR=/NAME= lines of +VCID=1): ETSI EN 300 659-3 5.3.3 allows at
# most 20 number characters, "P" (private) or "O" (out of area) standing for an absent one; a
# name has at most 50 (5.3.6). Anything else is garbage on the line, not a caller.
CID_NUMBER = re.compile(r"[0-9*#+]{0,20}|[PO]")
MAX_CID_NAME = 50


def dle_shield(audio: bytes) -> bytes:
    """Double every 0x10 so voice data cannot be read as a shielded code (V.253 DLE shielding)."""
    return audio.replace(b"\x10", b"\x10\x10")


def pick_ulaw(vsm_lines: list[str], rate: int = 8000) -> int:
    """The +VSM compression method whose name says G.711 µ-law, from the `AT+VSM=?` listing.

    Codes differ between chipsets (USR lists 131 "ULAW" and 132 "ALAW", others 4 "G711U"), so the
    name decides, never the number. Raises UnsupportedModem when none is listed or `rate` is absent.
    """
    for line in vsm_lines:
        m = _VSM_LINE.match(line.strip())
        if m is None or not _ULAW_NAME.search(m.group(2)):
            continue
        rates = {int(r) for r in re.findall(r"\d+", m.group(3)) if int(r) >= 4000}
        if rate in rates or not rates:
            return int(m.group(1))
    raise UnsupportedModem(f"no G.711 µ-law at {rate} Hz in AT+VSM=? ({len(vsm_lines)} lines)")


# -- tokens from the byte stream ----------------------------------------------------------
@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class DleCode:
    code: str


@dataclass(frozen=True)
class VoiceData:
    data: bytes


@dataclass(frozen=True)
class StreamEnd:
    pass


@dataclass(frozen=True)
class Malformed:
    """Input dropped at the boundary (the driver counts it): an unknown shielded code, a line with
    bytes that are not printable ASCII, an over-long line, a caller-ID field out of range."""

    reason: str


Token = Line | DleCode | VoiceData | StreamEnd | Malformed
KNOWN_DLE_CODES = frozenset(DLE_EVENTS) | DTMF_DIGITS


def check_line(text: str) -> str | None:
    """Why a result-code line cannot be used (None when it can): the one range check of lines."""
    if not text.isascii() or not text.isprintable():
        return f"line {text[:40]!r} is not printable ASCII"
    m = CID_FIELD.match(text)
    if m is not None:
        value = m.group(2).strip()
        if m.group(1) == "NMBR" and not CID_NUMBER.fullmatch(value):
            return f"caller-ID number {value[:40]!r} is not 0-20 of 0-9*#+, P or O"
        if m.group(1) == "NAME" and len(value) > MAX_CID_NAME:
            return f"caller-ID name of {len(value)} characters (at most {MAX_CID_NAME})"
    return None


def _dle(code: int) -> DleCode | Malformed:
    char = chr(code)
    if char in KNOWN_DLE_CODES:
        return DleCode(char)
    return Malformed(f"unknown shielded code <DLE> 0x{code:02x}")


class V253Parser:
    """Splits the DCE -> DTE bytes into result-code lines, DLE events and voice data.

    Pure and incremental: a chunk may end anywhere, even between <DLE> and its code.
    `expect_stream` is set before a command that answers CONNECT and then streams voice.
    """

    def __init__(self) -> None:
        self.streaming = False
        self.expect_stream = False
        self._line = bytearray()
        self._carry = b""
        self._skip_lf = False  # CONNECT<CR> started the stream; its <LF> is not voice
        self._overlong = False  # the current line passed MAX_LINE: dropped at its end

    def feed(self, data: bytes) -> list[Token]:
        data = self._carry + data
        self._carry = b""
        out: list[Token] = []
        i = 0
        while i < len(data):
            i = self._stream(data, i, out) if self.streaming else self._lines(data, i, out)
        return out

    def _stream(self, data: bytes, i: int, out: list[Token]) -> int:
        audio = bytearray()
        n = len(data)
        if self._skip_lf and i < n:
            self._skip_lf = False
            if data[i] == 0x0A:
                i += 1
        while i < n:
            j = data.find(DLE, i)
            if j < 0:
                audio += data[i:]
                i = n
                break
            audio += data[i:j]
            if j + 1 >= n:  # <DLE> at the end of the chunk: decide with the next one
                self._carry = data[j:]
                i = n
                break
            code = data[j + 1]
            i = j + 2
            if code == DLE:
                audio.append(DLE)
            elif code == SUB:
                audio += b"\x10\x10"
            else:
                if audio:
                    out.append(VoiceData(bytes(audio)))
                    audio = bytearray()
                if code == ETX:
                    out.append(StreamEnd())
                    self.streaming = False
                    return i
                out.append(_dle(code))
        if audio:
            out.append(VoiceData(bytes(audio)))
        return i

    def _lines(self, data: bytes, i: int, out: list[Token]) -> int:
        n = len(data)
        while i < n:
            b = data[i]
            i += 1
            if b == DLE:  # events may be shielded in voice command mode too
                if i >= n:
                    self._carry = b"\x10"
                    return n
                if data[i] not in (DLE, ETX):
                    out.append(_dle(data[i]))
                i += 1
            elif b in (0x0D, 0x0A):
                if self._overlong:
                    self._overlong = False
                    self._line.clear()
                    out.append(Malformed(f"line longer than {MAX_LINE} bytes"))
                elif self._line:
                    text = self._line.decode("ascii", errors="replace").strip()
                    self._line.clear()
                    why = check_line(text)
                    if why is not None:
                        out.append(Malformed(why))
                    elif text:
                        out.append(Line(text))
                        if text == "CONNECT" and self.expect_stream:
                            self.expect_stream = False
                            self.streaming = True
                            self._skip_lf = b == 0x0D
                            return i
            elif len(self._line) < MAX_LINE:  # garbage without line ends cannot grow us
                self._line.append(b)
            else:
                self._overlong = True
        return i
