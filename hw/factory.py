"""A ChannelFactory that adds line-board channels to the one the engine already has (SIP).

Calls to an extension ring its FXS phones as well as its registered SIP devices; calls out
of a trunk whose name is an FXO port's `trunk_name` seize one of those lines.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance.pbx.channel import Channel, Party
from appliance.pbx.dialplan import ToTrunk
from appliance.store.models import Extension
from hw.fxo import FxoChannel
from hw.fxs import FxsChannel

if TYPE_CHECKING:
    from hw.manager import HardwareManager


class HardwareChannelFactory:
    """Wraps `inner` (anything with the ChannelFactory methods)."""

    def __init__(self, inner: Any, hw: HardwareManager) -> None:
        self.inner = inner
        self.hw = hw

    def channels_for_extension(self, ext: Extension, caller: Party) -> list[Channel]:
        channels: list[Channel] = list(self.inner.channels_for_extension(ext, caller)) if self.inner else []
        for port in self.hw.fxs_ports(ext.number):
            channels.append(FxsChannel(port, "outbound", caller, ext.number))
        return channels

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        ports = self.hw.fxo_ports(dest.trunk.name)
        if not ports:
            return self.inner.channel_for_trunk(dest, caller)
        # The first idle line of the group; all busy: the first, whose dial() reports congestion.
        port = next((p for p in ports if p.available), ports[0])
        return FxoChannel(port, "outbound", Party(dest.caller_id or caller.number, caller.name), dest.number)

    def reachable(self, number: str) -> bool:
        if self.inner is not None and self.inner.reachable(number):
            return True
        return any(p.in_service for p in self.hw.fxs_ports(number))
