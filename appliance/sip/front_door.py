"""The real source of a request relayed by the site's front door (Kamailio, appliance/cluster/).

Behind the front door every request comes from Kamailio's address. The scanner guard and the
trunk match need the phone's or the carrier's own address, or one scanner would block the whole
front door and no trunk would be recognised. Kamailio writes it in ``X-Plateau-Source:
ip:port;transport=udp`` (removing any copy the sender put there); an engine believes that
header only from the addresses given to ``plateau run --front-door``, and ignores it from
anyone else, who could otherwise pose as any address.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["HEADER", "FrontDoors", "RequestSource", "parse_addresses"]

HEADER = "x-plateau-source"
_TRANSPORTS = frozenset({"udp", "tcp", "tls", "ws", "wss", "sctp"})


@dataclass(frozen=True)
class RequestSource:
    """Where a request really came from; ``relayed`` when a trusted front door said so."""

    host: str
    port: int
    transport: str
    relayed: bool = False


def parse_addresses(text: str) -> tuple[str, ...]:
    """``"IP[,IP]"`` as normalised addresses; ValueError names a bad one (for --front-door)."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_address(item.strip("[]"))))
        except ValueError:
            raise ValueError(f"front door {item!r} is not an IP address") from None
    return tuple(out)


def parse_header(value: str) -> RequestSource | None:
    """``ip:port;transport=udp`` as a source; None when it is not exactly that."""
    addr, _, params = value.strip().partition(";")
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    try:
        host = str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None
    transport = "udp"
    for param in params.split(";"):
        name, _, val = param.strip().partition("=")
        if name.lower() == "transport":
            transport = val.strip().lower()
    if transport not in _TRANSPORTS:
        return None
    return RequestSource(host, int(port), transport, relayed=True)


class FrontDoors:
    """The front doors an engine trusts, and the source of a request through them."""

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self.addresses = frozenset(str(ipaddress.ip_address(a.strip("[]"))) for a in addresses)

    def trusts(self, host: str) -> bool:
        try:
            return str(ipaddress.ip_address(host.strip("[]"))) in self.addresses
        except ValueError:
            return False

    def source(self, req: Any) -> RequestSource:
        """The request's real source: the header's when a front door relayed it, else the packet's."""
        (host, port), transport = req.getSource(ver=2)
        packet = RequestSource(str(host), int(port), str(transport).lower())
        if not self.addresses or not self.trusts(packet.host):
            return packet
        for hf in req.getHFs(HEADER):
            body = hf.body
            relayed = parse_header(str(body) if getattr(body, "parsed", False) else body.body)
            if relayed is not None:
                return relayed
        return packet  # the front door's own request (its keepalive OPTIONS)
