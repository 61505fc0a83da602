"""sippy's transaction manager with our transports plugged in.

``PlateauTransactionManager`` is a ``SipTransactionManager`` that

* uses ``OrderedUdpServer`` (one sender, one receiver thread: no reordering);
* adds a ``Tcp_server`` and picks it for targets whose transport is ``tcp``
  (sippy's ``newTransaction`` raises for anything but udp/ws/wss);
* does not retransmit over TCP: timer A (RFC 3261 §17.1.1.2) and timer G
  (§17.2.1) are only for unreliable transports.  2xx retransmission by the INVITE
  UAS core (§13.3.1.4) is kept on every transport, as the RFC asks;
* drops traffic from addresses the ``ScannerGuard`` has blocked, and answers
  junk that sippy would silently drop: 513 above 64 KiB, 400 for invalid UTF-8;
* parses and range-checks every new message (``wellformed``) before sippy sees it, so
  a malformed request gets a 400 naming the header instead of a sippy traceback, and a
  malformed response is dropped; each is counted in ``counters`` and logged at most
  once per source per minute (``MalformedLog``);
* ignores RFC 5626 §4.4.1 CRLF keep-alives on UDP silently (counted).

Responses to TCP requests go back on the request's connection automatically: the
``Tcp_server`` remembers which connection each request's top Via branch came on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from hashlib import md5

import sippy.SipTransactionManager as _stm
from sippy.Network_server import Network_server, Remote_address
from sippy.SipRequest import SipRequest
from sippy.SipResponse import SipResponse
from sippy.SipTransactionManager import SipTransaction, SipTransactionManager

from appliance.sip.errors import (
    MAX_MESSAGE_SIZE,
    problem_with,
    reply_to_unparseable,
    request_problem,
)
from appliance.sip.guard import ScannerGuard
from appliance.sip.malformed import GLOBAL_KEY, EdgeCounters, MalformedLog
from appliance.sip.overload import GATE_KEY, OverloadGate
from appliance.sip.tcp_transport import Tcp_server, Tcp_server_opts
from appliance.sip.udp_transport import model_udp_server
from appliance.sip.wellformed import PARSE_ERRORS, check_request, check_response

__all__ = ["RELIABLE_TRANSPORTS", "PlateauTransactionManager"]

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})
log = logging.getLogger("plateau.sip")
_PARSE_ERRORS = PARSE_ERRORS  # what sippy's lazy header parsing raises on malformed input


class _Handover:
    """Stands in for ``SipRequest``/``SipResponse`` inside sippy's transaction manager module.

    ``SipTransactionManager.handleIncoming`` parses the text it is given itself; we have just
    parsed and checked the same text, so the message is handed over instead of being parsed
    a second time (a full parse costs about as much again as the rest of a message's
    handling).  Anything else sippy builds there goes to the real class.
    """

    def __init__(self) -> None:
        self.text: str | None = None
        self.msg: object | None = None

    def give(self, text: str, msg: object | None) -> None:
        self.text, self.msg = text, msg

    def factory(self, real: type) -> Callable[..., object]:
        def make(*args: object, **kwargs: object) -> object:
            msg = self.msg
            if (msg is not None and len(args) == 1 and not kwargs and isinstance(msg, real)
                    and args[0] == self.text):
                self.text = self.msg = None
                return msg
            return real(*args, **kwargs)
        return make


_HANDOVER = _Handover()
_stm.SipRequest = _HANDOVER.factory(SipRequest)  # type: ignore[attr-defined]
_stm.SipResponse = _HANDOVER.factory(SipResponse)  # type: ignore[attr-defined]


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
        # What each received message is handled inside (the engine: MediaClient.batch).
        self.step_scope: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        self.max_message_size = max_message_size
        self.tcp_server: Tcp_server | None = None
        self.counters = EdgeCounters()
        self.malformed = MalformedLog(self.counters)
        self.gate = OverloadGate(self.counters)
        global_config[GLOBAL_KEY] = self.malformed
        global_config[GATE_KEY] = self.gate
        super().__init__(global_config, req_cb)
        if tcp_laddress is not None:
            self.add_tcp_server(tcp_laddress, **(tcp_opts or {}))

    def add_tcp_server(self, laddress: tuple[str, int], **opts: object) -> Tcp_server:
        """Listen for SIP over TCP on ``laddress`` (port 0 picks one); opts go to Tcp_server_opts."""
        if self.tcp_server is not None:
            raise RuntimeError("a TCP server is already attached")
        topts = Tcp_server_opts(laddress, self.handleIncoming)
        topts.max_message_size = self.max_message_size
        topts.malformed = self.malformed
        topts.gate = self.gate
        if self.guard is not None:
            guard = self.guard
            topts.accept_filter = lambda ip: not guard.is_blocked(ip)
        topts.update(**opts)
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

    def edge_status(self) -> dict[str, object]:
        """For /v1/status: bad-input counters and the overload gate's state."""
        return {"counters": self.counters.snapshot(), "overload": self.gate.status()}

    # -- receive path -------------------------------------------------------------

    def handleIncoming(self, data_in, ra: Remote_address, server, rtime) -> None:
        # One received message is one step of call control: what it sets in motion below
        # (e.g. the media commands of a call's set-up) may be gathered and sent at its end.
        with self.step_scope():
            self._handle_incoming(data_in, ra, server, rtime)

    def _handle_incoming(self, data_in, ra: Remote_address, server, rtime) -> None:
        self.gate.handled(rtime.monot)
        if self.guard is not None and self.guard.is_blocked(ra.address[0]):
            return  # a blocked scanner gets nothing, not even an error
        raw = data_in if isinstance(data_in, bytes) else str(data_in).encode("utf-8", "surrogateescape")
        if not raw.strip(b"\r\n"):
            # RFC 5626 §4.4.1 keep-alive (CRLF on UDP; TCP pings never get here): ignore.
            self.counters.add("keepalives")
            return
        checksum = md5(raw).digest()
        if checksum in self.l1rcache or checksum in self.l2rcache:
            # A retransmission sippy answers from its cache: it was checked the first time.
            super().handleIncoming(data_in, ra, server, rtime)
            return
        problem = problem_with(raw, self.max_message_size) or request_problem(raw)
        if problem is None:
            text = raw.decode()
            if raw.startswith(b"SIP/2.0 "):
                resp, why = check_response(text)
                if why is not None:
                    # RFC 3261 §18.1.2: a malformed response is discarded, never answered.
                    self.malformed.report(ra.address, "responses_dropped", f"response dropped: {why}")
                    return
                _HANDOVER.give(text, resp)
            else:
                req, problem = check_request(text)
                _HANDOVER.give(text, req)
        if problem is not None:
            self._refuse(raw, ra, server, *problem)
            return
        try:
            super().handleIncoming(data_in, ra, server, rtime)
        except _PARSE_ERRORS as exc:
            # sippy parses header bodies lazily, so a header no check above reads (e.g. a
            # malformed Refer-To) raises only once the request is handled; without this the
            # request is dropped silently (RFC 3261 §8.2: answer 400 where a reply can be routed).
            self._refuse(raw, ra, server, 400, f"Bad Request ({type(exc).__name__})")

    def _refuse(self, raw: bytes, ra: Remote_address, server, code: int, reason: str) -> None:
        """Answer ``code reason`` statelessly where a Via allows it, else drop; count and log."""
        if reply_to_unparseable(raw, ra.address, server.send_to, code, reason):
            self.malformed.report(ra.address, f"answered_{code}", f"answered {code} {reason}")
        else:
            self.malformed.report(ra.address, "dropped", f"dropped unparseable message ({reason})")

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
            # Counted as "unsendable"; logged at most once a minute per address (finding 8).
            self.malformed.report(address, "unsendable", f"not sending to {address!r}: no such port")
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
