"""USB headset as a softphone: a pjsua2 extension of our own PBX whose audio goes through PyAudio.

The headset registers as an extension (REGISTER with digest auth, RFC 3261 section 10 and
22) and places or answers one call at a time. pjsua2 runs with the null sound device; its
audio goes through a `HeadsetPort` on the conference bridge (hw/headset_audio.py: the frames
between the bridge and the PyAudio streams, paced in real time). The streams are open only
while a call has audio.

Threads: one control thread owns the pjsua2 Endpoint (created there, `threadCnt = 0`,
`mainThreadOnly = True`, polled with `libHandleEvents`, as in tests/peers/pjphone_proc.py),
runs the call state machine and calls `on_event`, so events arrive in order on that thread.
Public calls (`answer`, `hangup`, `dial`) are posted to it and return a `Future`. Only the
port's two frame callbacks run on pjmedia's clock thread. pjsua2 allows one Endpoint per
process, so one `Headset` per process.

HID hook-switch buttons are not handled here: hw/headset_service.py reads them
(hw/headset_hid.py) and calls `answer()`/`hangup()`, as the control API does.
"""

from __future__ import annotations

import enum
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pjsua2 as pj

from hw.headset_audio import (
    FRAME_MS,
    AudioStats,
    DeviceNotFound,
    HeadsetError,
    HeadsetPort,
    find_device,
)

try:  # pyaudio is the optional `headset` extra; the module imports without it for docs/types
    import pyaudio
except ImportError:  # pragma: no cover - depends on the installed extras
    pyaudio = None

__all__ = [
    "RATES", "FRAME_MS", "AudioStats", "DeviceNotFound", "HeadsetError", "HeadsetPort", "find_device",
    "RegistrationFailed", "IllegalTransition", "HeadsetConfig", "HeadsetState", "HeadsetEvent",
    "Registered", "Incoming", "Answered", "HungUp", "HeadsetStatus", "Headset",
]

log = logging.getLogger(__name__)

RATES = (8000, 16000)  # narrowband (G.711) and wideband (G.722) bridge rates
POLL_MS = 10
_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
_CODEC_IDS = {"PCMU": "PCMU/8000", "PCMA": "PCMA/8000", "G722": "G722/16000"}
T = TypeVar("T")
# pjsua2 allows one Endpoint per process: held from start() to the end of close().
_ENDPOINT_IN_USE = threading.Lock()


# -- errors (HeadsetError and DeviceNotFound are in hw.headset_audio) -----------------------------
class RegistrationFailed(HeadsetError):
    """The PBX refused the extension's REGISTER or never answered it."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class IllegalTransition(HeadsetError):
    """A command that the current call state does not allow (answer with no call ringing...)."""


# -- configuration and events ---------------------------------------------------------------------
@dataclass(frozen=True)
class HeadsetConfig:
    """Where the headset registers and which PyAudio devices are its microphone and earpiece.

    `input_device`/`output_device` are PyAudio device names: an exact name, or a part of one
    that only one device has ("Jabra" for "Jabra EVOLVE 20: USB Audio (hw:1,0)").
    """

    extension: str
    password: str
    registrar_host: str
    registrar_port: int
    input_device: str
    output_device: str = ""  # empty: the same device as input_device (one USB headset)
    rate: int = 8000
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    bind_ip: str = "127.0.0.1"
    sip_port: int = 0  # 0: the kernel picks one
    register_expires: int = 300
    pj_log_level: int = 1
    hid: str = ""  # the hook button's /dev/hidrawN, "auto" (same USB device as the audio), "" none
    hid_descriptor: str = ""  # its report descriptor file; "": sysfs (hw/headset_hid.py)


class HeadsetState(enum.Enum):
    """The headset's call state; one call at a time."""

    STOPPED = "stopped"
    REGISTERING = "registering"
    IDLE = "idle"
    RINGING = "ringing"  # an incoming call waits for answer()
    DIALING = "dialing"  # our INVITE is out
    TALKING = "talking"
    CLOSED = "closed"


