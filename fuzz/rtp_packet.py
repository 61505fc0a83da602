"""RTP packets (RFC 3550 5.1): appliance.media.rtp.parse and the media engine's receive path.

Contract: ``rtp.parse`` raises only RtpError; a packet it accepts builds back to the same bytes
(when unpadded); the engine's receive path never raises, whatever arrives on a leg's port.
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main

with instrumented():
    from appliance.media import rtp
    from fuzz.media_rig import MediaRig

_rig = MediaRig()


def one_input(data: bytes) -> None:
    _rig.rtp(data)
    pkt = rtp.parse(data)
    if len(pkt.csrcs) > 15 or len(pkt.payload) > len(data) - rtp.HEADER_LEN:
        raise AssertionError(f"inconsistent packet {pkt!r} from {len(data)} octets")
    if not data[0] & 0x20 and rtp.build_packet(pkt) != data:
        raise AssertionError("an unpadded packet does not build back to its own bytes")


TARGET = Target("rtp_packet", __doc__ or "", one_input, (rtp.RtpError,))

if __name__ == "__main__":
    main(TARGET)
