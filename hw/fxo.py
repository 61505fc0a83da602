"""FXO: an analog line from the carrier on a line-board port, working as a trunk.

Inbound: ring voltage (RING_START) and the caller ID sent in the first silence (ETSI EN 300
659-1; DTMF CLIP arrives before the first ring) make an inbound call routed by the port's DID
(`Switchboard.incoming` with `via_trunk`, so inbound DID routes apply). The line is seized
(OFFHOOK) only when the PBX answers: early media on an analog line would mean answering it,
so `progress()` does not seize and the caller keeps hearing the carrier's ringback.

Outbound: seize, DIAL the digits, and wait for answer supervision: a polarity reversal
(or, on lines without it, `answer_on_dial`). The far end hanging up shows as a second
polarity reversal, a busy tone on the line, or the line released (ON_HOOK).
"""
from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any

from appliance.pbx.channel import (
    CANCELLED,
    CONGESTION,
    NORMAL_CLEARING,
    Answered,
    Cause,
    ChannelState,
    DtmfReceived,
    Party,
    Progress,
)
from hw.frames import Dial, OffhookCommand, OnhookCommand
from hw.line import BOARD_GONE, HwContext, IllegalPortTransition, LineChannel, LinePort

log = logging.getLogger("plateau.hw")
CID_WAIT_S = 4.5  # FSK caller ID comes 0.5 s after the first burst, inside a 3.5 s silence (FR cadence)
DIAL_DELAY_S = 0.5  # after seizing: time for the exchange to give dial tone


@dataclass(frozen=True)
class FxoConfig:
    did: str
    trunk_name: str
    answer_on_dial: bool = False
    cid_wait_s: float = CID_WAIT_S


class FxoState(enum.Enum):
    OUT_OF_SERVICE = "out-of-service"
    IDLE = "idle"
    INCOMING = "incoming"  # ringing: waiting for caller ID, or offered to the PBX
    REJECTED = "rejected"  # ringing, but the PBX refused the call: ignore rings until RING_STOP
    SEIZED = "seized"  # off-hook: answered inbound, or outbound dialled


_ALLOWED: dict[FxoState, set[FxoState]] = {
    FxoState.OUT_OF_SERVICE: {FxoState.IDLE},
    FxoState.IDLE: {FxoState.INCOMING, FxoState.SEIZED},
    FxoState.INCOMING: {FxoState.SEIZED, FxoState.IDLE, FxoState.REJECTED},
    FxoState.REJECTED: {FxoState.IDLE},
    FxoState.SEIZED: {FxoState.IDLE},
}