# Allowed transitions: the one place where the state machine is written down.
_TRANSITIONS: dict[HeadsetState, frozenset[HeadsetState]] = {
    HeadsetState.STOPPED: frozenset({HeadsetState.REGISTERING, HeadsetState.CLOSED}),
    HeadsetState.REGISTERING: frozenset({HeadsetState.IDLE, HeadsetState.CLOSED}),
    HeadsetState.IDLE: frozenset({HeadsetState.RINGING, HeadsetState.DIALING, HeadsetState.CLOSED}),
    HeadsetState.RINGING: frozenset({HeadsetState.TALKING, HeadsetState.IDLE, HeadsetState.CLOSED}),
    HeadsetState.DIALING: frozenset({HeadsetState.TALKING, HeadsetState.IDLE, HeadsetState.CLOSED}),
    HeadsetState.TALKING: frozenset({HeadsetState.IDLE, HeadsetState.CLOSED}),
    HeadsetState.CLOSED: frozenset(),
}


@dataclass(frozen=True)
class HeadsetEvent:
    """Base of the events passed to `on_event`."""


@dataclass(frozen=True)
class Registered(HeadsetEvent):
    """A REGISTER got its final answer: `active` once the PBX accepted the binding."""

    code: int
    reason: str
    active: bool


@dataclass(frozen=True)
class Incoming(HeadsetEvent):
    """A call rings on the headset; `caller` is the calling number (user part of From)."""

    caller: str
    display: str
    uri: str


@dataclass(frozen=True)
class Answered(HeadsetEvent):
    """The call is up (ACK received or sent, RFC 3261 section 13.2.2.4); audio flows."""


@dataclass(frozen=True)
class HungUp(HeadsetEvent):
    """The call ended: BYE, CANCEL, or a final error answer; `code` is its last SIP status."""

    code: int
    reason: str


@dataclass(frozen=True)
class HeadsetStatus:
    """A snapshot for the control API."""

    extension: str
    state: str
    registered: bool
    peer: str
    audio: dict[str, int] = field(default_factory=dict)


# -- pjsua2 glue (control thread only) ------------------------------------------------------------
class _LogWriter(pj.LogWriter):
    """pjlib's log into Python logging instead of stdout."""

    def write(self, entry: pj.LogEntry) -> None:
        log.debug("pjsua2: %s", entry.msg.rstrip())


class _Account(pj.Account):
    def __init__(self, headset: Headset) -> None:
        super().__init__()
        self.headset = headset

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self.headset._on_reg_state(int(prm.code), str(prm.reason))

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.headset._on_incoming(_Call(self.headset, self, prm.callId))


