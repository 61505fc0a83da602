"""ISDN BRI on a line-board port, working as a trunk: the port and the PBX channel on it.

The board carries the port's D channel as `DCHAN` frames (bare Q.921 LAPD) and its B channels
as 20 ms µ-law (EuroISDN's bearer is A-law, the board converts, see hw/PROTOCOL.md): a board
whose CAPS sets bit 2 on the port carries both B channels as `BAUDIO` (each frame names its B
channel), so the port takes two calls at once, as a basic-rate access does (ITU-T I.430: 2B+D);
an older board carries only the B channel of one call as `AUDIO`, and the port takes one call.
Q.921/Q.931 run in libpri through `hw.isdn.BriPort` (TE, user side); this module makes its
calls PBX channels, in the shape of hw/fxo.py:

- Inbound: a SETUP becomes a channel routed by its DID (`Switchboard.incoming` with
  `via_trunk`, so inbound DID routes apply), presenting the calling number. We send CALL
  PROCEEDING at once (Q.931 5.2.5.2: en-bloc number, we are routing it) so the network's
  T303 does not expire while the PBX works; the PBX's ring becomes ALERTING, early media
  PROGRESS, answer CONNECT.
- Outbound: a trunk whose name is the port's `trunk_name` sends a SETUP; ALERTING, PROGRESS
  and CONNECT become Ringing, Progress and Answered.
- Clearing either way carries its cause mapped between Q.850 and SIP (RFC 3398, hw/isdn.py).

B channels: each call is bound to the B channel Q.931's channel identification gives it
(clause 4.5.13): inbound, the one the network chose in SETUP (or, when the network left the
choice to us, a free one we name in CALL PROCEEDING, 5.2.3.2); outbound, we ask for "any channel"
and take the one CALL PROCEEDING, ALERTING or CONNECT indicates (5.1.2). A SETUP beyond the
port's calls (two, or one on an AUDIO-only board) is refused with cause 34 (no circuit/channel
available, SIP 503); one naming a B channel already ours with cause 44.

Timers: libpri's Q.921/Q.931 timers (T200, T203, T303, T309...) run from the engine's
scheduler, re-armed from `BriPort.next_timer()` after every frame, request and poll.
"""
from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.pbx.channel import (
    CANCELLED,
    CONGESTION,
    Answered,
    Cause,
    Channel,
    ChannelState,
    HungUp,
    Party,
    Progress,
    Ringing,
)
from appliance.pbx.dialplan import ToTrunk
from appliance.store.models import Extension
from hw import isdn
from hw.frames import B_CHANNELS, BAudio, DChan, PortCaps
from hw.isdn import BriPort, BriUnavailable, CallState, IsdnCall, IsdnEvent
from hw.libpri import PriError
from hw.line import BOARD_GONE, HwContext, IllegalPortTransition, LineChannel, LinePort, OutboundLegs


log = logging.getLogger("plateau.hw")
D_CHANNEL_DOWN = Cause(503, "ISDN D channel down")
# Q.850 causes we clear with on our own initiative.
Q850_UNALLOCATED = 1  # the called number is not one of this port's DIDs
Q850_NO_CIRCUIT = 34  # every B channel of the port is in use
Q850_CHANNEL_UNAVAILABLE = 44  # the network named a B channel we already use (requested channel not available)
Q850_TEMPORARY_FAILURE = 41  # no media leg could be had


@dataclass(frozen=True)
class BriConfig:
    """hardware.yaml `bri:` port: which called numbers are ours, and the trunk it serves."""

    trunk_name: str = "isdn"
    dids: tuple[str, ...] = ()  # the numbers this access answers (empty: every number)
    did_prefix: str = ""  # prepended to a short called number (a DDI line sends only the last digits)
    ptp: bool = True  # point-to-point (a PBX access) or point-to-multipoint (the basic-access bus)

    def did_for(self, called: str) -> str | None:
        """The DID to route a SETUP by, from its called number; None when it is not ours."""
        number = called
        if self.did_prefix and not called.startswith(self.did_prefix):
            number = self.did_prefix + called
        if self.dids and number not in self.dids and called not in self.dids:
            return None
        return number


