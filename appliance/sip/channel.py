"""A SIP call leg as a PBX channel: one sippy UA plus one anchored media leg.

SDP is terminated here (RFC 3264 offer/answer) so the far end always talks RTP to our
media engine, never to the other party: recording and supervision depend on it.
"""
from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any, Protocol

from sippy.CCEvents import (
    CCEventConnect,
    CCEventDisconnect,
    CCEventFail,
    CCEventInfo,
    CCEventRedirect,
    CCEventRing,
    CCEventTry,
    CCEventUpdate,
)
from sippy.MsgBody import MsgBody
from sippy.SipAddress import SipAddress
from sippy.SipCallId import SipCallId
from sippy.SipContact import SipContact
from sippy.SipContentType import SipContentType
from sippy.SipHeader import SipHeader
from sippy.SipURL import SipURL

from appliance.pbx.channel import (
    NORMAL_CLEARING,
    Answered,
    Cause,
    Channel,
    ChannelState,
    DtmfReceived,
    HoldChanged,
    HungUp,
    Party,
    Progress,
    Ringing,
    TransferRequested,
)
from appliance.pbx.ports import MediaPort
from appliance.sip import path as sip_path
from appliance.sip import sdp
from appliance.sip.dialog_peer import DialogPeer, InDialogGuard, PeerCheckedUA
from appliance.sip.dtmf_relay import parse_info_key

log = logging.getLogger("plateau.sip")


class ChannelContext(Protocol):
    """What a SIP channel uses of the engine: its port (implemented by `context.SipContext`).

    Declared here, by its user, so that the channel does not import the context that builds
    channels (docs/ARCHITECTURE.md, "Ports").
    """

    global_config: dict[str, Any]  # sippy's: our address (_sip_address, _sip_port), the tm
    media: MediaPort
    media_host: str
    codecs: tuple[str, ...]
    inband_dtmf: bool
    channels_by_leg: dict[str, Channel]  # media leg -> channel, for the engine's media events
    dialog_guard: InDialogGuard

    def server_header(self) -> str: ...

    def release_leg(self, leg_id: str) -> None: ...


@dataclass(frozen=True)
class Target:
    """Where an outbound leg goes: the next hop and the Request-URI to put in the INVITE."""

    host: str
    port: int
    transport: str = "udp"
    request_uri: str | None = None  # a registered Contact; None = sip:callee@host:port
    username: str | None = None  # digest credentials when the next hop challenges (trunks)
    secret: str | None = None
    route: str = ""  # a binding's Path (RFC 3327 §5.3): the INVITE's Route set; host:port is its first hop


def _sipfrag(status: int, reason: str) -> MsgBody:
    ctype = SipContentType("message/sipfrag;version=2.0")
    ctype.parse()
    return MsgBody(f"SIP/2.0 {status} {reason}\r\n", mtype=ctype)


def local_contact(ctx: ChannelContext, user: str | None, transport: str) -> SipContact:
    """Our Contact for a dialog: no display name, the transport the dialog runs on.

    sippy's default is ``Anonymous <sip:host:port>``; legal (RFC 3261 §20.10), but some UAs
    (SIPp's [next_url], older phones) copy the display name into their Request-URI.
    A TCP dialog says ``transport=tcp`` so in-dialog requests come back over TCP (§8.1.1.8).
    """
    url = SipURL(username=user or None, host=ctx.global_config["_sip_address"],
                 port=ctx.global_config["_sip_port"])
    if transport.lower() == "tcp":
        url.transport = "tcp"
    return SipContact(address=SipAddress(url=url, hadbrace=True))


def parse_refer_target(uri: str) -> tuple[str, tuple[str, str | None, str | None] | None]:
    """Split a Refer-To URI into the number to reach and an optional Replaces dialog (RFC 3891)."""
    base, _, headers = uri.partition("?")
    user = base
    if ":" in user:
        user = user.split(":", 1)[1]
    user = user.split("@", 1)[0].split(";", 1)[0]
    replaces = None
    for item in headers.split("&"):
        name, _, value = item.partition("=")
        if name.lower() == "replaces" and value:
            parts = urllib.parse.unquote(value).split(";")
            call_id = parts[0]
            to_tag = from_tag = None
            for p in parts[1:]:
                k, _, v = p.partition("=")
                if k.strip().lower() == "to-tag":
                    to_tag = v
                elif k.strip().lower() == "from-tag":
                    from_tag = v
            replaces = (call_id, to_tag, from_tag)
    return urllib.parse.unquote(user), replaces


