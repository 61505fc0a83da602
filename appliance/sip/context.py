"""What every SIP channel needs from the engine, and how the PBX gets outbound SIP legs.

`SipContext` is the engine's implementation of `channel.ChannelContext`, the port a
`SipChannel` uses; the router and the factory below hand it to every channel they build.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from appliance.pbx.channel import Channel, Party
from appliance.pbx.dialplan import ToTrunk
from appliance.pbx.ports import MediaPort
from appliance.sip.channel import SipChannel, Target
from appliance.sip.dialog_peer import InDialogGuard
from appliance.sip.registrar import Registrar
from appliance.sip.sdp import SUPPORTED_CODECS
from appliance.store.models import Extension

log = logging.getLogger("plateau.sip")
SERVER_HEADER = "Plateau/0.1"


@dataclass
class SipContext:
    global_config: dict[str, Any]
    media: MediaPort  # appliance.media.client.MediaClient (or an in-process engine in tests)
    media_host: str
    codecs: tuple[str, ...] = SUPPORTED_CODECS
    inband_dtmf: bool = True
    channels_by_leg: dict[str, Channel] = field(default_factory=dict)
    dialog_guard: InDialogGuard = field(default_factory=InDialogGuard)  # in-dialog source check

    def server_header(self) -> str:
        return SERVER_HEADER

    def release_leg(self, leg_id: str) -> None:
        self.channels_by_leg.pop(leg_id, None)
        try:
            self.media.destroy_leg(leg_id)
        except Exception as exc:  # noqa: BLE001 - the leg may not exist (failed set-up)
            log.debug("destroy_leg %s: %s", leg_id, exc)


class SipChannelFactory:
    """Builds outbound SIP legs: one per registered contact, or one towards a trunk."""

    def __init__(self, ctx: SipContext, registrar: Registrar) -> None:
        self.ctx = ctx
        self.registrar = registrar

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        channels: list[Channel] = []
        for binding in self.registrar.contacts(ext.number):
            # RFC 3581 / NAT: send to where the REGISTER came from, keep the Contact as R-URI;
            # with a Path (RFC 3327), to its first hop (the front door) with the path as Route.
            (host, port), transport = binding.target
            target = Target(host, int(port), transport, request_uri=binding.contact_uri, route=binding.path)
            chan = SipChannel.outbound(self.ctx, caller, ext.number, target)
            self.ctx.channels_by_leg[chan.media_leg] = chan
            channels.append(chan)
        return channels

    def reachable(self, number: str) -> bool:
        """True when the extension has a registered device to ring."""
        return bool(self.registrar.contacts(number))

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        trunk = dest.trunk
        presented = Party(dest.caller_id or caller.number, caller.name)
        target = Target(trunk.host, trunk.port, trunk.transport, None, trunk.username, trunk.secret)
        chan = SipChannel.outbound(self.ctx, presented, dest.number, target)
        self.ctx.channels_by_leg[chan.media_leg] = chan
        return chan
