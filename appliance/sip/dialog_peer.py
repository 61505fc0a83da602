"""Who may send requests inside a dialog: its peer, and nobody else.

sippy matches an in-dialog request to its dialog by Call-ID and tags only (RFC 3261 §12.2.2).
Those travel in clear text, so anyone who saw them could send a BYE, a re-INVITE or a REFER
"from" the carrier or the phone (issue 12, finding 3). A dialog here remembers where its
peer sends from, and refuses every other source with 403, counted and logged once a minute.

The peer is what the transport saw, never what the message says:

* a call we received: the INVITE's source (behind NAT, the NAT's public side);
* a call to a registered phone: the binding's source, where its REGISTER came from (RFC 3581);
* a call to a trunk: its configured host and port.

On a reliable transport the port is not compared: a UA may open a new connection for a later
request (RFC 3261 §18.1.1), whose source port is ephemeral; TCP sources cannot be spoofed off-path.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.sip.ua import PlateauUA

log = logging.getLogger("plateau.sip")

RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})
LOG_INTERVAL_S = 60.0
MAX_LOGGED_SOURCES = 4096


@dataclass(frozen=True)
class DialogPeer:
    """Where a dialog's peer sends from."""

    hosts: frozenset[str]  # addresses (a trunk named by DNS may have several)
    port: int
    transport: str = "udp"

    @classmethod
    def at(cls, host: str, port: int, transport: str = "udp") -> DialogPeer:
        """The peer at `host` (an address, or a trunk's DNS name, resolved once here)."""
        host = host.strip("[]")
        hosts = {host}
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                hosts.update(str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_UDP))
            except OSError as exc:  # the INVITE will fail the same way; nobody can be its peer
                log.warning("cannot resolve %s for its dialogs' peer check: %s", host, exc)
        return cls(frozenset(hosts), int(port), transport.lower())

    @classmethod
    def parse(cls, address: str, transport: str = "udp") -> DialogPeer:
        """A "host:port" source as the router writes it."""
        host, _, port = address.rpartition(":")
        return cls(frozenset({host.strip("[]")}), int(port) if port.isdigit() else 0, transport.lower())

    def sent(self, host: str, port: int, transport: str) -> bool:
        """True when a request from (host, port, transport) is the peer's."""
        transport = transport.lower()
        if transport != self.transport or host.strip("[]") not in self.hosts:
            return False
        return transport in RELIABLE or port == self.port

    def describe(self) -> str:
        return f"{'|'.join(sorted(self.hosts))}:{self.port}/{self.transport}"


class InDialogGuard:
    """Counts in-dialog requests refused for their source; one log line per source per minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.foreign_source = 0
        self._clock = clock
        self._logged: dict[str, float] = {}

    def refused(self, method: str, source: str, peer: DialogPeer, call_id: str) -> None:
        self.foreign_source += 1
        now = self._clock()
        last = self._logged.get(source)
        if last is not None and now - last < LOG_INTERVAL_S:
            return
        if len(self._logged) >= MAX_LOGGED_SOURCES:
            self._logged.clear()  # bounded: a spoofed-source flood cannot grow it
        self._logged[source] = now
        log.warning("in-dialog %s for %s from %s refused: the dialog's peer is %s",
                    method, call_id, source, peer.describe())

    def status(self) -> dict[str, int]:
        return {"foreign_source": self.foreign_source}


class PeerCheckedUA(PlateauUA):
    """A PlateauUA that answers 403 to in-dialog requests from anyone but its peer."""

    peer: DialogPeer | None = None
    guard: InDialogGuard | None = None

    def recvRequest(self, req: Any, sip_t: Any) -> Any:
        peer = self.peer
        if peer is not None:
            (host, port), transport = req.getSource(ver=2)
            if not peer.sent(str(host), int(port), str(transport)):
                if self.guard is not None:
                    self.guard.refused(req.getMethod(), f"{host}:{port}/{transport}", peer,
                                       str(req.getHFBody("call-id")))
                # Before sippy sees it: a stranger must not even move the dialog's CSeq on.
                return (req.genResponse(403, "Forbidden (not from the dialog's peer)",
                                        server=self.local_ua), None, None)
        return super().recvRequest(req, sip_t)
