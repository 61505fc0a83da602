"""Call transfer run by the PBX: blind (REFER, RFC 3515 / RFC 5589 §6) and attended
(REFER with Replaces, RFC 3891 / RFC 5589 §7).

sippy would turn a REFER into a redirect-style hang-up; we keep the transferee's leg,
ring the target ourselves and report progress to the transferor in NOTIFY sipfrag.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from appliance.pbx.call import Call, CallState
from appliance.pbx.channel import BUSY, CANCELLED, FORBIDDEN, NORMAL_CLEARING, Cause, Channel, Party
from appliance.pbx.bus import EventBus
from appliance.pbx.dialplan import Dialplan, Refused, ToQueue, ToTrunk
from appliance.pbx.events import CallTransferred, TransferAsked
from appliance.pbx.fork import Fork
from appliance.pbx.permission import Principal, refusal
from appliance.pbx.ports import MediaPort, Scheduler
from appliance.store.models import Extension

if TYPE_CHECKING:
    from appliance.media.tones import ToneSpec

log = logging.getLogger("plateau.pbx")


class TransferContext(Protocol):
    """What transfers use of the PBX (implemented by the `Switchboard`): media, timers, the routing
    snapshot, outbound legs, who a leg speaks for, and the live calls' legs by SIP dialog."""

    @property
    def media(self) -> MediaPort: ...

    @property
    def schedule(self) -> Scheduler: ...

    @property
    def dialplan(self) -> Dialplan: ...

    @property
    def failure_tone_seconds(self) -> float: ...

    @property
    def calls(self) -> Mapping[str, Call]: ...

    @property
    def events(self) -> EventBus: ...

    def tone(self, kind: str) -> ToneSpec: ...

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]: ...

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel: ...

    def principal_of(self, chan: Channel) -> Principal: ...

    def find_channel_by_dialog(self, call_id: str) -> Channel | None: ...


class Transfers:
    """Decides what a transfer request means and starts it."""

    def __init__(self, pbx: TransferContext) -> None:
        self.pbx = pbx

    def asked(self, event: TransferAsked) -> None:
        """A party asked to be replaced (the `TransferAsked` the call publishes on the bus)."""
        call = self.pbx.calls.get(event.call_id)
        if call is None:
            return
        transferor = next((c for c in (call.a, call.b) if c is not None and c.id == event.channel_id), None)
        if transferor is not None:
            self.requested(call, transferor, event.target, event.replaces)

    def requested(self, call: Call, transferor: Channel, target: str,
                  replaces: tuple[str, str | None, str | None] | None) -> None:
        transferee = call.partner(transferor)
        if call.state != CallState.UP or call.transfer is not None or transferee is None:
            transferor.notify_transfer(491, "Request Pending", final=True)
            return
        if replaces is not None:
            self._attended(call, transferor, transferee, replaces)
            return
        self.blind(call, transferor, transferee, target, notify=True)

    def blind(self, call: Call, transferor: Channel, transferee: Channel, target: str,
              notify: bool) -> None:
        transfer = BlindTransfer(self.pbx, call, transferor, transferee, target, notify)
        call.begin_transfer(transfer)
        # RFC 3515 §5 / RFC 5589 §13: the REFER is authorised as the party it came from (its
        # extension, or its trunk's transfer rights), never as the system.
        transfer.start(self.pbx.principal_of(transferor))

    def _attended(self, call: Call, x1: Channel, y: Channel,
                  replaces: tuple[str, str | None, str | None]) -> None:
        x2 = self.pbx.find_channel_by_dialog(replaces[0])
        call2 = x2.owner if x2 is not None else None
        z = call2.partner(x2) if isinstance(call2, Call) and x2 is not None else None
        if x2 is None or not isinstance(call2, Call) or z is None or call2 is call:
            x1.notify_transfer(481, "Call/Transaction Does Not Exist", final=True)
            return
        who = self.pbx.principal_of(x1)
        why = refusal(who, None)
        if why is None and self.pbx.principal_of(x2) != who:
            # RFC 3891 §6: only a party to the replaced dialog may replace it; anyone else who
            # learned its Call-ID would take over a stranger's call.
            why = f"{who.describe()} is not a party to dialog {replaces[0]}"
        if why is not None:
            log.warning("%s: attended transfer refused: %s", call.id, why)
            x1.notify_transfer(FORBIDDEN.code, FORBIDDEN.reason, final=True)
            return
        # Take Z out of the consultation call, which then ends with the transferor's leg.
        self.pbx.media.unbridge(z.media_leg)
        self.pbx.media.stop_play(z.media_leg)
        call2.give_up_party(z)
        x1.notify_transfer(200, "OK", final=True)
        x1.listener = None
        x1.hangup(NORMAL_CLEARING)
        call.replace_party(x1, z)
        self.pbx.media.stop_play(y.media_leg)
        call.bridge_parties()
        log.info("%s: attended transfer joined %s and %s", call.id, y.id, z.id)
        self.pbx.events.publish(CallTransferred(call.id, x1.id, z.callee, attended=True))


