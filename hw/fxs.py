"""FXS: an analog desk phone on a line-board port, working as a PBX extension.

Lifting the phone gives dial tone (played by the board); keys arrive as DTMF events and are
collected until '#' or 4 s without a key, then handed to `Switchboard.incoming` as if the
extension had dialled them. A call to the extension rings the phone with caller ID; lifting
it answers. Hanging up ends the call. A hook flash during a call puts the other party on hold
and collects a number: a blind transfer to it (the phone may hang up once it is dialled).
When the other party leaves while the phone is still off-hook, the phone hears busy tone
until it is hung up (the "lockout" of analog exchanges).
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from appliance.pbx.channel import (
    BUSY,
    CANCELLED,
    NORMAL_CLEARING,
    Answered,
    Cause,
    ChannelState,
    DtmfReceived,
    HoldChanged,
    Party,
    Ringing,
    TransferRequested,
)
from appliance.store.models import Extension
from hw.frames import Cadence, CidMode, Ring, StopRing, Tone, ToneKind
from hw.line import BOARD_GONE, HwContext, IllegalPortTransition, LineChannel, LinePort

log = logging.getLogger("plateau.hw")
INTERDIGIT_S = 4.0
FIRST_DIGIT_S = 10.0


@dataclass(frozen=True)
class FxsConfig:
    extension: str
    cadence: Cadence = Cadence.FR
    cid_mode: CidMode = CidMode.ETSI_FSK


class FxsState(enum.Enum):
    OUT_OF_SERVICE = "out-of-service"  # board not up
    IDLE = "idle"  # on-hook
    RINGING = "ringing"  # the PBX rings the phone
    DIALTONE = "dialtone"  # off-hook, collecting the number of a new call
    CALL = "call"  # off-hook with a call (placed or answered)
    TRANSFER_DIAL = "transfer-dial"  # after a hook flash: collecting the transfer target
    LOCKOUT = "lockout"  # the call ended but the phone is still off-hook: busy tone


_ALLOWED: dict[FxsState, set[FxsState]] = {
    FxsState.OUT_OF_SERVICE: {FxsState.IDLE},
    FxsState.IDLE: {FxsState.RINGING, FxsState.DIALTONE},
    FxsState.RINGING: {FxsState.CALL, FxsState.IDLE},
    FxsState.DIALTONE: {FxsState.CALL, FxsState.IDLE, FxsState.LOCKOUT},
    FxsState.CALL: {FxsState.TRANSFER_DIAL, FxsState.LOCKOUT, FxsState.IDLE},
    FxsState.TRANSFER_DIAL: {FxsState.CALL, FxsState.LOCKOUT, FxsState.IDLE},
    FxsState.LOCKOUT: {FxsState.IDLE},
}


class FxsPort(LinePort):
    """One FXS port and the phone on it."""

    kind = "fxs"

    def __init__(self, ctx: HwContext, board: str, index: int, send: Any, config: FxsConfig) -> None:
        super().__init__(ctx, board, index, send)
        self.config = config
        self.state = FxsState.OUT_OF_SERVICE
        self.channel: FxsChannel | None = None
        self.digits = ""
        self._timer: Any = None

    # -- the one place where port transitions happen -------------------------------------------
    def _to(self, new: FxsState) -> None:
        if new != self.state and new not in _ALLOWED[self.state] and new != FxsState.OUT_OF_SERVICE:
            raise IllegalPortTransition(f"{self.label()}: {self.state.value} -> {new.value}")
        log.debug("%s: %s -> %s", self.label(), self.state.value, new.value)
        self.state = new

    def status(self) -> dict[str, object]:
        return {"port": self.index, "kind": "fxs", "extension": self.config.extension, "state": self.state.value,
                "board_state": self.board_state, "loop_current_ma": self.line / 10.0, "alarms": self.alarms,
                "channel": self.channel.id if self.channel else None}

    @property
    def in_service(self) -> bool:
        return self.state != FxsState.OUT_OF_SERVICE

    @property
    def available(self) -> bool:
        return self.state == FxsState.IDLE

    def tone(self, kind: ToneKind) -> None:
        self.send(Tone(self.index, kind))

    # -- board up / gone ---------------------------------------------------------------------------------
    def board_up(self) -> None:
        if self.state == FxsState.OUT_OF_SERVICE:
            self._to(FxsState.IDLE)

    def board_gone(self) -> None:
        self._cancel_timer()
        chan, self.channel = self.channel, None
        self._to(FxsState.OUT_OF_SERVICE)
        if chan is not None:
            chan.remote_gone(BOARD_GONE)

    # -- events from the phone ------------------------------------------------------------------------
    def off_hook(self) -> None:
        if self.state == FxsState.IDLE:
            self._to(FxsState.DIALTONE)
            self.digits = ""
            self.tone(ToneKind.DIAL)
            self._restart_timer(FIRST_DIGIT_S)
        elif self.state == FxsState.RINGING and self.channel is not None:
            self._to(FxsState.CALL)
            self.channel.phone_answered()
        else:
            log.debug("%s: off-hook in %s ignored", self.label(), self.state.value)

    def on_hook(self) -> None:
        self._cancel_timer()
        chan, self.channel = self.channel, None
        if self.state in (FxsState.IDLE, FxsState.OUT_OF_SERVICE):
            return
        self._to(FxsState.IDLE)
        if chan is not None:
            chan.remote_gone(NORMAL_CLEARING if chan.is_up else CANCELLED)

    def flash(self) -> None:
        chan = self.channel
        if self.state == FxsState.CALL and chan is not None and chan.is_up:
            self._to(FxsState.TRANSFER_DIAL)
            self.digits = ""
            chan.held = True
            chan.post(HoldChanged(chan, True))
            self.tone(ToneKind.DIAL)
            self._restart_timer(FIRST_DIGIT_S)
        elif self.state == FxsState.TRANSFER_DIAL and chan is not None:
            self._back_to_call(chan)  # a second flash: back to the held party

    def dtmf(self, digit: str, duration_ms: int = 100) -> None:
        if self.state in (FxsState.DIALTONE, FxsState.TRANSFER_DIAL):
            if not self.digits:
                self.tone(ToneKind.OFF)
            if digit == "#":
                self._digits_done()
                return
            self.digits += digit
            self._restart_timer(INTERDIGIT_S)
        elif self.state == FxsState.CALL and self.channel is not None:
            self.channel.post(DtmfReceived(self.channel, digit, "line", duration_ms))

    # -- digit collection ------------------------------------------------------------------------------
    def _restart_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.ctx.schedule(seconds, self._digits_done)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _digits_done(self) -> None:
        self._timer = None
        number, self.digits = self.digits, ""
        if self.state == FxsState.DIALTONE:
            if not number:
                self._lockout(ToneKind.CONGESTION)  # no number dialled: the exchange gives up
                return
            self._place_call(number)
        elif self.state == FxsState.TRANSFER_DIAL and self.channel is not None:
            chan = self.channel
            if not number:
                self._back_to_call(chan)
                return
            self._to(FxsState.CALL)
            chan.held = False  # the transfer plays ringback to the other party itself
            log.info("%s: hook-flash transfer to %s", self.label(), number)
            chan.post(TransferRequested(chan, number, None))

    def _back_to_call(self, chan: FxsChannel) -> None:
        self._cancel_timer()
        self.tone(ToneKind.OFF)
        self._to(FxsState.CALL)
        chan.held = False
        chan.post(HoldChanged(chan, False))

    def _place_call(self, number: str) -> None:
        ext = self.ctx.pbx.dialplan.extensions.get(self.config.extension)
        if ext is None or not ext.enabled:
            log.error("%s: extension %s is not configured: call to %s refused", self.label(),
                      self.config.extension, number)
            self._lockout(ToneKind.CONGESTION)
            return
        chan = FxsChannel(self, "inbound", Party(ext.number, ext.name), number)
        try:
            chan.open_media()
        except Exception:
            log.exception("%s: no media leg for a call to %s", self.label(), number)
            chan.release_media()
            self._lockout(ToneKind.CONGESTION)
            return
        self.channel = chan
        self._to(FxsState.CALL)
        log.info("%s: extension %s dials %s", self.label(), ext.number, number)
        self.ctx.pbx.incoming(chan, number, ext)

    def _lockout(self, tone: ToneKind) -> None:
        self._to(FxsState.LOCKOUT)
        self.tone(tone)

    # -- what channels ask of the port ----------------------------------------------------------------
    def ring_phone(self, chan: FxsChannel) -> bool:
        """Start ringing the phone for an outbound channel; False when the port cannot."""
        if self.state != FxsState.IDLE:
            return False
        self.channel = chan
        self._to(FxsState.RINGING)
        self.send(Ring(self.index, self.config.cadence, self.config.cid_mode, chan.caller.number[:32],
                       chan.caller.name[:32] if self.config.cid_mode != CidMode.DTMF else ""))
        return True

    def channel_ended(self, chan: FxsChannel, cause: Cause) -> None:
        """The PBX ended `chan`: stop ringing, or give busy tone to a phone still off-hook."""
        if self.channel is not chan:
            return
        self.channel = None
        self._cancel_timer()
        if self.state == FxsState.RINGING:
            self.send(StopRing(self.index))
            self._to(FxsState.IDLE)
        elif self.state in (FxsState.CALL, FxsState.TRANSFER_DIAL):
            self._lockout(ToneKind.BUSY if cause.code in (200, 486, 600) else ToneKind.CONGESTION)


class FxsChannel(LineChannel):
    """A call leg on an FXS port: inbound when the phone dialled, outbound when it is rung."""

    technology = "fxs"
    port: FxsPort

    # -- outbound: the PBX rings the phone ---------------------------------------------------------
    def dial(self) -> None:
        if self.port.state == FxsState.OUT_OF_SERVICE:
            self.refuse_dial(BOARD_GONE)
            return
        if not self.port.available:
            self.refuse_dial(BUSY)
            return
        self.open_media()
        self.port.ring_phone(self)
        self.set_state(ChannelState.RINGING)
        self.post_later(Ringing(self))

    def phone_answered(self) -> None:
        if self.is_down or self.is_up:
            return
        self.set_state(ChannelState.UP)
        self.post(Answered(self))

    # -- inbound: the phone placed the call --------------------------------------------------------
    def ring(self) -> None:
        if self.is_down or self.is_up:
            return
        if self.set_state(ChannelState.RINGING):
            self.port.tone(ToneKind.RINGBACK)

    def progress(self) -> None:
        if self.is_down or self.is_up or self.state == ChannelState.EARLY:
            return
        self.set_state(ChannelState.EARLY)
        self.port.tone(ToneKind.OFF)  # from now on the phone hears what the PBX sends

    def answer(self) -> None:
        if self.is_down or self.is_up:
            return
        if self.state == ChannelState.RINGING:
            self.port.tone(ToneKind.OFF)
        self.set_state(ChannelState.UP)



def fxs_extension_map(ports: list[FxsPort]) -> dict[str, list[FxsPort]]:
    """Extension number -> the FXS ports that ring for it."""
    out: dict[str, list[FxsPort]] = {}
    for p in ports:
        out.setdefault(p.config.extension, []).append(p)
    return out


def channel_for(port: FxsPort, ext: Extension, caller: Party) -> FxsChannel:
    """An outbound channel that will ring `port` for a call to `ext`."""
    chan = FxsChannel(port, "outbound", caller, ext.number)
    return chan
