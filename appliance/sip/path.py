"""RFC 3327 Path: the proxies a REGISTER came through, kept as the route set to reach that phone.

A registrar stores the Path header values with the binding (§5.3) and a request to that contact
carries them, in order, as its Route set: the first is the next hop, here the site's front door
(Kamailio), which removes itself and sends the request on to where the phone registered from.
A binding's path is one string, the header values joined by ", " as one Route header would
carry them; '' means the phone is reached directly.
"""
from __future__ import annotations

from sippy.SipRoute import SipRoute

__all__ = ["first_hop", "join", "route_set", "sip_routes"]

_PARSE_ERRORS = (ValueError, IndexError, TypeError, AttributeError, KeyError)


def route_set(path: str) -> list[str]:
    """The path's values in order, split at the commas between them (not those in <> or quotes)."""
    values, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(path):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0 and not quoted:
            values.append(path[start:i].strip())
            start = i + 1
    values.append(path[start:].strip())
    return [v for v in values if v]


def join(values: list[str]) -> str:
    """Header values (several Path headers, or one with commas) as one path string."""
    return ", ".join(v for value in values for v in route_set(value))


def sip_routes(path: str) -> list[SipRoute]:
    """The path as sippy Route headers, in order; ValueError when a value is not a SIP URI."""
    routes = []
    for value in route_set(path):
        route = SipRoute(value)
        try:
            route.parse()
            route.getUrl().getTAddr()
        except _PARSE_ERRORS:
            raise ValueError(f"Path value {value!r} is not a SIP URI") from None
        routes.append(route)
    return routes


def first_hop(path: str) -> tuple[tuple[str, int], str] | None:
    """((host, port), transport) of the path's first proxy; None for an empty path."""
    routes = sip_routes(path)
    if not routes:
        return None
    (host, port), transport = routes[0].getUrl().getTAddr()
    return (str(host), int(port)), str(transport).lower()
