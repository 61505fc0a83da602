"""A minimal ctypes binding to libpri (Q.921 LAPD + Q.931 call control) in callback mode.

libpri normally owns a DAHDI HDLC file descriptor; `pri_new_bri_cb` lets it read and write
through two callbacks instead, so the D channel runs over whatever carries our frames (the
line-board link's `DCHAN` frames, or another libpri instance in a test). Only what the BRI
port needs is bound: creating a controller, feeding it received frames (`pri_check_event`),
running its timers (`pri_schedule_run`), placing, alerting, answering and clearing calls, and
decoding the events those produce into dataclasses.

Struct layouts are copied from /usr/include/libpri.h of libpri 1.6.0 (Debian bookworm package
libpri-dev 1.6.0-2, run-time library libpri.so.1.4). Event structs are declared only up to the
last field we read: we only ever read them through a pointer into libpri's own storage, so a
prefix of the layout is enough. tests/hw/test_isdn.py checks every offset we use against the
header with the C compiler.

Frames: HDLC hardware strips the flags and checks the FCS, but libpri still expects two FCS
octets at the end of every frame it reads and appends two (not computed) to every frame it
writes (q921.c: `write_func(ctrl, h, len + 2)`; `q921_receive` drops the last two). This
binding hides that: callers send and feed bare LAPD frames, as `DCHAN` frames carry them.

libpri has no public destructor for a controller (Asterisk never frees one either), so a
closed `Pri` keeps its few kilobytes and its callbacks for the life of the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import enum
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("plateau.hw.libpri")

HEADER_VERSION = "libpri 1.6.0 (/usr/include/libpri.h, Debian libpri-dev 1.6.0-2)"
_FCS_LEN = 2  # two octets libpri reads past and writes after each frame (see module docstring)
_MAX_FRAME = 1024 - _FCS_LEN  # pri_check_event reads into a 1024-octet buffer


# -- constants from libpri.h ------------------------------------------------------------------------
class Node(enum.IntEnum):
    """Which side of the user-network interface we are (Q.931 clause 3: user or network)."""

    NETWORK = 1  # PRI_NETWORK: NT, the exchange side
    CPE = 2  # PRI_CPE: TE, the user (our PBX on a carrier's BRI)


PRI_SWITCH_EUROISDN_E1 = 5  # ETSI EN 300 102 (DSS1); also what Europe's BRI lines speak

PRI_DEBUG_Q921_STATE = 1 << 2
PRI_DEBUG_Q931_DUMP = 1 << 5
PRI_DEBUG_Q931_STATE = 1 << 6
PRI_DEBUG_ALL = 0xFFFF

PRI_TRANS_CAP_SPEECH = 0x0
PRI_TRANS_CAP_3_1K_AUDIO = 0x10
PRI_LAYER_1_ULAW = 0x22
PRI_LAYER_1_ALAW = 0x23

PRI_UNKNOWN = 0x0  # numbering plan/type "unknown": the exchange interprets the digits
PRI_NATIONAL_ISDN = 0x21
PRI_PRES_ALLOWED_USER_NUMBER_NOT_SCREENED = 0x00
PRI_PROG_INBAND_AVAILABLE = 1 << 3

PRI_L2_PERSISTENCE_KEEP_UP = 1


class EventType(enum.IntEnum):
    """PRI_EVENT_* codes (only those the port acts on are decoded beyond their code)."""

    DCHAN_UP = 1
    DCHAN_DOWN = 2
    RESTART = 3
    CONFIG_ERR = 4
    RING = 5  # SETUP received
    HANGUP = 6  # RELEASE / RELEASE COMPLETE received: the call is gone
    RINGING = 7  # ALERTING received
    ANSWER = 8  # CONNECT received
    HANGUP_ACK = 9  # our clearing completed
    RESTART_ACK = 10
    FACILITY = 11
    INFO_RECEIVED = 12
    PROCEEDING = 13  # CALL PROCEEDING received
    SETUP_ACK = 14
    HANGUP_REQ = 15  # DISCONNECT received: the far end asks us to clear
    NOTIFY = 16
    PROGRESS = 17  # PROGRESS received
    KEYPAD_DIGIT = 18
    SERVICE = 19
    SERVICE_ACK = 20
    HOLD = 21
    HOLD_ACK = 22
    HOLD_REJ = 23
    RETRIEVE = 24
    RETRIEVE_ACK = 25
    RETRIEVE_REJ = 26
    CONNECT_ACK = 27


# -- C layouts (prefixes of the libpri.h structs) --------------------------------------------------
_Call = ctypes.c_void_p  # q931_call *: opaque


class _Ring(ctypes.Structure):
    """pri_event_ring, up to `call` and the fields after it that we read."""

    _fields_ = [
        ("e", ctypes.c_int),
        ("channel", ctypes.c_int),
        ("callingpres", ctypes.c_int),
        ("callingplanani", ctypes.c_int),
        ("callingplan", ctypes.c_int),
        ("callingani", ctypes.c_char * 256),
        ("callingnum", ctypes.c_char * 256),
        ("callingname", ctypes.c_char * 256),
        ("calledplan", ctypes.c_int),
        ("ani2", ctypes.c_int),
        ("callednum", ctypes.c_char * 256),
        ("redirectingnum", ctypes.c_char * 256),
        ("redirectingname", ctypes.c_char * 256),
        ("redirectingreason", ctypes.c_int),
        ("callingplanrdnis", ctypes.c_int),
        ("useruserinfo", ctypes.c_char * 260),
        ("flexible", ctypes.c_int),
        ("cref", ctypes.c_int),
        ("ctype", ctypes.c_int),
        ("layer1", ctypes.c_int),
        ("complete", ctypes.c_int),
        ("call", _Call),
    ]


class _Hangup(ctypes.Structure):
    """pri_event_hangup, up to `call`."""

    _fields_ = [("e", ctypes.c_int), ("channel", ctypes.c_int), ("cause", ctypes.c_int),
                ("cref", ctypes.c_int), ("call", _Call)]


class _Answer(ctypes.Structure):
    """pri_event_ringing and pri_event_answer (same layout), up to `call`."""

    _fields_ = [("e", ctypes.c_int), ("channel", ctypes.c_int), ("cref", ctypes.c_int),
                ("progress", ctypes.c_int), ("progressmask", ctypes.c_int), ("call", _Call)]


class _Proceeding(ctypes.Structure):
    """pri_event_proceeding (CALL PROCEEDING and PROGRESS), up to `call`."""

    _fields_ = [("e", ctypes.c_int), ("channel", ctypes.c_int), ("cref", ctypes.c_int),
                ("progress", ctypes.c_int), ("progressmask", ctypes.c_int), ("cause", ctypes.c_int),
                ("call", _Call)]


class _Restart(ctypes.Structure):
    """pri_event_restart / pri_event_restart_ack."""

    _fields_ = [("e", ctypes.c_int), ("channel", ctypes.c_int)]


class _ConnectAck(ctypes.Structure):
    """struct pri_event_connect_ack, up to `call`."""

    _fields_ = [("e", ctypes.c_int), ("channel", ctypes.c_int), ("call", _Call)]


class _Error(ctypes.Structure):
    """pri_event_error."""

    _fields_ = [("e", ctypes.c_int), ("err", ctypes.c_char * 256)]


class _Event(ctypes.Union):
    """pri_event: the views we decode."""

    _fields_ = [("e", ctypes.c_int), ("ring", _Ring), ("hangup", _Hangup), ("ringing", _Answer),
                ("answer", _Answer), ("proceeding", _Proceeding), ("restart", _Restart), ("err", _Error),
                ("connect_ack", _ConnectAck)]


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


_IoCb = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
_MsgCb = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p)


# -- typed events ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DchanUp:
    """Q.921 multiple-frame operation established: calls can be made."""


@dataclass(frozen=True)
class DchanDown:
    """Q.921 link released or lost."""


@dataclass(frozen=True)
class Ring:
    """An incoming SETUP (Q.931 clause 5.2)."""

    call: int
    channel: int
    cref: int
    calling_number: str
    calling_name: str
    calling_plan: int
    calling_pres: int
    called_number: str
    called_plan: int
    complete: bool  # Sending Complete: no overlap digits will follow
    bearer: int  # PRI_TRANS_CAP_*
    layer1: int  # PRI_LAYER_1_*


@dataclass(frozen=True)
class Ringing:
    """ALERTING received."""

    call: int
    channel: int
    cref: int
    progress: int


@dataclass(frozen=True)
class Answer:
    """CONNECT received."""

    call: int
    channel: int
    cref: int


@dataclass(frozen=True)
class ConnectAck:
    """CONNECT ACKNOWLEDGE received (raised only with `manual_connect_ack`)."""

    call: int
    channel: int


@dataclass(frozen=True)
class Proceeding:
    """CALL PROCEEDING (kind PROCEEDING) or PROGRESS (kind PROGRESS) received."""

    kind: EventType
    call: int
    channel: int
    cref: int
    progress: int
    progressmask: int
    cause: int


@dataclass(frozen=True)
class Hangup:
    """Clearing: HANGUP_REQ (DISCONNECT received), HANGUP (RELEASE received, call gone), HANGUP_ACK."""

    kind: EventType
    call: int
    channel: int
    cref: int
    cause: int  # Q.850 cause value


@dataclass(frozen=True)
class Restart:
    kind: EventType
    channel: int


@dataclass(frozen=True)
class OtherEvent:
    """Anything we do not decode (FACILITY, NOTIFY, HOLD...): kept so it can be logged."""

    kind: int
    text: str = ""


PriEvent = DchanUp | DchanDown | Ring | Ringing | Answer | ConnectAck | Proceeding | Hangup | Restart | OtherEvent


def _s(raw: bytes) -> str:
    return raw.decode("latin-1")


def decode_event(ptr: ctypes._Pointer) -> PriEvent:  # type: ignore[type-arg]
    """Copy a libpri event (valid only until the next libpri call) into a dataclass."""
    ev = ptr.contents
    kind = ev.e
    if kind == EventType.DCHAN_UP:
        return DchanUp()
    if kind == EventType.DCHAN_DOWN:
        return DchanDown()
    if kind == EventType.RING:
        r = ev.ring
        return Ring(r.call or 0, r.channel, r.cref, _s(r.callingnum), _s(r.callingname), r.callingplan,
                    r.callingpres, _s(r.callednum), r.calledplan, bool(r.complete), r.ctype, r.layer1)
    if kind == EventType.RINGING:
        a = ev.ringing
        return Ringing(a.call or 0, a.channel, a.cref, a.progress)
    if kind == EventType.ANSWER:
        a = ev.answer
        return Answer(a.call or 0, a.channel, a.cref)
    if kind == EventType.CONNECT_ACK:
        c = ev.connect_ack
        return ConnectAck(c.call or 0, c.channel)
    if kind in (EventType.PROCEEDING, EventType.PROGRESS):
        p = ev.proceeding
        return Proceeding(EventType(kind), p.call or 0, p.channel, p.cref, p.progress, p.progressmask, p.cause)
    if kind in (EventType.HANGUP, EventType.HANGUP_REQ, EventType.HANGUP_ACK):
        h = ev.hangup
        return Hangup(EventType(kind), h.call or 0, h.channel, h.cref, h.cause)
    if kind in (EventType.RESTART, EventType.RESTART_ACK):
        return Restart(EventType(kind), ev.restart.channel)
    if kind == EventType.CONFIG_ERR:
        return OtherEvent(kind, _s(ev.err.err))
    return OtherEvent(kind)


# -- the library --------------------------------------------------------------------------------------
class LibpriUnavailable(RuntimeError):
    """libpri.so.1.4 is not installed (Debian package libpri1.4)."""


_lib: ctypes.CDLL | None = None
_keep: list[object] = []  # callbacks handed to C must outlive every controller that may call them
_names: dict[int, str] = {}  # controller pointer -> label, for log lines


def _on_message(ctrl: int | None, text: bytes | None) -> None:
    log.debug("%s: %s", _names.get(ctrl or 0, "pri"), (text or b"").decode("latin-1").rstrip())


def _on_error(ctrl: int | None, text: bytes | None) -> None:
    log.warning("%s: %s", _names.get(ctrl or 0, "pri"), (text or b"").decode("latin-1").rstrip())


def library() -> ctypes.CDLL:
    """Load libpri once, declare the prototypes we use, route its messages to logging."""
    global _lib
    if _lib is not None:
        return _lib
    path = ctypes.util.find_library("pri") or "libpri.so.1.4"
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise LibpriUnavailable(f"cannot load libpri ({path}): apt-get install libpri1.4") from exc
    vp, i, cp = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p
    protos: dict[str, tuple[object, list[object]]] = {
        "pri_new_bri_cb": (vp, [i, i, i, i, _IoCb, _IoCb, vp]),
        "pri_new_cb": (vp, [i, i, i, _IoCb, _IoCb, vp]),
        "pri_set_debug": (None, [vp, i]),
        "pri_persistent_layer2_option": (None, [vp, i]),
        "pri_connect_ack_enable": (None, [vp, i]),
        "pri_connect_ack": (i, [vp, vp, i]),
        "pri_check_event": (ctypes.POINTER(_Event), [vp]),
        "pri_schedule_next": (ctypes.POINTER(_Timeval), [vp]),
        "pri_schedule_run": (ctypes.POINTER(_Event), [vp]),
        "pri_new_call": (vp, [vp]),
        "pri_destroycall": (None, [vp, vp]),
        "pri_sr_new": (vp, []),
        "pri_sr_free": (None, [vp]),
        "pri_sr_set_channel": (i, [vp, i, i, i]),
        "pri_sr_set_bearer": (i, [vp, i, i]),
        "pri_sr_set_called": (i, [vp, cp, i, i]),
        "pri_sr_set_caller": (i, [vp, cp, cp, i, i]),
        "pri_setup": (i, [vp, vp, vp]),
        "pri_acknowledge": (i, [vp, vp, i, i]),
        "pri_proceeding": (i, [vp, vp, i, i]),
        "pri_progress": (i, [vp, vp, i, i]),
        "pri_answer": (i, [vp, vp, i, i]),
        "pri_hangup": (i, [vp, vp, i]),
        "pri_cause2str": (cp, [i]),
        "pri_event2str": (cp, [i]),
        "pri_get_version": (cp, []),
        "pri_set_message": (None, [_MsgCb]),
        "pri_set_error": (None, [_MsgCb]),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    on_message, on_error = _MsgCb(_on_message), _MsgCb(_on_error)
    _keep.extend((on_message, on_error))
    lib.pri_set_message(on_message)  # without these libpri prints to stdout
    lib.pri_set_error(on_error)
    _lib = lib
    return lib


def version() -> str:
    """The run-time library's version string (e.g. "1.6.0")."""
    return library().pri_get_version().decode()