class FxoPort(LinePort):
    """One FXO port and the line on it."""

    kind = "fxo"

    def __init__(self, ctx: HwContext, board: str, index: int, send: Any, config: FxoConfig) -> None:
        super().__init__(ctx, board, index, send)
        self.config = config
        self.state = FxoState.OUT_OF_SERVICE
        self.channel: FxoChannel | None = None
        self.caller: Party | None = None  # caller ID heard for the coming/current ring
        self.polarity_reversed = False
        self._timer: Any = None

    def _to(self, new: FxoState) -> None:
        if new != self.state and new not in _ALLOWED[self.state] and new != FxoState.OUT_OF_SERVICE:
            raise IllegalPortTransition(f"{self.label()}: {self.state.value} -> {new.value}")
        log.debug("%s: %s -> %s", self.label(), self.state.value, new.value)
        self.state = new

    def status(self) -> dict[str, object]:
        return {"port": self.index, "kind": "fxo", "did": self.config.did, "trunk": self.config.trunk_name,
                "state": self.state.value, "board_state": self.board_state, "line_volts": self.line / 10.0,
                "alarms": self.alarms, "channel": self.channel.id if self.channel else None}

    @property
    def in_service(self) -> bool:
        return self.state != FxoState.OUT_OF_SERVICE

    @property
    def available(self) -> bool:
        return self.state == FxoState.IDLE

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- board up / gone ---------------------------------------------------------------------------------
    def board_up(self) -> None:
        if self.state == FxoState.OUT_OF_SERVICE:
            self._to(FxoState.IDLE)

    def board_gone(self) -> None:
        self._cancel_timer()
        chan, self.channel = self.channel, None
        self._to(FxoState.OUT_OF_SERVICE)
        if chan is not None:
            chan.remote_gone(BOARD_GONE)

    # -- events from the line -------------------------------------------------------------------------
    def ring_start(self) -> None:
        if self.state != FxoState.IDLE:
            return  # the next burst of a ring already seen
        self._to(FxoState.INCOMING)
        if self.caller is not None:
            self._offer()  # DTMF CLIP came before the ring
        else:
            self._timer = self.ctx.schedule(self.config.cid_wait_s, self._offer)

    def caller_id(self, number: str, name: str) -> None:
        self.caller = Party(number, name)
        if self.state == FxoState.INCOMING and self.channel is None:
            self._cancel_timer()
            self._offer()

    def ring_stop(self) -> None:
        """The caller gave up before we answered."""
        self._cancel_timer()
        self.caller = None
        if self.state not in (FxoState.INCOMING, FxoState.REJECTED):
            return
        chan, self.channel = self.channel, None
        self._to(FxoState.IDLE)
        if chan is not None:
            chan.remote_gone(CANCELLED)

    def polarity(self, reversed_: bool) -> None:
        changed = reversed_ != self.polarity_reversed
        self.polarity_reversed = reversed_
        chan = self.channel
        if not changed or chan is None or self.state != FxoState.SEIZED:
            return
        if chan.direction == "outbound" and not chan.is_up and not chan.answer_seen:
            chan.answer_seen = True
            chan.far_end_answered()  # the first reversal: the called party answered
        else:
            self._far_end_gone("polarity reversal")

    def busy_tone(self) -> None:
        if self.state == FxoState.SEIZED:
            self._far_end_gone("busy tone on the line")

    def line_released(self) -> None:
        if self.state == FxoState.SEIZED:
            self._far_end_gone("line released")

    def dtmf(self, digit: str, duration_ms: int = 100) -> None:
        if self.channel is not None and self.state == FxoState.SEIZED:
            self.channel.post(DtmfReceived(self.channel, digit, "line", duration_ms))

    def _far_end_gone(self, why: str) -> None:
        log.info("%s: far end gone (%s)", self.label(), why)
        chan, self.channel = self.channel, None
        self.send(OnhookCommand(self.index))
        self._to(FxoState.IDLE)
        self.polarity_reversed = False
        if chan is not None:
            chan.remote_gone(NORMAL_CLEARING if chan.is_up else Cause(480, f"Far end gone ({why})"))

    # -- inbound call ---------------------------------------------------------------------------------
    def _offer(self) -> None:
        self._timer = None
        if self.state != FxoState.INCOMING or self.channel is not None:
            return
        caller = self.caller or Party("", "")
        chan = FxoChannel(self, "inbound", caller, self.config.did)
        try:
            chan.open_media()
        except Exception:
            log.exception("%s: no media leg for an inbound call", self.label())
            chan.release_media()
            self._to(FxoState.REJECTED)
            return
        self.channel = chan
        log.info("%s: inbound call from %r to DID %s", self.label(), caller.number, self.config.did)
        self.ctx.pbx.incoming(chan, self.config.did, None, via_trunk=self.config.trunk_name)

    def seize(self, chan: FxoChannel) -> None:
        if self.state == FxoState.INCOMING and self.channel is chan:
            self.send(OffhookCommand(self.index))
            self._to(FxoState.SEIZED)

    # -- outbound call ---------------------------------------------------------------------------------
    def dial_out(self, chan: FxoChannel) -> bool:
        if self.state != FxoState.IDLE:
            return False
        self.channel = chan
        self.caller = None
        self.polarity_reversed = False
        self.send(OffhookCommand(self.index))
        self._to(FxoState.SEIZED)
        self._timer = self.ctx.schedule(DIAL_DELAY_S, lambda: self._send_digits(chan))
        return True

    def _send_digits(self, chan: FxoChannel) -> None:
        self._timer = None
        if self.channel is not chan or chan.is_down:
            return
        digits = "".join(d for d in chan.callee if d in "0123456789*#")
        if digits:
            self.send(Dial(self.index, digits))
        chan.dialled()

    def channel_ended(self, chan: FxoChannel, cause: Cause) -> None:
        """The PBX ended `chan`: release the line if seized; refuse a still-ringing call."""
        if self.channel is not chan:
            return
        self.channel = None
        self._cancel_timer()
        if self.state == FxoState.SEIZED:
            self.send(OnhookCommand(self.index))
            self._to(FxoState.IDLE)
        elif self.state == FxoState.INCOMING:
            self._to(FxoState.REJECTED)


class FxoChannel(LineChannel):
    """A call leg on an FXO line: inbound from the carrier, or outbound through it."""

    technology = "fxo"
    port: FxoPort

    def __init__(self, port: FxoPort, direction: str, caller: Party, callee: str) -> None:
        super().__init__(port, direction, caller, callee)
        self.answer_seen = False

    # -- inbound -------------------------------------------------------------------------------------
    def ring(self) -> None:
        if not (self.is_down or self.is_up):
            self.set_state(ChannelState.RINGING)  # the carrier already plays ringback

    def progress(self) -> None:
        if not (self.is_down or self.is_up):
            self.set_state(ChannelState.EARLY)  # not seized: see the module docstring

    def answer(self) -> None:
        if self.is_down or self.is_up:
            return
        self.port.seize(self)
        self.set_state(ChannelState.UP)


    # -- outbound ------------------------------------------------------------------------------------
    def dial(self) -> None:
        if self.port.state == FxoState.OUT_OF_SERVICE:
            self.refuse_dial(BOARD_GONE)
            return
        if not self.port.available:
            self.refuse_dial(CONGESTION)
            return
        self.open_media()
        self.port.dial_out(self)

    def dialled(self) -> None:
        """The digits are out: the caller hears the line (ringback, announcements) as early media."""
        if self.is_down:
            return
        self.set_state(ChannelState.EARLY)
        self.post(Progress(self))
        if self.port.config.answer_on_dial:
            self.far_end_answered()

    def far_end_answered(self) -> None:
        if self.is_down or self.is_up:
            return
        self.set_state(ChannelState.UP)
        self.post(Answered(self))