class _Call(pj.Call):
    def __init__(self, headset: Headset, acc: pj.Account, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.headset = headset

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.headset._on_call_state(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.headset._on_media_state(self)


def _caller_number(uri: str) -> str:
    """The user part of a SIP URI inside a name-addr: '"A" <sip:1001@h>' -> '1001'."""
    m = re.search(r"sips?:([^@;>]+)@", uri)
    return m.group(1) if m else uri


# -- the headset ----------------------------------------------------------------------------------
class Headset:
    """A USB headset registered as an extension. `start()`, then `dial`/`answer`/`hangup`."""

    def __init__(self, config: HeadsetConfig, on_event: Callable[[HeadsetEvent], None] | None = None) -> None:
        if config.rate not in RATES:
            raise ValueError(f"rate must be one of {RATES}, got {config.rate}")
        unknown = [c for c in config.codecs if c not in _CODEC_IDS]
        if unknown or not config.codecs:
            raise ValueError(f"codecs must be among {sorted(_CODEC_IDS)}, got {list(config.codecs)}")
        if pyaudio is None:
            raise HeadsetError("pyaudio is not installed (pip install 'plateau[headset]')")
        self.config = config
        self._on_event = on_event
        self._state = HeadsetState.STOPPED
        self._commands: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running = False
        self._started: Future[None] = Future()
        self._registered = False
        self._pa: Any = None
        self._mic_index = self._ear_index = -1
        self._ep: pj.Endpoint | None = None
        self._acc: _Account | None = None
        self._port: HeadsetPort | None = None
        self._call: _Call | None = None
        self._ended: list[_Call] = []  # pj.Call objects are not deleted inside their callbacks
        self._peer = ""
        self._last_stats = AudioStats()
        self._start_timeout = 10.0

    # -- lifecycle (any thread) ---------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Open the audio devices, start the SIP stack and register; raises if any fails."""
        if self._thread is not None or self._state is not HeadsetState.STOPPED:
            raise IllegalTransition(f"start() in state {self._state.value}")
        if not _ENDPOINT_IN_USE.acquire(blocking=False):
            raise HeadsetError("another Headset runs in this process (pjsua2: one Endpoint per process)")
        self._pa = pyaudio.PyAudio()
        try:
            self._mic_index = find_device(self._pa, self.config.input_device, want_input=True)
            self._ear_index = find_device(
                self._pa, self.config.output_device or self.config.input_device, want_input=False
            )
        except DeviceNotFound:
            self._pa.terminate()
            self._pa = None
            _ENDPOINT_IN_USE.release()
            raise
        self._running = True
        self._start_timeout = timeout
        self._thread = threading.Thread(target=self._loop, name=f"headset-{self.config.extension}", daemon=True)
        self._thread.start()
        try:
            self._started.result(timeout + 5.0)  # the control thread gives up after `timeout`
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Hang up, unregister, stop the SIP stack and release the audio devices; idempotent."""
        if self._thread is None:
            return
        self._running = False
        self._thread.join(timeout=10.0)
        self._thread = None
        if self._pa is not None:
            self._pa.terminate()
            self._pa = None
        _ENDPOINT_IN_USE.release()

    def __enter__(self) -> Headset:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commands (any thread; run on the control thread) ------------------------------------
    @property
    def state(self) -> HeadsetState:
        return self._state

    def answer(self) -> Future[None]:
        """Answer the ringing call with 200 OK."""
        return self._post(self._do_answer)

    def hangup(self) -> Future[None]:
        """End the call: BYE when up, CANCEL when dialing, 486 Busy Here when ringing."""
        return self._post(self._do_hangup)

    def dial(self, number: str) -> Future[None]:
        """Call `number` (an extension or a dialled number) through the PBX."""
        if not _NUMBER.match(number):
            raise ValueError(f"not a dialable number: {number!r}")
        return self._post(lambda: self._do_dial(number))

    def set_mute(self, muted: bool) -> None:
        """Send silence instead of the microphone (the headset's mute button), until unmuted."""
        if self._port is not None:
            self._port.muted = muted

    def status(self) -> Future[HeadsetStatus]:
        """State, registration and audio counters of the current (or last) call."""
        return self._post(self._do_status)

    def _post(self, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        if not self._running:
            fut.set_exception(IllegalTransition("the headset is not running"))
            return fut
        self._commands.put((fn, fut))
        return fut

    # -- control thread --------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._setup()
        except (pj.Error, OSError, HeadsetError) as exc:
            msg = exc.info() if isinstance(exc, pj.Error) else str(exc)
            self._started.set_exception(HeadsetError(f"headset start failed: {msg}"))
            self._running = False
        deadline = time.monotonic() + self._start_timeout
        while self._running:
            if self._ep is not None:
                self._ep.libHandleEvents(POLL_MS)
            self._ended.clear()
            self._run_commands()
            if not self._started.done() and time.monotonic() > deadline:
                self._started.set_exception(RegistrationFailed("no answer to REGISTER"))
                self._running = False
        self._teardown()

    def _run_commands(self) -> None:
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fut.set_result(fn())
            except (pj.Error, HeadsetError, ValueError, OSError) as exc:
                if isinstance(exc, pj.Error):
                    exc = HeadsetError(exc.info())
                fut.set_exception(exc)

    def _setup(self) -> None:
        cfg = self.config
        self._ep = pj.Endpoint()
        self._ep.libCreate()
        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = 4
        ep_cfg.uaConfig.userAgent = "plateau-headset"
        self._writer = _LogWriter()
        ep_cfg.logConfig.writer = self._writer
        ep_cfg.logConfig.level = cfg.pj_log_level
        ep_cfg.logConfig.consoleLevel = cfg.pj_log_level
        ep_cfg.medConfig.threadCnt = 0
        ep_cfg.medConfig.hasIoqueue = False  # media shares the SIP ioqueue this thread polls
        ep_cfg.medConfig.clockRate = cfg.rate
        ep_cfg.medConfig.sndClockRate = cfg.rate
        ep_cfg.medConfig.noVad = True  # a headset sends continuous audio
        ep_cfg.medConfig.ecTailLen = 0  # a headset has no acoustic echo path to cancel
        self._ep.libInit(ep_cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = cfg.sip_port
        tcfg.boundAddress = cfg.bind_ip
        tid = self._ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self._ep.libStart()
        self._ep.audDevManager().setNullDev()
        wanted = [_CODEC_IDS[c] for c in cfg.codecs]
        for ci in self._ep.codecEnum2():
            if ci.codecId.startswith("telephone-event"):
                continue
            prio = max((254 - r for r, w in enumerate(wanted) if ci.codecId.startswith(w)), default=0)
            self._ep.codecSetPriority(ci.codecId, prio)
        self._port = HeadsetPort(cfg.rate)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{cfg.extension}@{cfg.registrar_host}:{cfg.registrar_port}"
        acfg.regConfig.registrarUri = f"sip:{cfg.registrar_host}:{cfg.registrar_port}"
        acfg.regConfig.timeoutSec = cfg.register_expires
        acfg.sipConfig.transportId = tid
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", cfg.extension, 0, cfg.password))
        acfg.sipConfig.proxies.append(f"sip:{cfg.registrar_host}:{cfg.registrar_port};lr")
        acfg.mediaConfig.transportConfig.boundAddress = cfg.bind_ip
        self._set_state(HeadsetState.REGISTERING)
        self._acc = _Account(self)
        self._acc.create(acfg)

    def _teardown(self) -> None:
        if self._ep is None:
            self._set_state(HeadsetState.CLOSED)
            return
        self._close_audio()
        if self._call is not None:
            try:
                self._call.hangup(pj.CallOpParam())
            except pj.Error:
                pass  # already disconnecting
        if self._acc is not None and self._registered:
            try:
                self._acc.setRegistration(False)  # REGISTER with Expires: 0 (RFC 3261 10.2.2)
            except pj.Error:
                pass  # the PBX is gone: nothing to unregister from
        end = time.monotonic() + 1.0
        while time.monotonic() < end and (self._call is not None or self._registered):
            self._ep.libHandleEvents(POLL_MS)
        self._call = None
        self._ended.clear()
        self._port = None
        self._acc = None
        self._set_state(HeadsetState.CLOSED)
        self._ep.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)  # calls and REGISTER are already ended
        self._ep = None
        while not self._commands.empty():
            _, fut = self._commands.get_nowait()
            fut.set_exception(IllegalTransition("the headset was closed"))

    def _set_state(self, new: HeadsetState) -> None:
        if new is self._state:
            return
        if new not in _TRANSITIONS[self._state]:
            raise IllegalTransition(f"{self._state.value} -> {new.value}")
        log.debug("headset %s: %s -> %s", self.config.extension, self._state.value, new.value)
        self._state = new

    def _emit(self, event: HeadsetEvent) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(event)
        except Exception:  # a faulty listener must not unwind through pjsua2's C callbacks
            log.exception("headset %s: on_event(%r) raised", self.config.extension, event)

    # -- commands, on the control thread ---------------------------------------------------------
    def _do_answer(self) -> None:
        if self._state is not HeadsetState.RINGING or self._call is None:
            raise IllegalTransition(f"answer in state {self._state.value}")
        prm = pj.CallOpParam()
        prm.statusCode = 200
        self._call.answer(prm)

    def _do_hangup(self) -> None:
        if self._call is None:
            raise IllegalTransition(f"hangup in state {self._state.value}")
        prm = pj.CallOpParam()
        if self._state is HeadsetState.RINGING:
            prm.statusCode = 486  # Busy Here (RFC 3261 21.4.7): the user declined
        self._call.hangup(prm)

    def _do_dial(self, number: str) -> None:
        if self._state is not HeadsetState.IDLE or self._acc is None:
            raise IllegalTransition(f"dial in state {self._state.value}")
        cfg = self.config
        call = _Call(self, self._acc)
        self._call = call
        self._peer = number
        self._set_state(HeadsetState.DIALING)
        call.makeCall(f"sip:{number}@{cfg.registrar_host}:{cfg.registrar_port}", pj.CallOpParam(True))

    def _do_status(self) -> HeadsetStatus:
        stats = self._port.stats if self._port is not None and self._call is not None else self._last_stats
        return HeadsetStatus(
            extension=self.config.extension,
            state=self._state.value,
            registered=self._registered,
            peer=self._peer,
            audio=dict(vars(stats)),
        )

    # -- pjsua2 callbacks, on the control thread -------------------------------------------------
    def _on_reg_state(self, code: int, reason: str) -> None:
        if code < 200:
            return
        was = self._registered
        self._registered = code // 100 == 2 and self._acc is not None and self._acc.getInfo().regIsActive
        if not self._started.done():
            if self._registered:
                self._set_state(HeadsetState.IDLE)
                self._started.set_result(None)
            else:
                self._started.set_exception(RegistrationFailed(f"REGISTER answered {code} {reason}", code))
                self._running = False
        if self._registered != was or not self._registered:
            self._emit(Registered(code, reason, self._registered))

    def _on_incoming(self, call: _Call) -> None:
        prm = pj.CallOpParam()
        if self._state is not HeadsetState.IDLE:
            prm.statusCode = 486  # one earpiece, one call (RFC 3261 21.4.7 Busy Here)
            call.answer(prm)
            self._ended.append(call)
            return
        info = call.getInfo()
        self._call = call
        self._peer = _caller_number(info.remoteUri)
        self._set_state(HeadsetState.RINGING)
        prm.statusCode = 180
        call.answer(prm)
        display = re.match(r'^\s*"?([^"<]*?)"?\s*<', info.remoteUri)
        self._emit(Incoming(self._peer, display.group(1) if display else "", info.remoteUri))

    def _on_call_state(self, call: _Call) -> None:
        if call is not self._call:
            return  # a call we turned away as busy
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and self._state is not HeadsetState.TALKING:
            self._set_state(HeadsetState.TALKING)
            self._emit(Answered())
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self._close_audio()
            self._ended.append(call)
            self._call = None
            if self._state is not HeadsetState.CLOSED:
                self._set_state(HeadsetState.IDLE)
            self._emit(HungUp(int(info.lastStatusCode), str(info.lastReason)))

    def _on_media_state(self, call: _Call) -> None:
        if call is not self._call or self._port is None:
            return
        info = call.getInfo()  # keep it: `.media` points into it (SWIG), a temporary would dangle
        for mi in info.media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                aud = call.getAudioMedia(mi.index)
                if not self._port.attached:
                    try:
                        self._open_audio()
                    except OSError as exc:  # device unplugged or busy: no call without audio
                        log.error("headset %s: cannot open audio: %s", self.config.extension, exc)
                        call.hangup(pj.CallOpParam())
                        return
                aud.startTransmit(self._port)
                self._port.startTransmit(aud)
                return
        self._close_audio()  # held or inactive: release the device

    def _open_audio(self) -> None:
        fmt = pyaudio.paInt16
        rate, frames = self.config.rate, self.config.rate * FRAME_MS // 1000
        mic = self._pa.open(
            rate=rate, channels=1, format=fmt, input=True,
            input_device_index=self._mic_index, frames_per_buffer=frames,
        )
        try:
            ear = self._pa.open(
                rate=rate, channels=1, format=fmt, output=True,
                output_device_index=self._ear_index, frames_per_buffer=frames,
            )
        except OSError:
            mic.close()
            raise
        if self._port is not None:
            self._port.attach(mic, ear)

    def _close_audio(self) -> None:
        if self._port is None:
            return
        self._last_stats = self._port.stats
        for stream in self._port.detach():
            if stream is not None:
                stream.stop_stream()
                stream.close()
