"""SDP offer/answer for anchored media (RFC 3264)."""
from __future__ import annotations

import pytest

from appliance.sip import sdp

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 9 8 0 101 18\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendonly\r\nm=video 40002 RTP/AVP 96\r\na=recvonly\r\n"
)


def test_parse_takes_the_audio_stream_only() -> None:
    offer = sdp.parse(OFFER)
    assert (offer.host, offer.port) == ("192.0.2.5", 40000)
    assert offer.codecs == [(9, "G722"), (8, "PCMA"), (0, "PCMU")]
    assert offer.telephone_event_pt == 101 and offer.unknown_payloads == [18]
    assert offer.direction == "sendonly" and offer.on_hold


def test_the_offerers_preference_wins_among_what_we_allow() -> None:
    offer = sdp.parse(OFFER)
    assert sdp.choose_codec(offer) == (9, "G722")
    assert sdp.choose_codec(offer, ("PCMU",)) == (0, "PCMU")
    with pytest.raises(sdp.SdpError) as info:
        sdp.choose_codec(sdp.parse(OFFER.replace("9 8 0 101 18", "18 101")))
    assert info.value.status == 488


@pytest.mark.parametrize("text, status", [
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 1 RTP/AVP 96\r\n", 488),  # no audio
    ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", 400),  # no connection address
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n", 400),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n", 400),
    ("v=0\r\nc=IN\r\nm=audio 4000 RTP/AVP 0\r\n", 400),
])
def test_bad_sdp_gets_the_right_status(text: str, status: int) -> None:
    with pytest.raises(sdp.SdpError) as info:
        sdp.parse(text)
    assert info.value.status == status


def test_old_style_hold_and_port_zero() -> None:
    assert sdp.parse(OFFER.replace("c=IN IP4 192.0.2.5", "c=IN IP4 0.0.0.0").replace("a=sendonly", "")).on_hold
    assert sdp.parse(OFFER.replace("m=audio 40000", "m=audio 0")).direction == "inactive"


def test_build_round_trips_through_parse() -> None:
    text = sdp.build("198.51.100.1", 20000, [(0, "PCMU"), (9, "G722")], 101, "recvonly", session_id=7)
    back = sdp.parse(text)
    assert (back.host, back.port, back.direction) == ("198.51.100.1", 20000, "recvonly")
    assert back.codecs == [(0, "PCMU"), (9, "G722")] and back.telephone_event_pt == 101
    assert "a=rtpmap:9 G722/8000" in text  # RFC 3551 §4.5.2: G.722 clock is 8000 in SDP
    assert sdp.ANSWER_DIRECTION["sendonly"] == "recvonly"


def _offer(**swap: str) -> str:
    text = ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
            "m=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=ptime:20\r\n")
    for old, new in swap.values():
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize(("old", "new", "status"), [
    ("m=audio 4000", "m=audio 65536", 400),
    ("m=audio 4000", "m=audio -1", 400),
    ("RTP/AVP 0 101", "RTP/AVP 0 128", 400),
    ("RTP/AVP 0 101", "RTP/AVP 0 " + " ".join(["0"] * 70), 400),
    ("a=rtpmap:101", "a=rtpmap:300", 400),
    ("a=ptime:20", "a=ptime:0", 400),
    ("a=ptime:20", "a=ptime:99999999", 400),
    ("c=IN IP4 192.0.2.1", "c=IN IP4 evil.example", 488),
    ("c=IN IP4 192.0.2.1", "c=IN IP6 192.0.2.1", 400),
    ("c=IN IP4 192.0.2.1", "c=IN IP4 999.1.1.1", 488),
])
def test_numbers_and_addresses_out_of_range_are_refused(old, new, status):
    """Every number read from an SDP body is range-checked where it enters (issue 12, Build 3)."""
    with pytest.raises(sdp.SdpError) as err:
        sdp.parse(_offer(x=(old, new)))
    assert err.value.status == status


def test_in_range_values_and_ipv6_are_accepted():
    offer = sdp.parse(_offer(a=("c=IN IP4 192.0.2.1", "c=IN IP6 2001:db8::1"), b=("a=ptime:20", "a=ptime:30"),
                             c=("m=audio 4000", "m=audio 65535")))
    assert (offer.host, offer.port, offer.ptime) == ("2001:db8::1", 65535, 30)


def test_payload_type_outside_seven_bits_is_400():
    # Found by fuzz/sdp_offer: "m=audio 4000 RTP/AVP 8 962" with an rtpmap for 962 became a
    # telephone-event payload type the engine can never see (RFC 3550 5.1: PT is 7 bits).
    body = ("v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 8 {pt}\r\n"
            "a=rtpmap:{pt} telephone-event/8000\r\n")
    for pt in (128, 962, -1):
        with pytest.raises(sdp.SdpError) as err:
            sdp.parse(body.format(pt=pt))
        assert err.value.status == 400
    assert sdp.parse(body.format(pt=127)).telephone_event_pt == 127
