"""The box's own IP addresses: `--sip-ip auto` and the first-boot certificate's names.

`default_route_source` asks the kernel which source address it would use towards a public
address: connecting a UDP socket only runs the route lookup (ip-route(8) "get"), it sends no
packet. `local_addresses` lists every address from `ip -json address` (iproute2).
"""
from __future__ import annotations

import ipaddress
import json
import socket
import subprocess

# RFC 5737 / RFC 3849 documentation prefixes: off-link and never routed locally, so the lookup
# follows the default route; nothing is ever sent to them (UDP connect only picks a route).
_PROBE_V4 = "192.0.2.1"
_PROBE_V6 = "2001:db8::1"


class NoAddressError(RuntimeError):
    """The box has no usable (non-loopback) address yet."""


def default_route_source(family: socket.AddressFamily = socket.AF_INET) -> str | None:
    """Source address the kernel picks for the default route, or None when there is no route."""
    probe = _PROBE_V4 if family == socket.AF_INET else _PROBE_V6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 9))  # discard port; connect() on UDP sends nothing
            address = str(sock.getsockname()[0])
    except OSError:  # ENETUNREACH: no default route for this family
        return None
    if ipaddress.ip_address(address).is_unspecified:
        return None
    return address


def local_addresses() -> list[str]:
    """Every non-loopback, non-link-local address of the box; IPv4 first, then IPv6."""
    try:
        out = subprocess.run(["ip", "-json", "address", "show"], capture_output=True, text=True,
                             timeout=5, check=True).stdout
        interfaces = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for iface in interfaces:
        for info in iface.get("addr_info", []):
            try:
                addr = ipaddress.ip_address(info.get("local", ""))
            except ValueError:
                continue
            if addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr in found:
                continue
            found.append(addr)
    found.sort(key=lambda a: a.version)  # stable: interface order kept within a family
    return [str(a) for a in found]


def resolve_sip_ip(value: str) -> str:
    """`--sip-ip`: a literal address is returned as it is; ``auto`` finds the box's address.

    ``auto`` = the IPv4 source address of the default route, falling back to the first
    non-loopback address; NoAddressError when the box has none (no link, no DHCP lease yet).
    """
    if value != "auto":
        return value
    address = default_route_source(socket.AF_INET)
    if address is not None:
        return address
    candidates = local_addresses()
    if candidates:
        return candidates[0]
    raise NoAddressError("--sip-ip auto: no default route and no non-loopback address "
                         "(is the network cable in and DHCP answering?); give --sip-ip ADDRESS")
