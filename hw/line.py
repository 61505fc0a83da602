"""What FXS and FXO ports share: the engine context, the port's link to its board, and the media leg.

A `LinePort` is one analog port of a board with its own explicit state machine (hw/fxs.py,
hw/fxo.py); a `LineChannel` is the PBX channel of the call currently on that port. Both run
in the engine's call-control loop; the manager hands them board events there.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from appliance.pbx.channel import NORMAL_CLEARING, Cause, Channel, ChannelState, HungUp, Party
from appliance.pbx.dialplan import Dialplan, ToTrunk
from appliance.pbx.ports import MediaPort
from appliance.store.models import Extension
from hw.frames import Audio, Message
from hw.relay import AudioRelay

log = logging.getLogger("plateau.hw")
BOARD_GONE = Cause(503, "Line board gone")
PORT_REMOVED = Cause(503, "Line port removed from hardware.yaml")


class OutboundLegs(Protocol):
    """The PBX's channel factory as the hardware wraps it: outbound legs towards extensions and
    trunks (implemented by the SIP layer's factory, and by the hardware's own wrappers)."""

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]: ...

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel: ...

    def reachable(self, number: str) -> bool: ...


class LinePbx(Protocol):
    """What line hardware uses of the PBX (implemented by `pbx.switchboard.Switchboard`): it hands
    an arriving call's channel in, and adds its lines to the factory calls go out through."""

    factory: OutboundLegs | None

    @property
    def dialplan(self) -> Dialplan: ...  # the extensions an FXS phone may be

    def incoming(self, chan: Channel, dialed: str, caller_ext: Extension | None,
                 via_trunk: str | None = None) -> object: ...


@dataclass
class HwContext:
    """What every hw port and channel needs from the engine: ports, never the engine's objects."""

    pbx: LinePbx
    media: MediaPort
    schedule: Callable[[float, Callable[[], None]], Any]
    relay: AudioRelay
    media_host: str = "127.0.0.1"
    # The engine maps media events (DTMF, prompt ends, RTP timeouts) to channels by leg id here.
    channels_by_leg: dict[str, Channel] = field(default_factory=dict)


class IllegalPortTransition(RuntimeError):
    """A line port was asked to move to a state its state machine does not allow."""


class LinePort:
    """One port of a board: its index, how to send it commands, its STATUS figures."""

    kind = "line"

    def __init__(self, ctx: HwContext, board: str, index: int, send: Callable[[Message], int | None]) -> None:
        self.ctx = ctx
        self.board = board
        self.index = index
        self.send = send
        self.board_state = 0  # the state the board reports in STATUS
        self.line = 0  # last STATUS reading: FXO 0.1 V, FXS 0.1 mA
        self.alarms = 0
        self.audio_key: str | None = None  # the media leg our AUDIO frames go to (reader thread reads it)

    def label(self) -> str:
        return f"{self.board} port {self.index}"

    def audio_from_board(self, ulaw: bytes) -> None:
        """Reader thread: one AUDIO frame from the board."""
        key = self.audio_key
        if key is not None:
            self.ctx.relay.from_board(key, ulaw)

    def audio_to_board(self, ulaw: bytes) -> None:
        """Relay thread: 20 ms for the line."""
        self.send(Audio(self.index, ulaw))

    def channel_ended(self, chan: Any, cause: Cause) -> None:
        """The PBX ended `chan` with `cause`: release the line as this kind of port requires."""
        raise NotImplementedError(f"{type(self).__name__} does not take calls")


class LineChannel(Channel):
    """A PBX channel on a line port: owns one media leg bridged to the port's audio."""

    def __init__(self, port: LinePort, direction: str, caller: Party, callee: str) -> None:
        super().__init__(direction, caller, callee)
        self.port = port
        self.rtp_port: int | None = None
        self.relay_port: int | None = None

    def open_media(self) -> None:
        """Create our leg and point it at a relay endpoint; raises MediaError."""
        ctx = self.port.ctx
        self.rtp_port = ctx.media.create_leg(self.media_leg)
        ctx.channels_by_leg[self.media_leg] = self
        self.relay_port = ctx.relay.open(self.media_leg, (ctx.media_host, self.rtp_port), self.port.audio_to_board)
        # PCMU, no telephone-event PT: the board reports keys as DTMF events and we post them;
        # in-band detection off so a key is not reported twice.
        ctx.media.configure_leg(self.media_leg, (ctx.media_host, self.relay_port), "PCMU", 0, None,
                                "sendrecv", False)
        self.port.audio_key = self.media_leg

    def release_media(self) -> None:
        ctx = self.port.ctx
        if self.port.audio_key == self.media_leg:
            self.port.audio_key = None
        ctx.relay.close(self.media_leg)
        ctx.channels_by_leg.pop(self.media_leg, None)
        if self.rtp_port is not None:
            self.rtp_port = None
            try:
                ctx.media.destroy_leg(self.media_leg)
            except Exception as exc:  # noqa: BLE001 - the media process may be gone at shutdown
                log.debug("destroy_leg %s: %s", self.media_leg, exc)

    def remote_gone(self, cause: Cause) -> None:
        """The line ended the call (phone hung up, far end cleared, board gone)."""
        if self.is_down:
            return
        self.set_state_down()
        self.post(HungUp(self, cause, remote=True))

    def set_state_down(self) -> None:
        self.set_state(ChannelState.DOWN)
        self.release_media()

    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        """The PBX ends the call: the port releases the line as its kind requires."""
        if self.is_down:
            return
        self.set_state_down()
        self.port.channel_ended(self, cause)

    def refuse_dial(self, cause: Cause) -> None:
        """The call cannot go out on this port: down at once, the PBX told on the next loop turn."""
        self.set_state_down()
        self.post_later(HungUp(self, cause, remote=True))

    def post_later(self, event: Any) -> None:
        """Post from the next loop turn: the PBX must not hear about a dial() inside dial()."""
        self.port.ctx.schedule(0.0, lambda: self.post(event))

    def notify_transfer(self, status: int, reason: str, final: bool) -> None:
        log.info("%s: transfer %s %s%s", self.id, status, reason, " (final)" if final else "")

    def remote_description(self) -> str:
        return self.port.label()

    def info_extra(self) -> dict[str, object]:
        return {"board": self.port.board, "port": self.port.index, "rtp_port": self.rtp_port,
                "relay": self.port.ctx.relay.stats(self.media_leg)}
