"""A SipChannel drives only its port, `ChannelContext`: here a fake context and a fake MediaPort.

What is real: the channel, sippy's UA it owns, the SDP offer/answer (RFC 3264) and its events.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from appliance.pbx.channel import Channel, ChannelEvent, HungUp, Party
from appliance.sip import sdp
from appliance.sip.channel import SipChannel
from appliance.sip.dialog_peer import InDialogGuard
from appliance.sip.headers import raw_header
from appliance.sip.tcp_transport import Tcp_server_opts
from sippy.CCEvents import CCEventDisconnect

OFFER = ("v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n"
         "m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n")


class FakeMedia:
    """The MediaPort methods a SIP channel calls, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def create_leg(self, leg_id: str) -> int:
        self.calls.append(("create_leg", leg_id))
        return 40000

    def configure_leg(self, **config: Any) -> None:
        self.calls.append(("configure_leg", config))


@dataclass
class FakeContext:
    """A `ChannelContext`: what the engine's SipContext gives every channel."""

    media: FakeMedia
    global_config: dict[str, Any] = field(default_factory=lambda: {"_sip_address": "192.0.2.1", "_sip_port": 5060})
    media_host: str = "192.0.2.1"
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    inband_dtmf: bool = True
    channels_by_leg: dict[str, Channel] = field(default_factory=dict)
    dialog_guard: InDialogGuard = field(default_factory=InDialogGuard)
    released: list[str] = field(default_factory=list)

    def server_header(self) -> str:
        return "Plateau-test"

    def release_leg(self, leg_id: str) -> None:
        self.released.append(leg_id)


def _inbound(ctx: FakeContext) -> SipChannel:
    chan = SipChannel.inbound(ctx, Party("1002", "Bob"), "1001", "198.51.100.7:5062")  # type: ignore[arg-type]
    ctx.channels_by_leg[chan.media_leg] = chan
    return chan


def test_an_offer_creates_and_configures_the_media_leg_through_the_port() -> None:
    ctx = FakeContext(FakeMedia())
    chan = _inbound(ctx)
    assert chan.ua is not None and chan.ua.local_ua == "Plateau-test"
    chan.accept_offer(OFFER)
    assert ctx.media.calls == [
        ("create_leg", chan.media_leg),
        ("configure_leg", {"leg_id": chan.media_leg, "remote": ("198.51.100.7", 30000), "codec": "PCMU",
                           "payload_type": 0, "dtmf_payload_type": 101, "direction": "sendrecv",
                           "detect_inband_dtmf": True}),
    ]
    assert chan.codec == (0, "PCMU") and chan.rtp_port == 40000


def test_an_offer_without_a_common_codec_is_refused_488() -> None:
    ctx = FakeContext(FakeMedia(), codecs=("PCMA",))
    chan = _inbound(ctx)
    with pytest.raises(sdp.SdpError) as err:
        chan.accept_offer(OFFER)
    assert err.value.status == 488
    assert ctx.media.calls == [("create_leg", chan.media_leg)]  # the router releases the leg


def test_a_remote_hang_up_releases_the_leg_through_the_context_and_posts_hungup() -> None:
    ctx = FakeContext(FakeMedia())
    chan = _inbound(ctx)
    events: list[ChannelEvent] = []
    chan.listener = events.append
    chan.accept_offer(OFFER)
    assert chan.ua is not None
    chan.ua.event_cb(CCEventDisconnect(), chan.ua)  # how sippy tells the channel (a CANCEL here)
    assert ctx.released == [chan.media_leg] and chan.media_leg not in ctx.channels_by_leg
    assert len(events) == 1 and isinstance(events[0], HungUp) and events[0].remote
    assert events[0].cause.code == 487  # never answered: the INVITE was cancelled


def test_raw_header_keeps_the_canonical_name_sippy_would_capitalize() -> None:
    header = raw_header("Proxy-Authenticate", 'Digest realm="pbx", nonce="abc"')
    assert str(header) == 'Proxy-Authenticate: Digest realm="pbx", nonce="abc"'
    assert str(header.getCopy()) == str(header)


def test_tcp_options_are_set_by_name_and_a_misspelt_one_is_refused() -> None:
    opts = Tcp_server_opts(("127.0.0.1", 0), lambda *a: None)
    opts.update(idle_timeout=30.0, max_connections=8)
    assert (opts.idle_timeout, opts.max_connections) == (30.0, 8)
    with pytest.raises(TypeError, match="idle_timout"):
        opts.update(idle_timout=1.0)
    assert opts.idle_timeout == 30.0
    copy = Tcp_server_opts(o=opts)
    assert (copy.idle_timeout, copy.max_connections) == (30.0, 8)
