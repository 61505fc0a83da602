"""A ChannelFactory that adds line-board channels to the one the engine already has (SIP).

Calls to an extension ring its FXS phones as well as its registered SIP devices; calls out
of a trunk whose name is an FXO port's `trunk_name` seize one of those lines.
"""
from __future__ import annotations

from typing import Protocol

from appliance.pbx.channel import Channel, Party
from appliance.pbx.dialplan import ToTrunk
from appliance.store.models import Extension
from hw.fxo import FxoChannel, FxoPort
from hw.fxs import FxsChannel, FxsPort
from hw.line import OutboundLegs


class AnalogPorts(Protocol):
    """The analog lines a factory dials out on (implemented by hw.manager.HardwareManager)."""

    def fxs_ports(self, extension: str) -> list[FxsPort]: ...

    def fxo_ports(self, trunk_name: str) -> list[FxoPort]: ...


class HardwareChannelFactory:
    """Wraps `inner`, the PBX's factory (None: no other technology)."""

    def __init__(self, inner: OutboundLegs | None, hw: AnalogPorts) -> None:
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
            if self.inner is None:
                raise LookupError(f"no line and no other technology for trunk {dest.trunk.name}")
            return self.inner.channel_for_trunk(dest, caller)
        # The first idle line of the group; all busy: the first, whose dial() reports congestion.
        port = next((p for p in ports if p.available), ports[0])
        return FxoChannel(port, "outbound", Party(dest.caller_id or caller.number, caller.name), dest.number)

    def reachable(self, number: str) -> bool:
        if self.inner is not None and self.inner.reachable(number):
            return True
        return any(p.in_service for p in self.hw.fxs_ports(number))