class BlindTransfer:
    """RFC 5589 §6 blind transfer run by the PBX: the transferee waits, hearing ringback."""

    def __init__(self, pbx: TransferContext, call: Call, transferor: Channel, transferee: Channel, target: str,
                 notify: bool) -> None:
        self.pbx = pbx
        self.call = call
        self.transferor = transferor
        self.transferee = transferee
        self.target = target
        self.notify = notify
        self.fork: Fork | None = None
        self.transferor_gone = False

    def start(self, who: Principal) -> None:
        pbx = self.pbx
        dest = pbx.dialplan.resolve(self.target, who)
        if isinstance(dest, Refused):
            log.warning("%s: transfer to %s refused: %s", self.call.id, self.target, dest.why)
            self._failed(dest.cause)
            return
        if isinstance(dest, ToTrunk):
            channels = [pbx.channel_for_trunk(dest, self.transferee.party())]
            timeout = 120.0
        elif isinstance(dest, ToQueue):
            # A caller blind-transferred into a queue would need the call to go back to waiting;
            # until that exists the transferor is told, and keeps the caller.
            self._failed(Cause(501, "Transfer to a queue is not supported"))
            return
        else:
            ext = dest.extension
            if ext.dnd:
                self._failed(BUSY)
                return
            channels = pbx.channels_for_extension(ext, self.transferee.party())
            timeout = float(ext.noanswer_seconds)
        pbx.media.unbridge(self.transferee.media_leg)
        pbx.media.play(self.transferee.media_leg, pbx.tone("ringback"), True)
        for chan in channels:
            chan.owner = self.call
        self.fork = Fork(channels, timeout, pbx.schedule, self._ringing, self._answered, self._failed)
        self.fork.start()

    def _ringing(self, chan: Channel) -> None:
        if self.notify and not self.transferor_gone:
            self.transferor.notify_transfer(180, "Ringing", final=False)

    def _answered(self, chan: Channel) -> None:
        call = self.call
        call.transfer_done()
        pbx = self.pbx
        pbx.media.stop_play(self.transferee.media_leg)
        if self.notify and not self.transferor_gone:
            self.transferor.notify_transfer(200, "OK", final=True)
        if not self.transferor.is_down:
            self.transferor.listener = None
            self.transferor.hangup(NORMAL_CLEARING)
        call.replace_party(self.transferor, chan)
        call.bridge_parties()
        log.info("%s: transferred %s to %s", call.id, self.transferee.id, chan.callee)
        self.pbx.events.publish(CallTransferred(call.id, self.transferor.id, self.target, attended=False))

    def _failed(self, cause: Cause) -> None:
        call = self.call
        call.transfer_done()
        self.fork = None
        pbx = self.pbx
        if self.notify and not self.transferor_gone:
            self.transferor.notify_transfer(cause.code, cause.reason, final=True)
        if not self.transferor.is_down:
            pbx.media.stop_play(self.transferee.media_leg)
            call.bridge_parties()
            return
        # Nobody to go back to: the transferee hears why, then is released.
        call.release_after_tone(self.transferee, cause, max(pbx.failure_tone_seconds, 0.5))

    def transferor_left(self) -> None:
        self.transferor_gone = True

    def abandon(self) -> None:
        if self.fork is not None:
            self.fork.cancel(CANCELLED)
            self.fork = None
