"""sippy's transaction manager with our transports plugged in.

``PlateauTransactionManager`` is a ``SipTransactionManager`` that

* uses ``OrderedUdpServer`` (one sender, one receiver thread: no reordering);
* adds a ``Tcp_server`` and picks it for targets whose transport is ``tcp``
  (sippy's ``newTransaction`` raises for anything but udp/ws/wss);
* does not retransmit over TCP: timer A (RFC 3261 §17.1.1.2) and timer G
  (§17.2.1) are only for unreliable transports.  2xx retransmission by the INVITE
  UAS core (§13.3.1.4) is kept on every transport, as the RFC asks;
* drops traffic from addresses the ``ScannerGuard`` has blocked, and answers
  junk that sippy would silently drop: 513 above 64 KiB, 400 for invalid UTF-8.

Responses to TCP requests go back on the request's connection automatically: the
``Tcp_server`` remembers which connection each request's top Via branch came on.
"""

from __future__ import annotations

import logging

from sippy.Exceptions.SipParseError import SipParseError
from sippy.Network_server import Network_server, Remote_address
from sippy.SipTransactionManager import SipTransaction, SipTransactionManager

from appliance.sip.errors import (
    MAX_MESSAGE_SIZE,
    problem_with,
    reply_to_unparseable,
    request_problem,
)
from appliance.sip.guard import ScannerGuard
from appliance.sip.tcp_transport import Tcp_server, Tcp_server_opts
from appliance.sip.udp_transport import model_udp_server

__all__ = ["RELIABLE_TRANSPORTS", "PlateauTransactionManager"]

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})
log = logging.getLogger("plateau.sip")
# What sippy's lazy header parsing raises on malformed input (UnboundLocalError: SipAddress on a
# display name with an opening quote only, found by fuzz/sip_request).
_PARSE_ERRORS = (SipParseError, ValueError, IndexError, TypeError, AttributeError, KeyError,
                 UnicodeError, UnboundLocalError)