def cause_text(cause: int) -> str:
    """libpri's name of a Q.850 cause value."""
    return library().pri_cause2str(cause).decode()


class PriError(RuntimeError):
    """A libpri call refused (returned non-zero): stale call, wrong state, no link."""


class Pri:
    """One libpri D-channel controller whose frames travel through Python.

    `send` is called (inside libpri calls) with each LAPD frame to transmit; `feed` gives it a
    received frame. Every method returns the events libpri produced, in order. Not thread-safe:
    call it from one thread (the engine loop).
    """

    def __init__(self, node: Node, send: Callable[[bytes], None], *, bri: bool = True, ptp: bool = True,
                 switch: int = PRI_SWITCH_EUROISDN_E1, debug: int = 0, name: str = "pri",
                 manual_connect_ack: bool = False) -> None:
        lib = library()
        self._lib = lib
        self.name = name
        self.node = node
        self._send = send
        self._rx: deque[bytes] = deque()
        self._pending: list[PriEvent] = []
        self.closed = False
        self.frames_in = 0
        self.frames_out = 0
        read_cb, write_cb = _IoCb(self._io_read), _IoCb(self._io_write)
        _keep.extend((read_cb, write_cb))
        # The first frames (SABME, or a TEI request) are written from inside the constructor.
        if bri:
            ctrl = lib.pri_new_bri_cb(-1, 1 if ptp else 0, int(node), switch, read_cb, write_cb, None)
        else:
            ctrl = lib.pri_new_cb(-1, int(node), switch, read_cb, write_cb, None)
        if not ctrl:
            raise PriError(f"{name}: pri_new_bri_cb failed")
        self._ctrl: int = ctrl
        _names[ctrl] = name
        lib.pri_set_debug(ctrl, debug)
        if manual_connect_ack:
            # Raise CONNECT_ACK events, and leave acknowledging a received CONNECT to us
            # (`connect_ack`), so the upper layer sees Q.931 states U8 -> U10 happen.
            lib.pri_connect_ack_enable(ctrl, 1)
        if bri and not ptp:
            # Point-to-multipoint TE keeps layer 2 down between calls by default; we want to
            # see the line up (and alarms when it is not), as a PBX does.
            lib.pri_persistent_layer2_option(ctrl, PRI_L2_PERSISTENCE_KEEP_UP)

    # -- frame I/O (called by libpri) ------------------------------------------------------------
    def _io_read(self, _ctrl: int, buf: int, buflen: int) -> int:
        if not self._rx:
            return 0
        frame = self._rx.popleft()
        n = min(len(frame), buflen - _FCS_LEN)
        ctypes.memmove(buf, frame, n)
        ctypes.memset(buf + n, 0, _FCS_LEN)  # the FCS hardware would have checked
        return n + _FCS_LEN

    def _io_write(self, _ctrl: int, buf: int, buflen: int) -> int:
        frame = ctypes.string_at(buf, max(0, buflen - _FCS_LEN))
        self.frames_out += 1
        try:
            self._send(frame)
        except Exception:  # noqa: BLE001 - an exception cannot cross into C; the frame is lost, as on a line
            log.exception("%s: sending a D-channel frame failed", self.name)
        return buflen

    # -- driving it ---------------------------------------------------------------------------------
    def _take(self) -> list[PriEvent]:
        out, self._pending = self._pending, []
        return out

    def _note(self, ptr: ctypes._Pointer) -> None:  # type: ignore[type-arg]
        if ptr:
            self._pending.append(decode_event(ptr))

    def feed(self, frame: bytes) -> list[PriEvent]:
        """Hand libpri one received LAPD frame (no flags, no FCS); returns the events it raised."""
        if self.closed:
            return []
        if not 3 <= len(frame) <= _MAX_FRAME:
            # Q.921 clause 5.8.4: a frame shorter than 3 octets (address + control) is invalid.
            log.debug("%s: dropped a %d-octet D-channel frame", self.name, len(frame))
            return []
        self.frames_in += 1
        self._rx.append(bytes(frame))
        while self._rx:
            self._note(self._lib.pri_check_event(self._ctrl))
        return self._take()

    def run_timers(self) -> list[PriEvent]:
        """Run every expired Q.921/Q.931 timer (T200, T203, T303, T305, T308...)."""
        if self.closed:
            return []
        for _ in range(64):  # each call returns at the first timer that raised an event
            ptr = self._lib.pri_schedule_run(self._ctrl)
            if not ptr:
                break
            self._note(ptr)
        return self._take()

    def next_timer(self) -> float | None:
        """When the next timer expires, as a `time.time()` value; None when none is armed."""
        if self.closed:
            return None
        tv = self._lib.pri_schedule_next(self._ctrl)
        if not tv:
            return None
        return tv.contents.tv_sec + tv.contents.tv_usec / 1e6

    # -- Q.931 requests -----------------------------------------------------------------------------
    def _check(self, what: str, res: int) -> list[PriEvent]:
        if res != 0:
            raise PriError(f"{self.name}: {what} refused ({res})")
        return self._take()

    def setup(self, called: str, calling: str = "", calling_name: str = "", *, channel: int = -1,
              exclusive: bool = False, bearer: int = PRI_TRANS_CAP_SPEECH, layer1: int = PRI_LAYER_1_ALAW,
              called_plan: int = PRI_UNKNOWN, calling_plan: int = PRI_UNKNOWN,
              calling_pres: int = PRI_PRES_ALLOWED_USER_NUMBER_NOT_SCREENED) -> tuple[int, list[PriEvent]]:
        """Send a SETUP (pri_new_call + pri_sr_* + pri_setup); returns the call handle.

        `channel` -1 lets the network choose the B channel (Q.931 4.5.13: "any channel").
        """
        if self.closed:
            raise PriError(f"{self.name}: closed")
        lib = self._lib
        call = lib.pri_new_call(self._ctrl)
        if not call:
            raise PriError(f"{self.name}: no call reference free")
        sr = lib.pri_sr_new()
        if not sr:
            raise PriError(f"{self.name}: pri_sr_new failed")
        called_b, calling_b, name_b = called.encode(), calling.encode(), calling_name.encode()
        try:
            lib.pri_sr_set_channel(sr, channel, 1 if exclusive else 0, 0)
            lib.pri_sr_set_bearer(sr, bearer, layer1)
            # complete=1: en-bloc sending, the whole number is in this SETUP (Q.931 5.1.1).
            lib.pri_sr_set_called(sr, called_b, called_plan, 1)
            lib.pri_sr_set_caller(sr, calling_b or None, name_b or None, calling_plan, calling_pres)
            res = lib.pri_setup(self._ctrl, call, sr)
        finally:
            lib.pri_sr_free(sr)
        if res != 0:
            lib.pri_destroycall(self._ctrl, call)
            raise PriError(f"{self.name}: pri_setup refused ({res})")
        return call, self._take()

    def proceeding(self, call: int, channel: int, inband: bool = False) -> list[PriEvent]:
        """Send CALL PROCEEDING (Q.931 5.2.5.2): the SETUP is accepted, no more digits needed."""
        return self._check("pri_proceeding", self._lib.pri_proceeding(self._ctrl, call, channel, int(inband)))

    def acknowledge(self, call: int, channel: int, inband: bool = False) -> list[PriEvent]:
        """Send ALERTING (Q.931 5.2.5.3; libpri names it pri_acknowledge)."""
        return self._check("pri_acknowledge", self._lib.pri_acknowledge(self._ctrl, call, channel, int(inband)))

    def progress(self, call: int, channel: int) -> list[PriEvent]:
        """Send PROGRESS with "in-band information available" (Q.931 5.2.5.3, progress indicator 8)."""
        return self._check("pri_progress", self._lib.pri_progress(self._ctrl, call, channel, 1))

    def answer(self, call: int, channel: int) -> list[PriEvent]:
        """Send CONNECT (Q.931 5.2.8)."""
        return self._check("pri_answer", self._lib.pri_answer(self._ctrl, call, channel, 0))

    def connect_ack(self, call: int) -> list[PriEvent]:
        """Send CONNECT ACKNOWLEDGE for a received CONNECT (Q.931 5.1.8; with `manual_connect_ack`)."""
        return self._check("pri_connect_ack", self._lib.pri_connect_ack(self._ctrl, call, 0))

    def hangup(self, call: int, cause: int) -> list[PriEvent]:
        """Clear with a Q.850 cause: DISCONNECT, RELEASE or RELEASE COMPLETE as the state needs (5.3)."""
        return self._check("pri_hangup", self._lib.pri_hangup(self._ctrl, call, cause))

    def close(self) -> None:
        """Stop using this controller: later calls do nothing (libpri cannot free it, see above)."""
        self.closed = True
        self._rx.clear()
        self._send = _drop
        _names.pop(self._ctrl, None)


def _drop(_frame: bytes) -> None:
    """Where frames go once a controller is closed."""