class SipChannel(Channel):
    """One SIP dialog (UAS for calls we receive, UAC for calls we place)."""

    technology = "sip"

    def __init__(self, ctx: ChannelContext, direction: str, caller: Party, callee: str) -> None:
        super().__init__(direction, caller, callee)
        self.ctx = ctx
        self.ua: PeerCheckedUA | None = None
        self.rtp_port: int | None = None
        self.remote: sdp.AudioOffer | None = None
        self.codec: tuple[int, str] | None = None
        self.local_direction = "sendrecv"
        self.sdp_version = 1
        self.peer_address = ""
        self.target: Target | None = None
        self.final_status: int | None = None
        self._refer_pending = False

    # -- set-up ---------------------------------------------------------------------
    @classmethod
    def inbound(cls, ctx: ChannelContext, caller: Party, callee: str, source: str,
                transport: str = "udp") -> SipChannel:
        chan = cls(ctx, "inbound", caller, callee)
        chan.peer_address = source
        chan.ua = PeerCheckedUA(ctx.global_config, event_cb=chan._on_ua_event)
        chan.ua.peer, chan.ua.guard = DialogPeer.parse(source, transport), ctx.dialog_guard
        chan.ua.lContact = local_contact(ctx, callee, transport)
        chan.ua.on_refer = chan._on_refer
        chan.ua.local_ua = ctx.server_header()
        return chan

    def accept_offer(self, offer_text: str | None) -> None:
        """Create our media leg and take the caller's SDP offer; raises SdpError."""
        self.rtp_port = self.ctx.media.create_leg(self.media_leg)
        if offer_text is not None:
            offer = sdp.parse(offer_text)
            self.codec = sdp.choose_codec(offer, self.ctx.codecs)
            self._apply_remote(offer)

    @classmethod
    def outbound(cls, ctx: ChannelContext, caller: Party, callee: str, target: Target) -> SipChannel:
        chan = cls(ctx, "outbound", caller, callee)
        chan.target = target
        chan.peer_address = f"{target.host}:{target.port}"
        chan.ua = PeerCheckedUA(
            ctx.global_config,
            event_cb=chan._on_ua_event,
            username=target.username,
            password=target.secret,
            nh_address=(target.host, target.port),
            nh_transport=target.transport,
        )
        chan.ua.peer = DialogPeer.at(target.host, target.port, target.transport)
        chan.ua.guard = ctx.dialog_guard
        chan.ua.lContact = local_contact(ctx, caller.number, target.transport)
        chan.ua.on_refer = chan._on_refer
        chan.ua.local_ua = ctx.server_header()
        return chan

    def dial(self) -> None:
        """Send the INVITE with our offer."""
        if self.ua is None or self.target is None:
            raise RuntimeError("dial() on a channel that is not outbound")
        self.rtp_port = self.ctx.media.create_leg(self.media_leg)
        offer = MsgBody(self._local_sdp(sdp.offer_codecs(self.ctx.codecs), "sendrecv"))
        event = CCEventTry((SipCallId(), self.caller.number, self.callee, offer, None, self.caller.name or None))
        request_uri, route = self.target.request_uri, self.target.route
        if request_uri is not None or route:
            def set_up(ua: Any, uri: str | None = request_uri, path: str = route) -> None:
                if uri is not None:
                    ua.rTarget = SipURL(url=uri.strip("<>"))
                if path:
                    ua.routes = sip_path.sip_routes(path)  # the 200's Record-Route replaces it (§12.1.2)
            event.onUacSetupComplete = set_up  # type: ignore[method-assign]
        self.ua.recvEvent(event)

    # -- actions ----------------------------------------------------------------------
    def ring(self) -> None:
        # An answered channel (the originator of a click-to-call) hears our ringback tone instead.
        if self.ua is None or self.is_down or self.is_up:
            return
        if self.set_state(ChannelState.RINGING):
            self.ua.recvEvent(CCEventRing((180, "Ringing", None)))

    def progress(self) -> None:
        if self.ua is None or self.is_down or self.is_up or self.state == ChannelState.EARLY:
            return
        self.set_state(ChannelState.EARLY)
        self.ua.recvEvent(CCEventRing((183, "Session Progress", MsgBody(self._answer_sdp()))))

    def answer(self) -> None:
        if self.ua is None or self.is_down or self.is_up:
            return
        self.set_state(ChannelState.UP)
        self.ua.recvEvent(CCEventConnect((200, "OK", MsgBody(self._answer_sdp()))))

    def hangup(self, cause: Cause = NORMAL_CLEARING) -> None:
        if self.is_down:
            return
        was_up = self.is_up
        self.set_state(ChannelState.DOWN)
        if self.ua is not None:
            if self.direction == "inbound" and not was_up:
                code = cause.code if 300 <= cause.code < 700 else 480
                self.ua.recvEvent(CCEventFail((code, cause.reason)))
            else:
                # BYE when up; CANCEL (sippy decides) while an outbound INVITE is pending.
                self.ua.recvEvent(CCEventDisconnect())
        self._release_media()

    def notify_transfer(self, status: int, reason: str, final: bool) -> None:
        """RFC 3515 §2.4.5: NOTIFY with a message/sipfrag of the transfer's progress."""
        if self.ua is None or not self.ua.isConnected():
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        headers = [
            SipHeader(name="event", bodys="refer"),
            SipHeader(name="subscription-state", bodys=state),
        ]
        req = self.ua.genRequest("NOTIFY", _sipfrag(status, reason), extra_headers=headers)
        self.ua.newTransaction(req)

    def remote_description(self) -> str:
        return self.peer_address

    def dialog_key(self) -> str:
        return self.dialog_id()[0] or self.id

    def dialog_id(self) -> tuple[str, str | None, str | None]:
        """(Call-ID, local tag, remote tag) as sippy keeps them."""
        if self.ua is None:
            return ("", None, None)
        return self.ua.getCID()

    def info_extra(self) -> dict[str, object]:
        return {
            "codec": self.codec[1] if self.codec else None,
            "rtp_port": self.rtp_port,
            "remote_rtp": f"{self.remote.host}:{self.remote.port}" if self.remote else None,
            "call_id": self.dialog_id()[0],
        }

    # -- sippy events -------------------------------------------------------------------
    def _on_ua_event(self, event: Any, ua: Any) -> None:
        log.debug("%s: %s from sippy (channel %s)", self.id, type(event).__name__, self.state.value)
        try:
            self._dispatch(event)
        except sdp.SdpError as exc:
            log.warning("%s: unusable SDP: %s", self.id, exc)
            self.hangup(Cause(exc.status, "Not Acceptable Here"))
            self.post(HungUp(self, Cause(exc.status, str(exc)), remote=False))

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, CCEventTry):
            return  # inbound INVITE: the router has already read it
        if isinstance(event, CCEventRing):
            code, _reason, body = event.getData()
            if self.is_down or self.direction != "outbound":
                return
            if body is not None and self._take_answer(body):
                if self.set_state(ChannelState.EARLY):
                    self.post(Progress(self))
            elif code >= 180 and self.set_state(ChannelState.RINGING):
                self.post(Ringing(self))
            return
        if isinstance(event, CCEventConnect):
            code, _reason, body = event.getData()
            if body is not None:
                self._take_answer(body)
            if self.direction == "outbound" and not self.is_up and not self.is_down:
                self.set_state(ChannelState.UP)
                self.post(Answered(self))
            return
        if isinstance(event, CCEventUpdate):
            self._on_reinvite(event.getData())
            return
        if isinstance(event, CCEventInfo):
            self._on_info(event.getData())
            return
        if isinstance(event, (CCEventFail, CCEventRedirect)):
            data = event.getData()
            code, reason = (data[0], data[1]) if isinstance(data, tuple) and len(data) >= 2 else (500, "Failed")
            self.final_status = code
            self._remote_gone(Cause(code, reason))
            return
        if isinstance(event, CCEventDisconnect):
            self._remote_gone(NORMAL_CLEARING if self.is_up else Cause(487, "Request Terminated"))

    def _remote_gone(self, cause: Cause) -> None:
        if self.is_down:
            return
        self.set_state(ChannelState.DOWN)
        self._release_media()
        self.post(HungUp(self, cause, remote=True))

    def _take_answer(self, body: Any) -> bool:
        """Apply the far end's SDP answer; returns False when the body is not SDP."""
        try:
            answer = sdp.parse(str(body))
        except sdp.SdpError:
            return False
        if not answer.codecs:
            raise sdp.SdpError("answer has no codec we offered")
        self.codec = answer.codecs[0]
        self._apply_remote(answer)
        return True

    def _apply_remote(self, offer: sdp.AudioOffer) -> None:
        self.remote = offer
        self.ctx.media.configure_leg(**self._leg_config())
        held = offer.on_hold
        if held != self.held and self.is_up:
            self.held = held
            self.post(HoldChanged(self, held))
        self.held = held

    def _leg_config(self) -> dict[str, Any]:
        if self.codec is None or self.remote is None:
            raise RuntimeError(f"{self.id}: media configured before SDP negotiation")
        held = self.remote.on_hold
        silent = self.remote.port == 0 or self.remote.host == "0.0.0.0"
        remote = None if silent else (self.remote.host, self.remote.port)
        # What we may send/receive follows the far end's offer (RFC 3264 §6.1).
        direction = sdp.ANSWER_DIRECTION[self.remote.direction] if held else "sendrecv"
        return {
            "leg_id": self.media_leg,
            "remote": remote,
            "codec": self.codec[1],
            "payload_type": self.codec[0],
            "dtmf_payload_type": self.remote.telephone_event_pt,
            "direction": direction,
            "detect_inband_dtmf": self.ctx.inband_dtmf,
        }

    def _on_reinvite(self, body: Any) -> None:
        if self.ua is None:
            return
        try:
            offer = sdp.parse(str(body))
            if self.codec is None or self.codec[1] not in [c for _, c in offer.codecs]:
                self.codec = sdp.choose_codec(offer, self.ctx.codecs)
        except sdp.SdpError as exc:
            self.ua.recvEvent(CCEventFail((exc.status, "Not Acceptable Here")))
            return
        self._apply_remote(offer)
        self.sdp_version += 1
        self.ua.recvEvent(CCEventConnect((200, "OK", MsgBody(self._answer_sdp()))))

    def _on_info(self, body: Any) -> None:
        # application/dtmf-relay ("Signal=5\r\nDuration=160") or application/dtmf; sippy has
        # answered 200 already (UaStateConnected), and the key is relayed like an RFC 4733 one.
        if body is None:
            return
        key = parse_info_key(str(body), str(getattr(body, "mtype", None) or "application/dtmf-relay"))
        if key is not None:
            self.post(DtmfReceived(self, key.digit, "sip-info", key.duration_ms))

    def _on_refer(self, refer_to: str) -> None:
        target, replaces = parse_refer_target(refer_to)
        self.notify_transfer(100, "Trying", final=False)
        self.post(TransferRequested(self, target, replaces))

    # -- SDP ------------------------------------------------------------------------------
    def _answer_sdp(self) -> str:
        if self.codec is None:
            # Late offer (INVITE without SDP): RFC 3264 lets our 200 carry the offer.
            return self._local_sdp(sdp.offer_codecs(self.ctx.codecs), "sendrecv")
        direction = sdp.ANSWER_DIRECTION[self.remote.direction] if self.remote else "sendrecv"
        te = self.remote.telephone_event_pt if self.remote else sdp.TELEPHONE_EVENT_PT
        return self._local_sdp([self.codec], direction, te)

    def _local_sdp(self, codecs: list[tuple[int, str]], direction: str,
                   te: int | None = sdp.TELEPHONE_EVENT_PT) -> str:
        if self.rtp_port is None:
            raise RuntimeError("no media leg yet")
        return sdp.build(self.ctx.media_host, self.rtp_port, codecs, te, direction,
                         session_id=id(self) & 0x7FFFFFFF, version=self.sdp_version)

    def _release_media(self) -> None:
        self.ctx.channels_by_leg.pop(self.media_leg, None)
        if self.rtp_port is not None:
            self.rtp_port = None
            self.ctx.release_leg(self.media_leg)
