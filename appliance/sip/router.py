"""Out-of-dialog SIP requests: who gets REGISTER, OPTIONS and new INVITEs.

In-dialog requests never reach this router: sippy hands them to the dialog's UA.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sippy.SipRequest import SipRequest
from sippy.Time.MonoTime import MonoTime

from appliance.media.protocol import MediaError
from appliance.pbx.channel import Channel, Party
from appliance.pbx.dialplan import Dialplan
from appliance.sip import sdp
from appliance.sip.channel import ChannelContext, SipChannel
from appliance.sip.digest import DigestAuthenticator
from appliance.sip.front_door import FrontDoors
from appliance.sip.guard import ScannerGuard
from appliance.sip.headers import raw_header
from appliance.sip.malformed import GLOBAL_KEY, MalformedLog
from appliance.sip.registrar import Registrar
from appliance.store.models import Extension

if TYPE_CHECKING:
    from appliance.sip.mwi import MwiNotifier

log = logging.getLogger("plateau.sip")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, REFER, NOTIFY, INFO, SUBSCRIBE"
Reply = tuple[Any, Any, Any] | None


class CallIntake(Protocol):
    """What the router uses of the PBX (implemented by `pbx.switchboard.Switchboard`)."""

    @property
    def dialplan(self) -> Dialplan: ...  # who is a trunk, who is an extension

    def incoming(self, chan: Channel, dialed: str, caller_ext: Extension | None,
                 via_trunk: str | None = None) -> object: ...


class SipRouter:
    """The transaction manager's request callback."""

    def __init__(self, ctx: ChannelContext, pbx: CallIntake, registrar: Registrar,
                 authenticator: DigestAuthenticator, guard: ScannerGuard,
                 lookup_secret: Callable[[str], str | None], max_queue_delay: float = 0.5,
                 front_doors: FrontDoors | None = None) -> None:
        self.ctx = ctx
        self.pbx = pbx
        self.registrar = registrar
        self.auth = authenticator
        self.guard = guard
        self.lookup_secret = lookup_secret
        self.max_queue_delay = max_queue_delay
        # Behind the site's front door the guard and the trunk match see the sender's own address.
        self.front_doors = front_doors or FrontDoors()
        self.shed = 0  # INVITEs refused because the loop was behind
        self.mwi: MwiNotifier | None = None  # set by the engine to accept message-summary SUBSCRIBEs

    def __call__(self, req: SipRequest, t: Any) -> Reply:
        method = req.getMethod()
        if method == "SUBSCRIBE" and self.mwi is not None:
            return self._subscribe(req)  # refreshes carry a To tag: the notifier knows the dialog
        if req.getHFBody("to").getTag() is not None:
            # RFC 3261 §12.2.2: an in-dialog request for a dialog we do not know.
            return (req.genResponse(481, "Call/Transaction Does Not Exist"), None, None)
        src = self.front_doors.source(req)
        if src.relayed and self.guard.is_blocked(src.host):
            # The transports drop a blocked address's packets; through the front door they come
            # from Kamailio, so the block is enforced here, with an answer Kamailio passes on.
            return (req.genResponse(403, "Forbidden", server=self.ctx.server_header()), None, None)
        if method == "REGISTER":
            return (self.registrar.handle_register(req), None, None)
        if method == "OPTIONS":
            resp = req.genResponse(200, "OK", server=self.ctx.server_header())
            resp.appendHeader(raw_header("Allow", ALLOW))
            resp.appendHeader(raw_header("Accept", "application/sdp"))
            return (resp, None, None)
        if method == "INVITE":
            return self._invite(req, t)
        if method in ("SUBSCRIBE", "PUBLISH", "MESSAGE", "UPDATE", "PRACK"):
            resp = req.genResponse(405, "Method Not Allowed")
            resp.appendHeader(raw_header("Allow", ALLOW))
            return (resp, None, None)
        if method in ("BYE", "INFO", "NOTIFY", "REFER"):
            return (req.genResponse(481, "Call/Transaction Does Not Exist"), None, None)
        return (req.genResponse(501, "Not Implemented"), None, None)

    # -- INVITE -----------------------------------------------------------------------
    def _invite(self, req: SipRequest, t: Any) -> Reply:
        if req.countHFs("max-forwards") and req.getHFBody("max-forwards").getNum() <= 0:
            # RFC 3261 §16.3 item 3: a request we would pass on with Max-Forwards 0 gets 483;
            # a B2BUA places a new leg for every INVITE, so a routing loop ends here.
            return (req.genResponse(483, "Too Many Hops", server=self.ctx.server_header()), None, None)
        (host, port), transport = req.getSource(ver=2)
        real = self.front_doors.source(req)  # whom to count and which trunk; the dialog's peer is the hop
        rtime = getattr(req, "rtime", None)
        if rtime is not None and MonoTime().monot - rtime.monot > self.max_queue_delay:
            # The loop is behind: a call accepted now would time out half set up and hold its
            # media ports. Shedding new calls at once keeps the calls we have (RFC 3261 §21.5.4).
            self.shed += 1
            resp = req.genResponse(503, "Service Unavailable (overloaded)", server=self.ctx.server_header())
            resp.appendHeader(raw_header("Retry-After", "2"))
            return (resp, None, None)
        dialed = req.getRURI().username or ""
        frm = req.getHFBody("from")
        from_user = frm.getUrl().username or ""
        display = frm.getUri().name or ""
        trunk = self.pbx.dialplan.trunk_for_source(real.host, real.port)
        if trunk is not None:
            caller = Party(from_user, display)
            return self._start(req, t, caller, dialed, None, trunk.name, f"{host}:{port}", transport)
        ext_number = self._authenticate(req, from_user, real.host)
        if isinstance(ext_number, tuple):
            return ext_number
        ext = self.pbx.dialplan.extensions.get(ext_number)
        if ext is None or not ext.enabled:
            return (req.genResponse(403, "Forbidden"), None, None)
        caller = Party(ext.number, display or ext.name)
        return self._start(req, t, caller, dialed, ext, None, f"{host}:{port}", transport)

    def _subscribe(self, req: SipRequest) -> Reply:
        """SUBSCRIBE (RFC 6665) from a phone: message-summary (RFC 3842) for its own mailbox."""
        host = self.front_doors.source(req).host
        from_user = req.getHFBody("from").getUrl().username or ""
        user = self._authenticate(req, from_user, host, "SUBSCRIBE")
        if isinstance(user, tuple):
            return user
        if self.mwi is None:
            return (req.genResponse(489, "Bad Event"), None, None)
        return (self.mwi.handle_subscribe(req, user), None, None)

    def _authenticate(self, req: SipRequest, from_user: str, host: str,
                      method: str = "INVITE") -> str | tuple[Any, Any, Any]:
        """Digest-check a request from a phone (RFC 3261 §22.3, 407 challenge)."""
        if req.countHFs("proxy-authorization") == 0:
            return self._challenge(req, stale=False)
        value = str(req.getHFBody("proxy-authorization"))
        result = self.auth.verify(method, value, self.lookup_secret, str(req.getRURI()))
        if result.uri_mismatch:
            # RFC 2617 §3.2.2.5: credentials for another resource (a replay, or a broken client).
            self.guard.record_failure(host, f"{method} auth: {result.reason}")
            return (req.genResponse(400, "Bad Request - Digest uri does not match the Request-URI"),
                    None, None)
        if result.stale:
            return self._challenge(req, stale=True)
        if not result.ok:
            self.guard.record_failure(host, f"{method} auth: {result.reason}")
            edge_log = self.ctx.global_config.get(GLOBAL_KEY)
            what = f"{method}: authentication failed ({result.reason})"
            if isinstance(edge_log, MalformedLog):
                # A scanner fails thousands of times: one line per source per minute.
                edge_log.report(host, "auth_failed", what, logging.WARNING)
            else:
                log.warning("%s from %s: %s", method, host, what)
            return self._challenge(req, stale=False)
        if result.username != from_user:
            # An extension may only call as itself: caller ID spoofing between extensions.
            self.guard.record_failure(host, f"{method} From does not match credentials")
            return (req.genResponse(403, "Forbidden (From does not match credentials)"), None, None)
        self.guard.record_success(host)
        return result.username or ""

    def _challenge(self, req: SipRequest, stale: bool) -> tuple[Any, Any, Any]:
        resp = req.genResponse(407, "Proxy Authentication Required", server=self.ctx.server_header())
        for name, value in self.auth.challenge(stale=stale, proxy=True):
            resp.appendHeader(raw_header(name, value))
        return (resp, None, None)

    def _start(self, req: SipRequest, t: Any, caller: Party, dialed: str, ext: Extension | None,
               trunk: str | None, source: str, transport: str = "udp") -> Reply:
        if not dialed:
            return (req.genResponse(404, "Not Found (no user in Request-URI)"), None, None)
        chan = SipChannel.inbound(self.ctx, caller, dialed, source, str(transport))
        self.ctx.channels_by_leg[chan.media_leg] = chan
        body = req.getBody()
        try:
            chan.accept_offer(str(body) if body is not None else None)
        except sdp.SdpError as exc:
            self.ctx.release_leg(chan.media_leg)
            return (req.genResponse(exc.status, "Not Acceptable Here" if exc.status == 488 else "Bad Request",
                                    server=self.ctx.server_header()), None, None)
        except MediaError as exc:
            # No RTP port or media process trouble: say so at once (RFC 3261 §21.5.4) so the
            # caller's phone or carrier can retry elsewhere, instead of timing out.
            log.warning("INVITE from %s refused: media unavailable (%s)", source, exc)
            self.ctx.release_leg(chan.media_leg)
            resp = req.genResponse(503, "Service Unavailable", server=self.ctx.server_header())
            resp.appendHeader(raw_header("Retry-After", "5"))
            return (resp, None, None)
        rval = chan.ua.recvRequest(req, t) if chan.ua is not None else None
        self.pbx.incoming(chan, dialed, ext, via_trunk=trunk)
        return rval
