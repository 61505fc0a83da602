"""The SIP receive path from bytes (PlateauTransactionManager.handleIncoming) through router and
registrar, in process (fuzz/sip_rig.py: the engine's SIP objects over a fake UDP server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fuzz.sip_rig import PHONE, TRUNK, SipRig


@pytest.fixture
def rig() -> Iterator[SipRig]:
    r = SipRig()
    yield r
    r.close()


def _request(method: str, *headers: str, body: str = "") -> bytes:
    lines = [f"{method} sip:442079460000@127.0.0.1:5060 SIP/2.0",
             f"Via: SIP/2.0/UDP {TRUNK[0]}:{TRUNK[1]};branch=z9hG4bK-{method}1",
             "To: <sip:442079460000@127.0.0.1>", "Call-ID: fz-1@192.0.2.1", f"CSeq: 1 {method}",
             "Max-Forwards: 70", *headers]
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n" + body).encode()


def _codes(rig: SipRig) -> list[bytes]:
    return [data.split(b"\r\n", 1)[0] for data, _addr in rig.server.sent]


def test_trunk_invite_rings_the_registered_phone(rig: SipRig) -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    rig.receive(_request("INVITE", "From: <sip:07700900123@192.0.2.1>;tag=c1",
                         "Contact: <sip:07700900123@192.0.2.1>", "Content-Type: application/sdp", body=sdp), TRUNK)
    assert b"SIP/2.0 100 Trying" in _codes(rig)
    assert [a for d, a in rig.server.sent if d.startswith(b"INVITE sip:1001@")] == [PHONE]


def test_from_with_unterminated_quote_gets_400(rig: SipRig) -> None:
    # Found by fuzz/sip_request: sippy's SipAddress raises UnboundLocalError for a display name
    # with an opening quote only. With a second, valid From (which sippy's transaction ids use),
    # the router parsed the first one and the error escaped handleIncoming: no answer.
    rig.receive(_request("INVITE", 'From: "Carrier<sip:07700900123@192.0.2.1>;tag=c1',
                         "From: <sip:07700900123@192.0.2.1>;tag=c1"), TRUNK)
    assert _codes(rig) == [b"SIP/2.0 400 Bad Request - Malformed (From)"]


def test_response_to_a_via_port_out_of_range_is_dropped_not_raised(rig: SipRig) -> None:
    # Issue 12 finding 1, found again by fuzz/sip_request within 30,000 inputs: no rport, so the
    # reply goes to the Via port (RFC 3261 §18.2.2); 99999 made sendto raise on the sender thread.
    # The well-formedness check answers such a request with a 400 to where it came from...
    req = _request("OPTIONS", "From: <sip:07700900123@192.0.2.1>;tag=c1").replace(
        b"192.0.2.1:5060;branch", b"192.0.2.1:99999;branch")
    rig.receive(req, TRUNK)
    assert [(d.split(b"\r\n", 1)[0], a) for d, a in rig.server.sent] == [
        (b"SIP/2.0 400 Bad Request - Sent-by port out of range (Via)", TRUNK)]
    # ...and whatever else would send to such a port is dropped and counted, on every transport.
    rig.tm.transmitData(rig.server, b"SIP/2.0 200 OK\r\n\r\n", ("192.0.2.1", 99999))
    assert len(rig.server.sent) == 1 and rig.tm.counters["unsendable"] == 1
