"""Frames of the line-board protocol, version 1 (hw/PROTOCOL.md): one dataclass per frame type.

A frame on the wire is COBS(type, seq, port, payload, CRC-16/CCITT-FALSE big-endian) + 0x00.
`encode_frame` builds those bytes from a message and a sequence number; `decode_frame` turns
the bytes between two delimiters back into a `Frame`, raising a typed `FrameError` that tells
the receiver which counter to bump (framing_errors or crc_errors).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from hw import cobs
from hw.crc import crc16_ccitt_false

PROTOCOL_VERSION = 1
BOARD = 0xFF  # the `port` of board-level frames
MAX_PORT = 15
MAX_PAYLOAD = 320
MIN_FRAME = 5  # type, seq, port, CRC
MAX_FRAME = 3 + MAX_PAYLOAD + 2
AUDIO_BYTES = 160  # 20 ms of 8 kHz G.711 µ-law
B_CHANNELS = (1, 2)  # the B channels of a basic-rate access (ITU-T I.430)
# HELLO `host_features` bits (an optional second HELLO byte; a v1 board ignores it).
HOST_BAUDIO = 0x01  # the host takes both B channels of a BRI port as BAUDIO
HOST_FEATURES = HOST_BAUDIO  # what this host asks for
# CAPS per-port `flags` bits.
CAPS_AUDIO_ON_LINK = 0x01
CAPS_USB_AUDIO = 0x02
CAPS_TWO_B = 0x04  # BRI: both B channels on the link as BAUDIO (two calls per port)
DELIMITER = b"\x00"


class FrameType(enum.IntEnum):
    HELLO = 0x01
    CAPS = 0x02
    ACK = 0x03
    PING = 0x04
    PONG = 0x05
    STATUS = 0x06
    RING = 0x10
    STOP_RING = 0x11
    OFFHOOK = 0x12
    ONHOOK = 0x13
    DIAL = 0x14
    SET_GAIN = 0x15
    TONE = 0x16
    OFF_HOOK = 0x20
    ON_HOOK = 0x21
    FLASH = 0x22
    RING_START = 0x23
    RING_STOP = 0x24
    CALLER_ID = 0x25
    POLARITY = 0x26
    DTMF = 0x27
    BUSY_TONE = 0x28
    AUDIO = 0x30
    DCHAN = 0x31
    BAUDIO = 0x32


class PortKind(enum.IntEnum):
    FXS = 1
    FXO = 2
    BRI = 3


class AckStatus(enum.IntEnum):
    OK = 0
    BAD_PORT = 1
    BAD_STATE = 2
    BAD_ARGUMENT = 3
    UNSUPPORTED = 4


class Cadence(enum.IntEnum):
    FR = 0  # 1.5 s on / 3.5 s off
    UK = 1  # 0.4 / 0.2 / 0.4 / 2.0
    US = 2  # 2 s on / 4 s off


class CidMode(enum.IntEnum):
    NONE = 0
    ETSI_FSK = 1  # ETSI EN 300 659-1, V.23
    BELL_FSK = 2  # Telcordia GR-30, Bell 202
    DTMF = 3  # DTMF CLIP (number only)


class ToneKind(enum.IntEnum):
    OFF = 0
    DIAL = 1
    RINGBACK = 2
    BUSY = 3
    CONGESTION = 4


# -- errors -----------------------------------------------------------------------------------
class FrameError(ValueError):
    """A frame that cannot be used; `counter` names the link counter it belongs to."""

    counter = "framing_errors"


class FramingError(FrameError):
    """Bad COBS, or a decoded length outside 5..325 bytes."""


class CrcError(FrameError):
    """The CRC does not match: a corrupted frame."""

    counter = "crc_errors"


class PayloadError(FrameError):
    """The CRC is right but the payload does not fit its type (or a bad port number)."""


class RangeError(PayloadError):
    """A well-formed frame carrying a value outside its range: a port number wrong for the frame
    type (or beyond the board's CAPS), a port count, a DTMF duration, a caller-ID number..."""

    counter = "range_errors"


class UnknownType(FrameError):
    """A well-formed frame of a type this protocol version does not define."""

    counter = "unknown_frames"


# -- messages ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PortCaps:
    kind: PortKind
    flags: int  # bit 0: audio on this link; bit 1: USB audio interface; bit 2: BRI, two B channels (BAUDIO)

    @property
    def audio_on_link(self) -> bool:
        return bool(self.flags & CAPS_AUDIO_ON_LINK)

    @property
    def b_channels(self) -> int:
        """Calls the port carries at once: 2 on a BRI port whose B channels both travel as BAUDIO, else 1."""
        return 2 if self.kind == PortKind.BRI and self.flags & CAPS_TWO_B else 1


@dataclass(frozen=True)
class PortStatus:
    state: int  # FXS 0 idle, 1 off-hook, 2 ringing; FXO 0 idle, 1 ringing, 2 off-hook
    line: int  # FXO line voltage (0.1 V), FXS loop current (0.1 mA)
    alarms: int  # bit 0 no line, bit 1 over-current, bit 2 over-temperature


@dataclass(frozen=True)
class Hello:
    protocol_version: int = PROTOCOL_VERSION
    port: int = BOARD
    features: int = HOST_FEATURES  # 0: the one-byte HELLO of a host that asks for nothing (HOST_* bits)


@dataclass(frozen=True)
class Caps:
    protocol_version: int
    fw_major: int = 0
    fw_minor: int = 0
    ports: tuple[PortCaps, ...] = ()
    serial: str = ""
    port: int = BOARD


@dataclass(frozen=True)
class Ack:
    acked_seq: int
    status: AckStatus = AckStatus.OK
    port: int = BOARD


@dataclass(frozen=True)
class Ping:
    token: int
    port: int = BOARD


@dataclass(frozen=True)
class Pong:
    token: int
    port: int = BOARD


@dataclass(frozen=True)
class Status:
    ports: tuple[PortStatus, ...]
    port: int = BOARD


@dataclass(frozen=True)
class Ring:
    port: int
    cadence: Cadence = Cadence.FR
    cid_mode: CidMode = CidMode.ETSI_FSK
    number: str = ""
    name: str = ""


@dataclass(frozen=True)
class StopRing:
    port: int


@dataclass(frozen=True)
class OffhookCommand:
    """OFFHOOK (0x12): FXO, seize the line."""

    port: int


@dataclass(frozen=True)
class OnhookCommand:
    """ONHOOK (0x13): FXO, release the line."""

    port: int


@dataclass(frozen=True)
class Dial:
    port: int
    digits: str


@dataclass(frozen=True)
class SetGain:
    port: int
    tx_db: int
    rx_db: int


@dataclass(frozen=True)
class Tone:
    port: int
    tone: ToneKind


@dataclass(frozen=True)
class OffHookEvent:
    """OFF_HOOK (0x20): FXS, the phone was lifted."""

    port: int


@dataclass(frozen=True)
class OnHookEvent:
    """ON_HOOK (0x21): FXS hung up for more than 800 ms; FXO line released."""

    port: int


@dataclass(frozen=True)
class Flash:
    port: int


@dataclass(frozen=True)
class RingStart:
    port: int


@dataclass(frozen=True)
class RingStop:
    port: int


@dataclass(frozen=True)
class CallerId:
    port: int
    number: str
    name: str = ""


@dataclass(frozen=True)
class Polarity:
    port: int
    reversed: bool


@dataclass(frozen=True)
class Dtmf:
    port: int
    digit: str
    duration_ms: int = 100


@dataclass(frozen=True)
class BusyTone:
    port: int


@dataclass(frozen=True)
class Audio:
    port: int
    ulaw: bytes  # 160 bytes, 20 ms


@dataclass(frozen=True)
class DChan:
    port: int
    lapd: bytes


@dataclass(frozen=True)
class BAudio:
    """BAUDIO (0x32): 20 ms of µ-law for one B channel (1 or 2) of a BRI port whose CAPS has bit 2."""

    port: int
    b_channel: int
    ulaw: bytes  # 160 bytes, 20 ms


Message = (Hello | Caps | Ack | Ping | Pong | Status | Ring | StopRing | OffhookCommand | OnhookCommand | Dial
           | SetGain | Tone | OffHookEvent | OnHookEvent | Flash | RingStart | RingStop | CallerId | Polarity | Dtmf
           | BusyTone | Audio | DChan | BAudio)


@dataclass(frozen=True)
class Frame:
    """A decoded frame: the sender's sequence number and the message."""

    seq: int
    message: Message


# -- payload codecs -----------------------------------------------------------------------------
_EMPTY: dict[type, FrameType] = {
    StopRing: FrameType.STOP_RING, OffhookCommand: FrameType.OFFHOOK, OnhookCommand: FrameType.ONHOOK,
    OffHookEvent: FrameType.OFF_HOOK, OnHookEvent: FrameType.ON_HOOK, Flash: FrameType.FLASH,
    RingStart: FrameType.RING_START, RingStop: FrameType.RING_STOP, BusyTone: FrameType.BUSY_TONE,
}
_EMPTY_BY_TYPE = {t: cls for cls, t in _EMPTY.items()}
DTMF_DIGITS = "0123456789*#ABCD"
DIAL_DIGITS = "0123456789*#"
# Frames about the board itself carry port 0xFF; every other type names one of its ports (0-15).
BOARD_TYPES = frozenset({FrameType.HELLO, FrameType.CAPS, FrameType.PING, FrameType.PONG, FrameType.STATUS})
MAX_PORTS = MAX_PORT + 1  # CAPS and STATUS list at most this many ports
MAX_DTMF_MS = 10_000  # a key held longer is a stuck key or garbage, not a digit
# ETSI EN 300 659-3 5.3.3: a CLIP number of at most 20 characters; "P" (private) and "O"
# (unavailable) stand in for an absent one (5.3.4). Names at most 50 characters (5.3.6).
CID_NUMBER_CHARS = frozenset("0123456789*#+")
MAX_CID_NUMBER = 20
MAX_CID_NAME = 50
# ITU-T Q.921 5.1/5.9: address (2) + control (1 or 2) + at most N201 = 260 information octets.
MIN_LAPD = 3
MAX_LAPD = 264


def _lstr(text: str, encoding: str, what: str) -> bytes:
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise PayloadError(f"{what} is not {encoding}: {text!r}") from exc
    if len(raw) > 255:
        raise PayloadError(f"{what} longer than 255 bytes")
    return bytes([len(raw)]) + raw


class _Reader:
    """Reads a payload front to back; any overrun or leftover is a PayloadError."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise PayloadError(f"{self.what}: payload too short ({len(self.data)} bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def lstr(self, encoding: str) -> str:
        raw = self.take(self.u8())
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise PayloadError(f"{self.what}: string is not {encoding}") from exc

    def end(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(f"{self.what}: {len(self.data) - self.pos} unexpected trailing bytes")


def _payload(msg: Message) -> tuple[FrameType, bytes]:
    if type(msg) in _EMPTY:
        return _EMPTY[type(msg)], b""
    if isinstance(msg, Hello):
        # The features byte only when there is something to ask: a host asking nothing sends v1's one byte.
        return FrameType.HELLO, bytes([msg.protocol_version]) + (bytes([msg.features]) if msg.features else b"")
    if isinstance(msg, Caps):
        body = bytes([msg.protocol_version, msg.fw_major, msg.fw_minor, len(msg.ports)])
        for p in msg.ports:
            body += bytes([int(p.kind), p.flags])
        return FrameType.CAPS, body + _lstr(msg.serial, "ascii", "board serial")
    if isinstance(msg, Ack):
        return FrameType.ACK, bytes([msg.acked_seq, int(msg.status)])
    if isinstance(msg, Ping):
        return FrameType.PING, struct.pack(">I", msg.token)
    if isinstance(msg, Pong):
        return FrameType.PONG, struct.pack(">I", msg.token)
    if isinstance(msg, Status):
        for st in msg.ports:
            if not (0 <= st.state <= 255 and -32768 <= st.line <= 32767 and 0 <= st.alarms <= 255):
                raise PayloadError(f"STATUS field out of range: {st}")
        return FrameType.STATUS, b"".join(struct.pack(">BhB", st.state, st.line, st.alarms) for st in msg.ports)
    if isinstance(msg, Ring):
        return FrameType.RING, (bytes([int(msg.cadence), int(msg.cid_mode)]) + _lstr(msg.number, "ascii", "number")
                                + _lstr(msg.name, "utf-8", "name"))
    if isinstance(msg, Dial):
        if not msg.digits or any(d not in DIAL_DIGITS for d in msg.digits):
            raise PayloadError(f"DIAL digits must be 0-9*#: {msg.digits!r}")
        return FrameType.DIAL, _lstr(msg.digits, "ascii", "digits")
    if isinstance(msg, SetGain):
        if not (-12 <= msg.tx_db <= 12 and -12 <= msg.rx_db <= 12):
            raise PayloadError("SET_GAIN out of -12..+12 dB")
        return FrameType.SET_GAIN, struct.pack(">bb", msg.tx_db, msg.rx_db)
    if isinstance(msg, Tone):
        return FrameType.TONE, bytes([int(msg.tone)])
    if isinstance(msg, CallerId):
        return FrameType.CALLER_ID, _lstr(msg.number, "ascii", "number") + _lstr(msg.name, "utf-8", "name")
    if isinstance(msg, Polarity):
        return FrameType.POLARITY, bytes([1 if msg.reversed else 0])
    if isinstance(msg, Dtmf):
        if len(msg.digit) != 1 or msg.digit not in DTMF_DIGITS:
            raise PayloadError(f"DTMF digit must be one of {DTMF_DIGITS}: {msg.digit!r}")
        return FrameType.DTMF, msg.digit.encode() + struct.pack(">H", msg.duration_ms)
    if isinstance(msg, Audio):
        if len(msg.ulaw) != AUDIO_BYTES:
            raise PayloadError(f"AUDIO carries {AUDIO_BYTES} bytes, not {len(msg.ulaw)}")
        return FrameType.AUDIO, bytes(msg.ulaw)
    if isinstance(msg, DChan):
        return FrameType.DCHAN, bytes(msg.lapd)
    if isinstance(msg, BAudio):
        if msg.b_channel not in B_CHANNELS:
            raise PayloadError(f"BAUDIO B channel must be 1 or 2, not {msg.b_channel}")
        if len(msg.ulaw) != AUDIO_BYTES:
            raise PayloadError(f"BAUDIO carries {AUDIO_BYTES} bytes, not {len(msg.ulaw)}")
        return FrameType.BAUDIO, bytes([msg.b_channel]) + bytes(msg.ulaw)
    raise TypeError(f"not a line-board message: {msg!r}")


def _message(ftype: int, port: int, payload: bytes) -> Message:
    try:
        kind = FrameType(ftype)
    except ValueError as exc:
        raise UnknownType(f"unknown frame type 0x{ftype:02x}") from exc
    r = _Reader(payload, kind.name)
    msg: Message
    if kind in _EMPTY_BY_TYPE:
        msg = _EMPTY_BY_TYPE[kind](port)
    elif kind == FrameType.HELLO:
        version = r.u8()
        features = r.u8() if len(payload) > 1 else 0  # v1 hosts send the version alone
        msg = Hello(version, port, features)
    elif kind == FrameType.CAPS:
        version = r.u8()
        if version != PROTOCOL_VERSION:
            # Another version may lay CAPS out differently: only its version is ours to read.
            return Caps(version, port=port)
        fw_major, fw_minor, n = r.u8(), r.u8(), r.u8()
        ports = []
        for _ in range(n):
            raw_kind, flags = r.u8(), r.u8()
            try:
                ports.append(PortCaps(PortKind(raw_kind), flags))
            except ValueError as exc:
                raise PayloadError(f"CAPS: unknown port kind {raw_kind}") from exc
        msg = Caps(version, fw_major, fw_minor, tuple(ports), r.lstr("ascii"), port)
    elif kind == FrameType.ACK:
        acked, status = r.u8(), r.u8()
        try:
            msg = Ack(acked, AckStatus(status), port)
        except ValueError as exc:
            raise PayloadError(f"ACK: unknown status {status}") from exc
    elif kind in (FrameType.PING, FrameType.PONG):
        (token,) = struct.unpack(">I", r.take(4))
        msg = Ping(token, port) if kind == FrameType.PING else Pong(token, port)
    elif kind == FrameType.STATUS:
        if len(payload) % 4:
            raise PayloadError(f"STATUS: {len(payload)} bytes is not 4 per port")
        msg = Status(tuple(PortStatus(*struct.unpack(">BhB", r.take(4))) for _ in range(len(payload) // 4)), port)
    elif kind == FrameType.RING:
        cadence, cid = r.u8(), r.u8()
        try:
            msg = Ring(port, Cadence(cadence), CidMode(cid), r.lstr("ascii"), r.lstr("utf-8"))
        except ValueError as exc:
            raise PayloadError(f"RING: bad cadence {cadence} or caller-ID mode {cid}") from exc
    elif kind == FrameType.DIAL:
        digits = r.lstr("ascii")
        if not digits or any(d not in DIAL_DIGITS for d in digits):
            raise PayloadError(f"DIAL: bad digits {digits!r}")
        msg = Dial(port, digits)
    elif kind == FrameType.SET_GAIN:
        tx, rx = struct.unpack(">bb", r.take(2))
        msg = SetGain(port, tx, rx)
    elif kind == FrameType.TONE:
        tone = r.u8()
        try:
            msg = Tone(port, ToneKind(tone))
        except ValueError as exc:
            raise PayloadError(f"TONE: unknown tone {tone}") from exc
    elif kind == FrameType.CALLER_ID:
        msg = CallerId(port, r.lstr("ascii"), r.lstr("utf-8"))
    elif kind == FrameType.POLARITY:
        msg = Polarity(port, bool(r.u8()))
    elif kind == FrameType.DTMF:
        digit = chr(r.u8())
        if digit not in DTMF_DIGITS:
            raise PayloadError(f"DTMF: bad digit {digit!r}")
        (duration,) = struct.unpack(">H", r.take(2))
        msg = Dtmf(port, digit, duration)
    elif kind == FrameType.AUDIO:
        msg = Audio(port, r.take(AUDIO_BYTES))
    elif kind == FrameType.BAUDIO:
        b = r.u8()
        if b not in B_CHANNELS:
            raise PayloadError(f"BAUDIO: B channel {b} is not 1 or 2")
        msg = BAudio(port, b, r.take(AUDIO_BYTES))
    else:  # DCHAN
        msg = DChan(port, r.take(len(payload)))
    r.end()
    check_ranges(kind, msg)
    return msg


def check_ranges(kind: FrameType, msg: Message) -> None:
    """The one range check of a decoded message's values (everything a board sends is hostile
    input to the host); raises RangeError. Lengths and enum values were checked while reading."""
    port = msg.port
    if kind in BOARD_TYPES:
        if port != BOARD:
            raise RangeError(f"{kind.name}: a board-level frame on port {port}, not 0x{BOARD:02X}")
    elif kind != FrameType.ACK and port > MAX_PORT:  # an ACK may answer a command sent to 0xFF
        raise RangeError(f"{kind.name}: needs a port 0-{MAX_PORT}, not 0x{port:02X}")
    if isinstance(msg, Caps) and len(msg.ports) > MAX_PORTS:
        raise RangeError(f"CAPS: {len(msg.ports)} ports (at most {MAX_PORTS})")
    elif isinstance(msg, Status) and len(msg.ports) > MAX_PORTS:
        raise RangeError(f"STATUS: {len(msg.ports)} ports (at most {MAX_PORTS})")
    elif isinstance(msg, Dtmf) and msg.duration_ms > MAX_DTMF_MS:
        raise RangeError(f"DTMF: duration {msg.duration_ms} ms (at most {MAX_DTMF_MS})")
    elif isinstance(msg, CallerId):
        number = msg.number
        if len(number) > MAX_CID_NUMBER or not (number in ("P", "O") or set(number) <= CID_NUMBER_CHARS):
            raise RangeError(f"CALLER_ID: number {number[:32]!r} is not 0-{MAX_CID_NUMBER} of 0-9*#+, P or O")
        if len(msg.name) > MAX_CID_NAME or not msg.name.isprintable():
            raise RangeError(f"CALLER_ID: name of {len(msg.name)} characters, or not printable")
    elif isinstance(msg, DChan) and not MIN_LAPD <= len(msg.lapd) <= MAX_LAPD:
        raise RangeError(f"DCHAN: a LAPD frame of {len(msg.lapd)} octets ({MIN_LAPD}..{MAX_LAPD})")


# -- frames -------------------------------------------------------------------------------------
def frame_body(msg: Message, seq: int) -> bytes:
    """The decoded frame (type, seq, port, payload, CRC) for `msg`; raises PayloadError."""
    ftype, payload = _payload(msg)
    port = msg.port
    if not (0 <= port <= MAX_PORT or port == BOARD):
        raise PayloadError(f"port {port} is not 0-{MAX_PORT} or 0x{BOARD:02X}")
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    head = bytes([int(ftype), seq & 0xFF, port]) + payload
    return head + struct.pack(">H", crc16_ccitt_false(head))


def encode_frame(msg: Message, seq: int) -> bytes:
    """The wire bytes of `msg` sent with sequence number `seq`: COBS frame plus 0x00 delimiter."""
    return cobs.encode(frame_body(msg, seq)) + DELIMITER


def decode_body(body: bytes) -> Frame:
    """Check and parse a decoded (un-COBSed) frame."""
    if not MIN_FRAME <= len(body) <= MAX_FRAME:
        raise FramingError(f"frame of {len(body)} bytes (must be {MIN_FRAME}..{MAX_FRAME})")
    (crc,) = struct.unpack(">H", body[-2:])
    if crc16_ccitt_false(body[:-2]) != crc:
        raise CrcError("CRC mismatch")
    ftype, seq, port = body[0], body[1], body[2]
    if not (port <= MAX_PORT or port == BOARD):
        raise PayloadError(f"port {port} is not 0-{MAX_PORT} or 0x{BOARD:02X}")
    return Frame(seq, _message(ftype, port, body[3:-2]))


def decode_frame(encoded: bytes) -> Frame:
    """Decode the bytes between two 0x00 delimiters; raises a FrameError subclass."""
    if len(encoded) > MAX_FRAME + 2:
        raise FramingError(f"COBS frame of {len(encoded)} bytes is too long")
    try:
        body = cobs.decode(encoded)
    except cobs.CobsError as exc:
        raise FramingError(str(exc)) from exc
    return decode_body(body)


class Deframer:
    """Splits a byte stream into frames at 0x00 and decodes them.

    `feed` returns what it decoded, with errors in place (FrameError instances), so the
    caller counts them; a garbled stretch costs at most the frame it hit (resync at 0x00).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        out: list[Frame | FrameError] = []
        self._buf += data
        while True:
            idx = self._buf.find(0)
            if idx < 0:
                break
            chunk = bytes(self._buf[:idx])
            del self._buf[:idx + 1]
            if self._overflow:
                self._overflow = False
                out.append(FramingError("oversized frame (no delimiter)"))
                continue
            if not chunk:
                continue  # back-to-back delimiters: idle fill, not a frame
            try:
                out.append(decode_frame(chunk))
            except FrameError as exc:
                out.append(exc)
        if len(self._buf) > MAX_FRAME + 2:
            # No delimiter in far too many bytes: drop them and count one error at the next 0x00.
            self._buf.clear()
            self._overflow = True
        return out