class BriLineState(enum.Enum):
    OUT_OF_SERVICE = "out-of-service"  # no board, or the D channel is down
    IDLE = "idle"
    IN_CALL = "in-call"  # at least one call is offered, dialling or up


_ALLOWED: dict[BriLineState, set[BriLineState]] = {
    BriLineState.OUT_OF_SERVICE: {BriLineState.IDLE},
    BriLineState.IDLE: {BriLineState.IN_CALL},
    BriLineState.IN_CALL: {BriLineState.IDLE},
}


class BriLinePort(LinePort):
    """One BRI port of a board, its libpri TE, and the channels of its calls (one per B channel)."""

    kind = "bri"

    def __init__(self, ctx: HwContext, board: str, index: int, send: Any, config: BriConfig) -> None:
        super().__init__(ctx, board, index, send)
        self.config = config
        self.state = BriLineState.OUT_OF_SERVICE
        self.calls: list[BriChannel] = []  # oldest first
        self.max_calls = 1  # 2 once the board's CAPS says both B channels travel as BAUDIO
        # B channel -> the channel using it; the link's reader thread reads it for BAUDIO frames.
        self.b_owner: dict[int, BriChannel] = {}
        self.bri: BriPort | None = None
        self.counters = {"calls_in": 0, "calls_out": 0, "refused_in": 0, "frames_in": 0}
        self._timer: Any = None
        self._timer_due: float | None = None

    def _to(self, new: BriLineState) -> None:
        if new != self.state and new not in _ALLOWED[self.state] and new != BriLineState.OUT_OF_SERVICE:
            raise IllegalPortTransition(f"{self.label()}: {self.state.value} -> {new.value}")
        log.debug("%s: %s -> %s", self.label(), self.state.value, new.value)
        self.state = new

    @property
    def in_service(self) -> bool:
        return self.bri is not None and self.bri.link_up

    @property
    def two_b(self) -> bool:
        """Both B channels travel on the link as BAUDIO (the board's CAPS bit 2)."""
        return self.max_calls == 2

    @property
    def channel(self) -> BriChannel | None:
        """The oldest call's channel (what a one-call port had)."""
        return self.calls[0] if self.calls else None

    @property
    def available(self) -> bool:
        return self.state != BriLineState.OUT_OF_SERVICE and self.in_service and len(self.calls) < self.max_calls

    def status(self) -> dict[str, object]:
        did = ", ".join(self.config.dids) or (f"{self.config.did_prefix}…" if self.config.did_prefix else "any")
        b_channels = []
        for b in B_CHANNELS:
            chan = self.b_owner.get(b)
            b_channels.append({"b": b, "state": "in-call" if chan else "idle", "channel": chan.id if chan else None,
                               "q931_state": chan.isdn.state.value if chan and chan.isdn else None})
        return {"port": self.index, "kind": "bri", "did": did, "trunk": self.config.trunk_name,
                "dids": list(self.config.dids),
                "did_prefix": self.config.did_prefix, "state": self.state.value,
                "d_channel": "up" if self.in_service else "down", "board_state": self.board_state,
                "alarms": self.alarms, "channel": self.channel.id if self.channel else None,
                "calls": len(self.calls), "max_calls": self.max_calls,
                "b_audio": "BAUDIO" if self.two_b else "AUDIO", "b_channels": b_channels,
                "counters": dict(self.counters)}

    # -- board up / gone (engine loop) ------------------------------------------------------------
    def board_up(self, caps: PortCaps | None = None) -> None:
        """The board (re)started: a fresh TE, whose first SABME (or TEI request) goes out now.

        `caps` is the port's CAPS entry: bit 2 set, both B channels travel as BAUDIO and the
        port takes two calls; otherwise (an older board) one call on AUDIO.
        """
        self._drop_controller(BOARD_GONE)
        self.max_calls = caps.b_channels if caps is not None else 1
        log.info("%s: %d call(s) at once (%s)", self.label(), self.max_calls,
                 "BAUDIO, both B channels" if self.two_b else "AUDIO, one B channel")
        self.bri = BriPort(f"{self.board}-bri{self.index}", self._send_lapd, self._on_isdn, ptp=self.config.ptp)
        self._arm_timer()

    def board_gone(self) -> None:
        self._drop_controller(BOARD_GONE)

    def close(self) -> None:
        """The engine stops: drop the controller, its calls and timer."""
        self._drop_controller(BOARD_GONE)

    def _drop_controller(self, cause: Cause) -> None:
        self._cancel_timer()
        bri, self.bri = self.bri, None
        if bri is not None:
            bri.close()
        calls, self.calls = self.calls, []
        self.b_owner.clear()
        self._to(BriLineState.OUT_OF_SERVICE)
        for chan in calls:
            chan.remote_gone(cause)

    def _send_lapd(self, frame: bytes) -> None:
        self.send(DChan(self.index, frame))

    # -- B channels (reader and relay threads) -----------------------------------------------------
    def b_audio_from_board(self, b_channel: int, ulaw: bytes) -> None:
        """Reader thread: one BAUDIO frame: to the media leg of the call on that B channel, if any."""
        chan = self.b_owner.get(b_channel)
        if chan is not None:
            self.ctx.relay.from_board(chan.media_leg, ulaw)

    def audio_from_board(self, ulaw: bytes) -> None:
        """Reader thread: one AUDIO frame: the one call's B channel, on a board without BAUDIO."""
        if not self.two_b:
            super().audio_from_board(ulaw)

    # -- D channel and timers (engine loop) -----------------------------------------------------------
    def dchan(self, lapd: bytes) -> None:
        """One DCHAN frame from the board."""
        if self.bri is None:
            return  # before CAPS: nothing to talk to yet
        self.counters["frames_in"] += 1
        self.bri.feed(lapd)
        self._arm_timer()

    def _poll(self) -> None:
        self._timer = self._timer_due = None
        if self.bri is not None:
            self.bri.poll()
            self._arm_timer()

    def _arm_timer(self) -> None:
        due = self.bri.next_timer() if self.bri is not None else None
        if due == self._timer_due and self._timer is not None:
            return
        self._cancel_timer()
        if due is not None:
            self._timer_due = due
            self._timer = self.ctx.schedule(max(0.0, due - time.time()), self._poll)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_due = None

    def _after_request(self) -> None:
        """A request (dial, alert, answer, hangup) may have armed a Q.931 timer (T303, T305, T308...)."""
        self._arm_timer()

    # -- ISDN events (called from inside feed/poll/requests) ------------------------------------------
    def _on_isdn(self, event: IsdnEvent) -> None:
        try:
            self._isdn_event(event)
        except Exception:  # noqa: BLE001 - one bad event must not leave libpri's dispatch half done
            log.exception("%s: handling %s", self.label(), event)

    def _isdn_event(self, event: IsdnEvent) -> None:
        if isinstance(event, isdn.LinkUp):
            log.info("%s: D channel up", self.label())
            if self.state == BriLineState.OUT_OF_SERVICE:
                self._to(BriLineState.IDLE)
        elif isinstance(event, isdn.LinkDown):
            # A call survives a short layer-2 outage (Q.931 5.8.9, T309); libpri clears it if not.
            log.warning("%s: D channel down", self.label())
            if self.state == BriLineState.IDLE:
                self._to(BriLineState.OUT_OF_SERVICE)
        elif isinstance(event, isdn.IncomingCall):
            self._incoming(event.call)
        else:
            chan = next((c for c in self.calls if c.isdn is event.call), None)
            if chan is None:
                return
            if isinstance(event, isdn.CallCleared):
                self._call_over(chan)
                chan.far_end_cleared(event.q850, event.cause)
                return
            if not self._bind(chan):
                # Q.931 5.1.2: the network indicated a B channel; one we already use cannot be had.
                self._call_over(chan)
                if self.bri is not None and chan.isdn is not None:
                    self.bri.hangup(chan.isdn, Q850_CHANNEL_UNAVAILABLE)
                    self._after_request()
                chan.far_end_cleared(Q850_CHANNEL_UNAVAILABLE, isdn.q850_to_sip(Q850_CHANNEL_UNAVAILABLE))
                return
            if isinstance(event, isdn.CallAlerting):
                chan.far_end_alerting()
            elif isinstance(event, isdn.CallProgress):
                chan.far_end_progress()
            elif isinstance(event, isdn.CallConnected):
                chan.far_end_answered()

    def _call_over(self, chan: BriChannel) -> None:
        if chan in self.calls:
            self.calls.remove(chan)
        if chan.b_channel is not None and self.b_owner.get(chan.b_channel) is chan:
            del self.b_owner[chan.b_channel]
        if not self.calls:
            self._to(BriLineState.IDLE if self.in_service else BriLineState.OUT_OF_SERVICE)

    def _free_b(self) -> int | None:
        return next((b for b in B_CHANNELS if b not in self.b_owner), None)

    def _bind(self, chan: BriChannel) -> bool:
        """Bind `chan` to the B channel its call now names (Q.931 4.5.13); False if another call has it."""
        b = chan.isdn.channel if chan.isdn is not None else None
        if b is None or b == chan.b_channel:
            return True
        owner = self.b_owner.get(b)
        if owner is not None and owner is not chan:
            log.warning("%s: the network put %s on B%d, already used by %s", self.label(), chan.id, b, owner.id)
            return False
        if chan.b_channel is not None and self.b_owner.get(chan.b_channel) is chan:
            del self.b_owner[chan.b_channel]  # the network moved the call (a later message overrides)
        chan.b_channel = b
        self.b_owner[b] = chan
        log.debug("%s: %s on B%d", self.label(), chan.id, b)
        return True

    # -- inbound ----------------------------------------------------------------------------------------
    def _refuse(self, call: IsdnCall, q850: int, why: str) -> None:
        log.info("%s: SETUP %r -> %r refused with cause %d (%s)", self.label(), call.calling, call.called, q850, why)
        self.counters["refused_in"] += 1
        if self.bri is not None:
            self.bri.hangup(call, q850)

    def _incoming(self, call: IsdnCall) -> None:
        if self.state == BriLineState.OUT_OF_SERVICE or len(self.calls) >= self.max_calls:
            self._refuse(call, Q850_NO_CIRCUIT, f"{len(self.calls)} of {self.max_calls} call(s) in use")
            return
        if call.channel is not None and call.channel in self.b_owner:
            self._refuse(call, Q850_CHANNEL_UNAVAILABLE, f"B{call.channel} is in use")
            return
        did = self.config.did_for(call.called)
        if did is None:
            self._refuse(call, Q850_UNALLOCATED, "not one of this port's DIDs")
            return
        if call.channel is None:
            # "Any channel" (or none) in SETUP: the user picks and names it in CALL PROCEEDING (Q.931 5.2.3.2).
            call.channel = self._free_b()
        chan = BriChannel(self, "inbound", Party(call.calling, call.calling_name), did)
        chan.isdn = call
        try:
            chan.open_media()
        except Exception:  # noqa: BLE001 - any media failure refuses this call, not the port
            log.exception("%s: no media leg for an inbound call", self.label())
            chan.release_media()
            self._refuse(call, Q850_TEMPORARY_FAILURE, "no media leg")
            return
        bri = self.bri
        if bri is None:  # closed while the event was being handled
            chan.release_media()
            return
        self.calls.append(chan)
        self._bind(chan)
        self._to(BriLineState.IN_CALL)
        self.counters["calls_in"] += 1
        bri.proceeding(call)
        log.info("%s: inbound call from %r to DID %s on B%s", self.label(), call.calling, did, call.channel)
        self.ctx.pbx.incoming(chan, did, None, via_trunk=self.config.trunk_name)

    # -- what the channel asks ----------------------------------------------------------------------------
    def request(self, chan: BriChannel, what: str) -> None:
        """ALERTING, PROGRESS or CONNECT for the inbound call on `chan` (ignored once cleared)."""
        call, bri = chan.isdn, self.bri
        if call is None or bri is None or chan not in self.calls or call.is_cleared:
            return
        if what == "alert":
            if call.state in (CallState.CALL_PRESENT, CallState.INCOMING_PROCEEDING):
                bri.alert(call)
        elif what == "progress":
            if call.state in (CallState.CALL_PRESENT, CallState.INCOMING_PROCEEDING, CallState.CALL_RECEIVED):
                bri.progress(call)
        elif what == "answer":
            bri.answer(call)
        self._after_request()

    def dial_out(self, chan: BriChannel) -> Cause | None:
        """SETUP for `chan`'s callee; returns why not (None when sent)."""
        if self.bri is None or not self.bri.link_up:
            return D_CHANNEL_DOWN
        if len(self.calls) >= self.max_calls:
            return CONGESTION  # every B channel in use (SIP 503, as cause 34 maps)
        digits = "".join(d for d in chan.callee if d in "0123456789*#")
        if not digits:
            return Cause(484, "Address Incomplete")
        self.calls.append(chan)
        self._to(BriLineState.IN_CALL)
        self.counters["calls_out"] += 1
        try:
            # "Any channel": the network's CALL PROCEEDING/ALERTING/CONNECT names the B channel (_bind).
            chan.isdn = self.bri.dial(digits, chan.caller.number, chan.caller.name)
        except (BriUnavailable, PriError) as exc:
            log.warning("%s: SETUP refused locally: %s", self.label(), exc)
            self._call_over(chan)
            return CONGESTION
        self._after_request()
        return None

    def channel_ended(self, chan: BriChannel, cause: Cause) -> None:
        """The PBX ended `chan`: clear the call with `cause` mapped to Q.850 (RFC 3398 7.2.4.1)."""
        if chan not in self.calls:
            return
        self._call_over(chan)
        if chan.isdn is not None and self.bri is not None:
            self.bri.hangup(chan.isdn, cause)
            self._after_request()


