"""RTP header and RTCP SR/RR, including malformed input and RFC 3550 A.8 jitter."""

import struct

import pytest

from appliance.media import rtcp, rtp


def test_rtp_round_trip_and_golden_header():
    data = rtp.build(0, 0x1234, 0xDEADBEEF, 0x01020304, b"\xff" * 160, marker=True)
    assert data[:12] == bytes.fromhex("80801234deadbeef01020304")
    p = rtp.parse(data)
    assert (p.payload_type, p.sequence, p.timestamp, p.ssrc, p.marker) == (0, 0x1234, 0xDEADBEEF,
                                                                           0x01020304, True)
    assert p.payload == b"\xff" * 160


def test_rtp_csrc_extension_padding():
    pkt = rtp.RtpPacket(8, 1, 2, 3, b"abc", csrcs=(7, 9), extension=(0xBEDE, b"\x01\x02\x03\x04"))
    data = bytearray(rtp.build_packet(pkt)) + b"\x00\x00\x03"
    data[0] |= 0x20  # padding of 3 octets
    p = rtp.parse(bytes(data))
    assert p.csrcs == (7, 9) and p.extension == (0xBEDE, b"\x01\x02\x03\x04") and p.payload == b"abc"


@pytest.mark.parametrize("data", [
    b"", b"\x80\x00", bytes(11),
    bytes([0x40]) + bytes(11),  # version 1
    bytes([0x8F]) + bytes(11),  # 15 CSRCs announced, none present
    bytes([0x90]) + bytes(11) + b"\x00\x00\x00\x05",  # extension longer than packet
    bytes([0xA0]) + bytes(11) + b"\x00",  # padding count 0
    bytes([0xA0]) + bytes(11) + b"\x40",  # padding longer than packet
])
def test_rtp_malformed_rejected(data):
    with pytest.raises(rtp.RtpError):
        rtp.parse(data)


def test_sr_rr_sdes_round_trip():
    block = rtcp.ReportBlock(0xAABBCCDD, 64, -3, 70000, 123, 0x11223344, 65536)
    sr = rtcp.SenderReport(1, rtcp.ntp_timestamp(1_700_000_000.5), 160, 10, 1600, (block,))
    data = rtcp.build_compound(sr, "leg@plateau")
    assert struct.unpack_from("!BBH", data) == (0x81, 200, 12)  # 52 octets = 13 words
    parsed = rtcp.parse_compound(data)
    assert parsed == [sr, rtcp.SourceDescription(1, "leg@plateau")]
    rr = rtcp.ReceiverReport(5, (block,))
    assert rtcp.parse_compound(rtcp.build_rr(rr)) == [rr]
    assert sr.ntp_timestamp >> 32 == 1_700_000_000 + rtcp.NTP_EPOCH_OFFSET


@pytest.mark.parametrize("data", [b"\x81\xc8", b"\x81\xc8\x00\x20" + bytes(8),
                                  b"\x41\xc9\x00\x01" + bytes(4), b"\x82\xc9\x00\x01" + bytes(4)])
def test_rtcp_malformed_rejected(data):
    with pytest.raises(rtcp.RtcpError):
        rtcp.parse_compound(data)


def test_jitter_matches_rfc3550_a8_reference():
    stats = rtcp.ReceptionStats(clock_rate=8000)
    arrivals = [0.0, 0.021, 0.039, 0.065, 0.080, 0.101, 0.118, 0.145]
    ref_j, prev = 0.0, None
    for i, a in enumerate(arrivals):
        stats.update(i, 160 * i, a)
        transit = a * 8000 - 160 * i
        if prev is not None:
            ref_j += (abs(transit - prev) - ref_j) / 16
        prev = transit
    assert stats.jitter == pytest.approx(ref_j)
    assert 0 < stats.jitter < 50


def test_loss_and_fraction_lost():
    stats = rtcp.ReceptionStats()
    for seq in [10, 11, 13, 14, 15, 17, 18, 19, 20, 21]:  # 12 and 16 lost
        stats.update(seq, 0, 0.0)
    block = stats.report_block(99, 1.0)
    assert block.cumulative_lost == 2 and block.highest_seq == 21
    assert block.fraction_lost == (2 << 8) // 12
    stats.update(22, 0, 0.0)
    assert stats.report_block(99, 2.0).fraction_lost == 0


def test_dlsr_from_last_sr():
    stats = rtcp.ReceptionStats()
    stats.update(1, 0, 0.0)
    sr = rtcp.SenderReport(7, 0x0000123456789ABC, 0, 1, 1)
    stats.sender_report_received(sr, now=10.0)
    b = stats.report_block(7, now=10.5)
    assert b.lsr == 0x12345678  # middle 32 bits of the 64-bit NTP timestamp
    assert b.dlsr == 32768


# -- issue 12 Build 3: every field read from the network is range-checked where it enters --------

def test_rtp_padding_may_not_reach_into_csrcs_or_extension():
    # 12-octet header, one CSRC, 4 octets of payload; a padding count of 8 would eat the CSRC.
    pkt = bytearray(struct.pack("!BBHII", 0xA1, 0, 1, 160, 7) + struct.pack("!I", 9) + b"\xff\xff\xff\x08")
    with pytest.raises(rtp.RtpError, match="padding"):
        rtp.parse(bytes(pkt))
    pkt[-1] = 4  # all of the payload is padding: allowed
    assert rtp.parse(bytes(pkt)).payload == b""


@pytest.mark.parametrize("pt", range(72, 77))
def test_rtcp_on_the_rtp_port_is_not_rtp(pt):
    # RFC 5761 4: PT 72-76 with the marker are RTCP 200-204.
    with pytest.raises(rtp.RtpError, match="collides with RTCP"):
        rtp.parse(struct.pack("!BBHII", 0x81, 0x80 | pt, 1, 2, 3) + b"\0" * 8)


def test_rtcp_validity_checks_of_rfc3550_a2():
    rr = rtcp.build_rr(rtcp.ReceiverReport(9))
    sdes = rtcp.build_sdes(rtcp.SourceDescription(9, "x"))
    with pytest.raises(rtcp.RtcpError, match="not SR or RR"):
        rtcp.parse_compound(sdes + rr)  # 6.1: a report packet comes first
    padded = bytearray(rr)
    padded[0] |= 0x20
    with pytest.raises(rtcp.RtcpError, match="padding before the last"):
        rtcp.parse_compound(bytes(padded) + sdes)
    last = bytearray(sdes + b"\0\0\0\x04")  # SDES with 4 octets of padding, its length counting them
    last[0] |= 0x20
    last[2:4] = struct.pack("!H", len(last) // 4 - 1)
    assert rtcp.parse_compound(rr + bytes(last))[1] == rtcp.SourceDescription(9, "x")
    last[-1] = 200  # more padding than the packet has
    with pytest.raises(rtcp.RtcpError, match="padding length"):
        rtcp.parse_compound(rr + bytes(last))
