"""SDP offer/answer (RFC 3264, RFC 4566): appliance.sip.sdp as the INVITE path uses it.

Contract: ``sdp.parse`` and ``choose_codec`` raise only SdpError (its status is 400 or 488); an
offer they accept has a port 0-65535 and payload types 0-127 (RFC 3550 5.1: PT is 7 bits, and
the media engine is configured with them); the answer we build parses back to our choice.
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main, text

with instrumented():
    from appliance.sip import sdp


def one_input(data: bytes) -> None:
    try:
        offer = sdp.parse(text(data))
        pt, name = sdp.choose_codec(offer)
    except sdp.SdpError as exc:
        if exc.status not in (400, 488):
            raise AssertionError(f"SdpError with status {exc.status}") from exc
        raise
    if not 0 <= offer.port <= 65535:
        raise AssertionError(f"port {offer.port}")
    pts = [p for p, _ in offer.codecs] + offer.unknown_payloads
    if offer.telephone_event_pt is not None:
        pts.append(offer.telephone_event_pt)
    if any(not 0 <= p <= 127 for p in pts):
        raise AssertionError(f"payload type out of range in {pts}")
    answer = sdp.parse(sdp.build("192.0.2.1", 40000, [(pt, name)], offer.telephone_event_pt,
                                 session_id=1))
    if answer.codecs[:1] != [(pt, name)] or answer.telephone_event_pt != offer.telephone_event_pt:
        raise AssertionError(f"answer {answer!r} is not what we chose ({pt} {name})")


TARGET = Target("sdp_offer", __doc__ or "", one_input, (sdp.SdpError,))

if __name__ == "__main__":
    main(TARGET)