class PlateauTransactionManager(SipTransactionManager):
    """``SipTransactionManager`` with ordered UDP, TCP, junk replies and the scanner guard."""

    model_udp_server = model_udp_server

    def __init__(
        self,
        global_config: dict,
        req_cb=None,
        tcp_laddress: tuple[str, int] | None = None,
        guard: ScannerGuard | None = None,
        max_message_size: int = MAX_MESSAGE_SIZE,
        tcp_opts: dict | None = None,
    ) -> None:
        self.guard = guard
        self.max_message_size = max_message_size
        self.tcp_server: Tcp_server | None = None
        self.unsendable = 0  # messages dropped: their destination port was not 1-65535
        super().__init__(global_config, req_cb)
        if tcp_laddress is not None:
            self.add_tcp_server(tcp_laddress, **(tcp_opts or {}))

    def add_tcp_server(self, laddress: tuple[str, int], **opts: object) -> Tcp_server:
        """Listen for SIP over TCP on ``laddress`` (port 0 picks one); opts go to Tcp_server_opts."""
        if self.tcp_server is not None:
            raise RuntimeError("a TCP server is already attached")
        topts = Tcp_server_opts(laddress, self.handleIncoming)
        topts.max_message_size = self.max_message_size
        if self.guard is not None:
            guard = self.guard
            topts.accept_filter = lambda ip: not guard.is_blocked(ip)
        for name, value in opts.items():
            if name not in Tcp_server_opts._EXTRA:
                raise TypeError(f"unknown Tcp_server_opts field {name!r}")
            setattr(topts, name, value)
        self.tcp_server = Tcp_server(self.global_config, topts)
        return self.tcp_server

    def server_for(self, address: tuple[str, int], transport: str) -> Network_server:
        """The server that sends to ``address`` over ``transport`` ('udp' or 'tcp')."""
        if transport == "tcp":
            if self.tcp_server is None:
                raise RuntimeError("no TCP server attached")
            return self.tcp_server
        if transport == "udp":
            return self.l4r.getServer(address)
        raise ValueError(f"unsupported transport {transport!r}")

    # -- receive path -------------------------------------------------------------

    def handleIncoming(self, data_in, ra: Remote_address, server, rtime) -> None:
        if self.guard is not None and self.guard.is_blocked(ra.address[0]):
            return  # a blocked scanner gets nothing, not even an error
        raw = data_in if isinstance(data_in, bytes) else str(data_in).encode("utf-8", "surrogateescape")
        problem = problem_with(raw, self.max_message_size) or request_problem(raw)
        if problem is not None:
            code, reason = problem
            if not reply_to_unparseable(raw, ra.address, server.send_to, code, reason):
                log.info("dropped unparseable message from %s:%s (%s)", *ra.address[:2], reason)
            return
        try:
            super().handleIncoming(data_in, ra, server, rtime)
        except _PARSE_ERRORS as exc:
            # sippy parses header bodies lazily, so a malformed From/To/Contact/... raises
            # only once the request is handled; without this the request is dropped
            # silently (RFC 3261 §8.2: answer 400 where a reply can be routed).
            log.warning("unparseable request from %s:%s: %r", *ra.address[:2], exc)
            reply_to_unparseable(raw, ra.address, server.send_to, 400, "Bad Request")

    # -- send path ----------------------------------------------------------------

    def transmitData(self, userv, data, address, cachesum=None, lossemul=0) -> None:
        # A response goes to the top Via's sent-by port when it has no rport (RFC 3261
        # §18.2.2); a Via port outside 1-65535 made sendto raise OverflowError on the sender
        # thread, which died (issue 12 finding 1; also found by fuzz/sip_request). Such a
        # destination is dropped here, for every transport, before anything is queued.
        try:
            port = int(address[1])
        except (TypeError, ValueError, IndexError):
            port = -1
        if not 0 < port <= 65535:
            self.unsendable += 1
            log.info("not sending to %r: no such port", address)
            return
        super().transmitData(userv, data, address, cachesum, lossemul)


    def newTransaction(self, msg, resp_cb=None, laddress=None, userv=None,
                       cb_ifver=1, compact=False, t=None) -> SipTransaction:
        if userv is None:
            target = msg.getTarget()
            transport = str(target[1]).lower() if target is not None else "udp"
            # Transport names are case-insensitive (RFC 3261 §19.1.1, §25.1): a remote
            # target "sip:host;transport=UDP" (SIPp, many phones) must not reach sippy's
            # case-sensitive check, which raises and loses the request (a BYE never sent).
            if transport == "tcp":
                userv = self.server_for(target[0], "tcp")
            elif transport == "udp" and laddress is None:
                userv = self.server_for(target[0], "udp")
        t = super().newTransaction(msg, resp_cb, laddress, userv, cb_ifver, compact, t)
        if t.userv.transport in RELIABLE_TRANSPORTS and t.teA is not None:
            # RFC 3261 §17.1.1.2 / §17.1.2.2: timers A and E are for unreliable transports.
            t.teA.cancel()
            t.teA = None
        return t

    def sendResponse(self, resp, t=None, retrans=False, ack_cb=None,
                     lossemul=0) -> None:
        if t is None:
            t = self.tserver[resp.getTId(wBRN=True)]
        super().sendResponse(resp, t, retrans, ack_cb, lossemul)
        userv = t.userv  # None once sippy cleaned a finished non-INVITE transaction up
        if (userv is not None and userv.transport in RELIABLE_TRANSPORTS
                and resp.getSCode()[0] >= 300 and t.teA is not None):
            # RFC 3261 §17.2.1: timer G (non-2xx final retransmission) is UDP-only.
            t.teA.cancel()
            t.teA = None

    def shutdown(self) -> None:
        if self.tcp_server is not None:
            self.tcp_server.shutdown()
            self.tcp_server = None
        super().shutdown()
