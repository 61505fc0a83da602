"""A V.253 voice modem as an analog line (FXO) of the PBX: the port and its channel.

The modem (hw/modem.py) sits on a line from the carrier, like a line board's FXO port
(hw/fxo.py), and is used the same way:
- Inbound: RING, then the caller ID the modem decodes in the first silence (+VCID=1 lines
  after the first RING, V.253 clause 9.2.2; ETSI EN 300 659-1 timing) make an inbound call
  routed by the modem's DID (`Switchboard.incoming` with `via_trunk`). The line goes off-hook
  (AT+VLS=1, then the voice stream) only when the PBX answers: on an analog line early media
  would mean answering, so the caller keeps hearing the carrier's ringback. A call the PBX
  refuses is left to ring out, never seized (seizing would answer, and charge, the caller).
- Outbound: a trunk whose name is the modem's `trunk_name` dials ATD<number>; and the call is
  up when the modem reports the far end answered (voice call progress, V.253 clause 10.1.2).
- Audio: the modem's 20 ms µ-law frames go through the same AudioRelay as a board's, to a
  media-engine leg as RTP; what the leg sends back is written to the modem, DLE-shielded.
- The modem failing (ModemDown) takes the port out of service and releases its call with 503;
  ModemReady brings it back.

Threads: the driver calls `_on_modem_event` on its control thread. Audio goes straight to the
relay from there; every other event is handed to the engine loop with `call_soon`, where the
port and its channel run like every other channel.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.pbx.channel import (
    BUSY,
    CANCELLED,
    CONGESTION,
    NO_ANSWER,
    NORMAL_CLEARING,
    Answered,
    Cause,
    Channel,
    ChannelState,
    DtmfReceived,
    Party,
    Ringing,
)
from appliance.pbx.dialplan import ToTrunk
from hw import modem as vm
from hw.factory import AnalogPorts, HardwareChannelFactory
from hw.frames import Message
from hw.fxo import CID_WAIT_S
from hw.line import HwContext, IllegalPortTransition, LineChannel, LinePort, OutboundLegs


log = logging.getLogger("plateau.hw")
MODEM_DOWN = Cause(503, "Voice modem out of service")
# Bellcore GR-30 / ETSI EN 300 659-3 caller-ID "reason for absence" as modems report it in NMBR.
_NO_NUMBER = {"P": "Private", "O": "Unavailable"}


@dataclass(frozen=True)
class ModemLineConfig:
    device: str  # serial device (or pyserial URL) of the modem
    did: str  # the number inbound calls on this line are routed by
    trunk_name: str = "analog"  # outbound calls to a trunk of this name use the line
    name: str = "modem0"
    cid_wait_s: float = CID_WAIT_S  # how long after the first RING to wait for caller ID


class ModemLineState(enum.Enum):
    OUT_OF_SERVICE = "out-of-service"  # modem not initialised, hung or unplugged
    IDLE = "idle"
    INCOMING = "incoming"  # ringing: waiting for caller ID, or offered to the PBX
    REJECTED = "rejected"  # ringing, but the PBX refused the call: left to ring out
    ANSWERING = "answering"  # the PBX answered: going off-hook, opening the voice stream
    DIALING = "dialing"  # ATD sent: waiting for the far end to answer
    CONNECTED = "connected"  # voice stream open
    RELEASING = "releasing"  # the PBX ended the call: the modem is going on-hook


_L = ModemLineState
# The one place where port transitions are decided. Anything may fall OUT_OF_SERVICE (ModemDown).
_ALLOWED: dict[ModemLineState, set[ModemLineState]] = {
    _L.OUT_OF_SERVICE: {_L.IDLE},
    _L.IDLE: {_L.INCOMING, _L.DIALING},
    _L.INCOMING: {_L.ANSWERING, _L.REJECTED, _L.IDLE},
    _L.REJECTED: {_L.IDLE},
    _L.ANSWERING: {_L.CONNECTED, _L.RELEASING, _L.IDLE},
    _L.DIALING: {_L.CONNECTED, _L.RELEASING, _L.IDLE},
    _L.CONNECTED: {_L.RELEASING, _L.IDLE},
    _L.RELEASING: {_L.IDLE},
}
_OFF_HOOK = {_L.ANSWERING, _L.DIALING, _L.CONNECTED}


class ModemLinePort(LinePort):
    """One voice modem and the analog line on it."""

    kind = "modem"

    def __init__(self, ctx: HwContext, config: ModemLineConfig, call_soon: Callable[[Callable[[], None]], None],
                 modem_options: dict[str, Any] | None = None) -> None:
        super().__init__(ctx, config.name, 0, self._no_frames)
        self.config = config
        self.call_soon = call_soon
        self.state = ModemLineState.OUT_OF_SERVICE
        self.channel: ModemLineChannel | None = None
        self.caller: Party | None = None  # caller ID heard for the current ring
        self.error: str | None = None  # why the modem is (or last was) down
        self.ulaw_code: int | None = None
        self.duplex = False
        self.counters = {"calls_in": 0, "calls_out": 0, "outages": 0}
        self._timer: Any = None
        self.modem = vm.VoiceModem(config.device, self._on_modem_event, **dict(modem_options or {}))

    def label(self) -> str:
        return f"modem {self.config.name}"

    def _to(self, new: ModemLineState) -> None:
        if new != self.state and new not in _ALLOWED[self.state] and new != _L.OUT_OF_SERVICE:
            raise IllegalPortTransition(f"{self.label()}: {self.state.value} -> {new.value}")
        log.debug("%s: %s -> %s", self.label(), self.state.value, new.value)
        self.state = new

    @property
    def in_service(self) -> bool:
        return self.state != _L.OUT_OF_SERVICE

    @property
    def available(self) -> bool:
        return self.state == _L.IDLE

    def status(self) -> dict[str, object]:
        return {"name": self.config.name, "kind": "modem", "device": self.config.device, "did": self.config.did,
                "trunk": self.config.trunk_name, "state": self.state.value, "modem_state": self.modem.state.value,
                "ulaw_code": self.ulaw_code, "duplex": self.duplex, "error": self.error,
                "channel": self.channel.id if self.channel else None,
                "counters": {**self.counters, "malformed": self.modem.malformed},
                "last_malformed": self.modem.last_malformed}

    # -- lifecycle (engine thread) --------------------------------------------------------------------
    def start(self) -> None:
        """Open and initialise the modem; a failure shows as ModemDown and the driver keeps retrying."""
        self.modem.start()

    def close(self) -> None:
        self._cancel_timer()
        self.modem.close()

    # -- driver thread --------------------------------------------------------------------------------
    def _on_modem_event(self, event: vm.ModemEvent) -> None:
        if isinstance(event, vm.Audio):
            self.audio_from_board(event.data)  # the 20 ms path stays off the call-control loop
            return
        self.call_soon(lambda: self._dispatch(event))

    def _no_frames(self, message: Message) -> None:
        log.debug("%s: no board to send %s to", self.label(), type(message).__name__)

    def audio_to_board(self, ulaw: bytes) -> None:
        """Relay thread: 20 ms for the line (dropped by the driver until the voice stream is open)."""
        self.modem.send_audio(ulaw)

    # -- engine loop: modem events ----------------------------------------------------------------------
    def _dispatch(self, event: vm.ModemEvent) -> None:
        try:
            self._event(event)
        except Exception:  # one bad event must not stop the engine loop's other work
            log.exception("%s: handling %s", self.label(), event)

    def _event(self, event: vm.ModemEvent) -> None:
        if isinstance(event, vm.ModemReady):
            self.ulaw_code, self.duplex, self.error = event.ulaw_code, event.duplex, None
            if self.state == _L.OUT_OF_SERVICE:
                log.info("%s: in service (µ-law +VSM=%d, %s)", self.label(), event.ulaw_code,
                         "duplex" if event.duplex else "receive only")
                self._to(_L.IDLE)
        elif isinstance(event, vm.ModemDown):
            self._modem_down(str(event.error))
        elif isinstance(event, vm.Ring):
            self._ring(event.count)
        elif isinstance(event, vm.CallerId):
            self._caller_id(event)
        elif isinstance(event, vm.Answered):
            self._answered(event.outbound)
        elif isinstance(event, vm.Dtmf):
            chan = self.channel
            if chan is not None and self.state == _L.CONNECTED:
                chan.post(DtmfReceived(chan, event.digit, "modem"))
        elif isinstance(event, vm.Hangup):
            self._hangup(event)
        else:  # Busy, DialTone, Silence, LineSignal: a Hangup follows when they end the call
            log.debug("%s: %s", self.label(), event)

    def _modem_down(self, error: str) -> None:
        log.warning("%s: out of service: %s", self.label(), error)
        self.error = error
        self.counters["outages"] += 1
        self._cancel_timer()
        chan, self.channel = self.channel, None
        self.caller = None
        self._to(_L.OUT_OF_SERVICE)
        if chan is not None:
            chan.remote_gone(MODEM_DOWN)

    def _ring(self, count: int) -> None:
        if self.state == _L.IDLE:
            self._to(_L.INCOMING)
            self.caller = None
            self._timer = self.ctx.schedule(self.config.cid_wait_s, self._offer)
        if self.state == _L.INCOMING and count >= 2:
            # The driver reports any caller ID before the second RING: nothing more will come.
            self._offer()

    def _caller_id(self, cid: vm.CallerId) -> None:
        if self.state != _L.INCOMING:
            return
        number = cid.number.strip()
        if number in _NO_NUMBER:
            self.caller = Party("", cid.name or _NO_NUMBER[number])
        else:
            self.caller = Party(number, cid.name)
        self._offer()

    def _answered(self, outbound: bool) -> None:
        chan = self.channel
        if chan is None:
            return
        if outbound and self.state == _L.DIALING:
            self._to(_L.CONNECTED)
            chan.far_end_answered()
        elif not outbound and self.state == _L.ANSWERING:
            self._to(_L.CONNECTED)

    def _hangup(self, event: vm.Hangup) -> None:
        """The modem went on-hook: the far end left, the caller gave up, or the modem failed."""
        st = self.state
        if st in (_L.IDLE, _L.OUT_OF_SERVICE, _L.RELEASING):
            return  # RELEASING: our own hang-up; IDLE comes when its request completes
        self._cancel_timer()
        chan, self.channel = self.channel, None
        self.caller = None
        self._to(_L.IDLE)
        if chan is None:
            return
        if st == _L.INCOMING:
            cause = CANCELLED
        elif not event.remote:
            # The driver gave up on its own: no answer within its dial timeout, or a command failed.
            cause = NO_ANSWER if event.reason == "no answer" else Cause(503, f"Voice modem: {event.reason}")
        elif chan.is_up:
            cause = NORMAL_CLEARING
        elif event.reason == "busy":
            cause = BUSY
        else:
            cause = Cause(480, f"Far end gone ({event.reason})")
        log.info("%s: call ended by the line (%s)", self.label(), event.reason)
        chan.remote_gone(cause)

    # -- engine loop: the PBX side ------------------------------------------------------------------------
    def _offer(self) -> None:
        self._cancel_timer()
        if self.state != _L.INCOMING or self.channel is not None:
            return
        caller = self.caller or Party("", "")
        chan = ModemLineChannel(self, "inbound", caller, self.config.did)
        try:
            chan.open_media()
        except Exception:
            log.exception("%s: no media leg for an inbound call", self.label())
            chan.release_media()
            self._to(_L.REJECTED)
            return
        self.channel = chan
        self.counters["calls_in"] += 1
        log.info("%s: inbound call from %r to DID %s", self.label(), caller.number, self.config.did)
        self.ctx.pbx.incoming(chan, self.config.did, None, via_trunk=self.config.trunk_name)

    def answer(self, chan: ModemLineChannel) -> None:
        """The PBX answered the inbound call on `chan`: go off-hook (AT+VLS=1) and open the voice stream."""
        if self.state != _L.INCOMING or self.channel is not chan:
            return
        self._to(_L.ANSWERING)
        self._when_done(self.modem.answer(), lambda fut: self._request_failed(chan, fut, "answer"))

    def dial_out(self, chan: ModemLineChannel) -> bool:
        """Take the idle line for `chan` and dial its callee; False when the line is not idle."""
        if self.state != _L.IDLE:
            return False
        digits = "".join(d for d in chan.callee if d in "0123456789*#")
        if not digits:
            return False
        self.channel = chan
        self.caller = None
        self.counters["calls_out"] += 1
        self._to(_L.DIALING)
        self._when_done(self.modem.dial(digits), lambda fut: self._dial_sent(chan, fut))
        return True

    def _dial_sent(self, chan: ModemLineChannel, fut: Future[None]) -> None:
        if fut.exception() is None:
            if self.channel is chan and self.state == _L.DIALING:
                chan.dialled()
            return
        self._request_failed(chan, fut, "dial")

    def _request_failed(self, chan: ModemLineChannel, fut: Future[None], what: str) -> None:
        """A request the driver could not carry out (a RING raced our dial, the modem failed...)."""
        exc = fut.exception()
        if exc is None or self.channel is not chan or self.state not in _OFF_HOOK:
            return  # done, or the Hangup / ModemDown event already released the call
        log.warning("%s: %s failed: %s", self.label(), what, exc)
        self.channel = None
        self._release_line()
        chan.remote_gone(CONGESTION)

    def channel_ended(self, chan: ModemLineChannel, cause: Cause) -> None:
        """The PBX ended `chan`: hang up the line if off-hook; leave a refused ringing call to ring out."""
        if self.channel is not chan:
            return
        self.channel = None
        self._cancel_timer()
        if self.state == _L.INCOMING:
            self._to(_L.REJECTED)
        elif self.state in _OFF_HOOK:
            self._release_line()

    def _release_line(self) -> None:
        self._to(_L.RELEASING)
        self._when_done(self.modem.hangup(), lambda _fut: self._released())

    def _released(self) -> None:
        if self.state == _L.RELEASING:
            self._to(_L.IDLE)

    def _when_done(self, fut: Future[None], then: Callable[[Future[None]], None]) -> None:
        """Run `then(fut)` in the engine loop once the driver has carried out a request."""
        fut.add_done_callback(lambda f: self.call_soon(lambda: then(f)))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ModemLineChannel(LineChannel):
    """A call leg on a voice modem's line: inbound from the carrier, or outbound through it."""

    technology = "modem"
    port: ModemLinePort

    # -- inbound -------------------------------------------------------------------------------------
    def ring(self) -> None:
        if not (self.is_down or self.is_up):
            self.set_state(ChannelState.RINGING)  # the carrier already plays ringback

    def progress(self) -> None:
        if not (self.is_down or self.is_up):
            self.set_state(ChannelState.EARLY)  # not off-hook: see the module docstring

    def answer(self) -> None:
        if self.is_down or self.is_up:
            return
        self.port.answer(self)
        self.set_state(ChannelState.UP)


    # -- outbound ------------------------------------------------------------------------------------
    def dial(self) -> None:
        port = self.port
        if not port.in_service:
            self.refuse_dial(MODEM_DOWN)
            return
        if not port.available:
            self.refuse_dial(CONGESTION)
            return
        self.open_media()
        if not port.dial_out(self):
            self.refuse_dial(Cause(484, "Address Incomplete"))

    def dialled(self) -> None:
        """The dial string is out: the far end is being called (no early media in voice dial mode)."""
        if self.is_down or self.is_up:
            return
        self.set_state(ChannelState.RINGING)
        self.post(Ringing(self))

    def far_end_answered(self) -> None:
        if self.is_down or self.is_up:
            return
        self.set_state(ChannelState.UP)
        self.post(Answered(self))

    def remote_description(self) -> str:
        return f"{self.port.label()} ({self.port.config.device})"


class ModemPorts(AnalogPorts, Protocol):
    """The analog lines and modem lines a factory dials out on (hw.manager.HardwareManager)."""

    def modem_ports(self, trunk_name: str) -> list[ModemLinePort]: ...


class ModemLineFactory(HardwareChannelFactory):
    """The hardware channel factory, plus modem lines as members of their trunk's group."""

    hw: ModemPorts

    def __init__(self, inner: OutboundLegs | None, hw: ModemPorts) -> None:
        super().__init__(inner, hw)

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        modems = self.hw.modem_ports(dest.trunk.name)
        idle = next((p for p in modems if p.available), None)
        if idle is None and (not modems or self.hw.fxo_ports(dest.trunk.name)):
            return super().channel_for_trunk(dest, caller)  # a board's FXO line, or SIP
        # An idle modem; all busy: the first, whose dial() reports congestion.
        port = idle or modems[0]
        return ModemLineChannel(port, "outbound", Party(dest.caller_id or caller.number, caller.name), dest.number)
