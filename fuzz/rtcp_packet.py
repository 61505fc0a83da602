"""RTCP compound packets (RFC 3550 6.4, A.2): rtcp.parse_compound and the leg's RTCP path.

Contract: ``parse_compound`` raises only RtcpError; every report it returns has fields inside
their wire ranges; the engine's RTCP path never raises.
"""

from __future__ import annotations

from fuzz.harness import Target, instrumented, main

with instrumented():
    from appliance.media import rtcp
    from fuzz.media_rig import MediaRig

_rig = MediaRig()


def one_input(data: bytes) -> None:
    _rig.rtcp(data)
    for p in rtcp.parse_compound(data):
        for block in getattr(p, "reports", ()):
            if not (0 <= block.fraction_lost <= 255 and -0x800000 <= block.cumulative_lost <= 0x7FFFFF):
                raise AssertionError(f"report block out of range: {block!r}")


TARGET = Target("rtcp_packet", __doc__ or "", one_input, (rtcp.RtcpError,))

if __name__ == "__main__":
    main(TARGET)