class BriChannel(LineChannel):
    """A call leg on a BRI port: inbound from the network, or outbound through it."""

    technology = "bri"
    port: BriLinePort

    def __init__(self, port: BriLinePort, direction: str, caller: Party, callee: str) -> None:
        super().__init__(port, direction, caller, callee)
        self.isdn: IsdnCall | None = None
        self.b_channel: int | None = None  # the B channel this call is bound to, once Q.931 names it
        self._in_dial = False

    def open_media(self) -> None:
        super().open_media()
        ctx = self.port.ctx
        if self.port.two_b and self.rtp_port is not None:
            # BAUDIO: the port has no single audio stream; our leg's audio goes to our own B channel
            # (the relay replaces the endpoint the line channel opened for the port's AUDIO).
            if self.port.audio_key == self.media_leg:
                self.port.audio_key = None
            self.relay_port = ctx.relay.open(self.media_leg, (ctx.media_host, self.rtp_port), self._to_line)
        relay = self.relay_port
        if relay is None:  # LineChannel.open_media() above has opened one
            raise RuntimeError(f"{self.port.label()}: no audio relay for the B channel")
        # Unlike an analog port, the board reports no keys on a B channel: detect DTMF in-band.
        ctx.media.configure_leg(self.media_leg, (ctx.media_host, relay), "PCMU", 0, None,
                                "sendrecv", True)

    def _to_line(self, ulaw: bytes) -> None:
        """Relay thread: 20 ms for our B channel (dropped until the network has named it)."""
        b = self.b_channel
        if b is not None:
            self.port.send(BAudio(self.port.index, b, ulaw))

    def _post(self, event: Any) -> None:
        # Events raised while dial() runs reach the PBX on the next loop turn (see post_later).
        if self._in_dial:
            self.post_later(event)
        else:
            self.post(event)

    # -- inbound ---------------------------------------------------------------------------------------
    def ring(self) -> None:
        if self.is_down or self.is_up:
            return
        self.port.request(self, "alert")
        self.set_state(ChannelState.RINGING)

    def progress(self) -> None:
        if self.is_down or self.is_up:
            return
        self.port.request(self, "progress")  # the caller now hears our B channel (ringback, prompts)
        self.set_state(ChannelState.EARLY)

    def answer(self) -> None:
        if self.is_down or self.is_up:
            return
        self.port.request(self, "answer")
        self.set_state(ChannelState.UP)


    # -- outbound ----------------------------------------------------------------------------------------
    def dial(self) -> None:
        if not self.port.available:
            self.refuse_dial(D_CHANNEL_DOWN if not self.port.in_service else CONGESTION)
            return
        self.open_media()
        self._in_dial = True
        try:
            refused = self.port.dial_out(self)
        finally:
            self._in_dial = False
        if refused is not None and not self.is_down:
            self.refuse_dial(refused)

    # -- from the network ----------------------------------------------------------------------------------
    def far_end_alerting(self) -> None:
        if self.direction == "outbound" and not (self.is_down or self.is_up):
            self.set_state(ChannelState.RINGING)
            self._post(Ringing(self))

    def far_end_progress(self) -> None:
        """PROGRESS with in-band information: the caller hears the network's tones as early media."""
        if self.direction == "outbound" and not (self.is_down or self.is_up):
            self.set_state(ChannelState.EARLY)
            self._post(Progress(self))

    def far_end_answered(self) -> None:
        if self.direction == "outbound" and not (self.is_down or self.is_up):
            self.set_state(ChannelState.UP)
            self._post(Answered(self))

    def far_end_cleared(self, q850: int, cause: Cause) -> None:
        """DISCONNECT/RELEASE from the network with Q.850 `q850`, already mapped to `cause`."""
        if self.is_down:
            return
        if not self.is_up and cause.code < 300:
            # "Normal clearing" before an answer: the caller gave up (inbound), or the network
            # ended an unanswered call (outbound); neither may reach a SIP caller as a 2xx.
            cause = CANCELLED if self.direction == "inbound" else Cause(480, f"Q.850 cause {q850} before answer")
        log.info("%s: cleared by the network, Q.850 %d -> %s", self.id, q850, cause)
        self.set_state_down()
        self._post(HungUp(self, cause, remote=True))

    def remote_description(self) -> str:
        return f"{self.port.label()} (ISDN {self.isdn.channel if self.isdn and self.isdn.channel else '-'})"

    def info_extra(self) -> dict[str, object]:
        out = super().info_extra()
        if self.isdn is not None:
            out.update({"q931_state": self.isdn.state.value, "b_channel": self.isdn.channel, "q850": self.isdn.q850})
        return out


class BriPorts(Protocol):
    """The BRI accesses a factory dials out on (implemented by hw.manager.HardwareManager)."""

    def bri_ports(self, trunk_name: str) -> list[BriLinePort]: ...


class BriChannelFactory:
    """Wraps the hardware channel factory: calls out of a trunk named like a BRI port's `trunk_name` use it."""

    def __init__(self, inner: OutboundLegs, hw: BriPorts) -> None:
        self.inner = inner
        self.hw = hw

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        return list(self.inner.channels_for_extension(ext, caller))

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        ports = self.hw.bri_ports(dest.trunk.name)
        if not ports:
            return self.inner.channel_for_trunk(dest, caller)  # FXO, modem or SIP
        # The first free access of the group; all busy: the first, whose dial() reports why.
        port = next((p for p in ports if p.available), ports[0])
        return BriChannel(port, "outbound", Party(dest.caller_id or caller.number, caller.name), dest.number)

    def reachable(self, number: str) -> bool:
        return bool(self.inner.reachable(number))
