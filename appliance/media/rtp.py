"""RTP fixed header parse and build (RFC 3550 section 5.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
HEADER_LEN = 12
_HDR = struct.Struct("!BBHII")
RTCP_COLLIDING_PTS = range(72, 77)


class RtpError(ValueError):
    """A datagram that is not a well-formed RTP packet."""


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet; ``payload`` excludes header, CSRCs, extension and padding."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None  # (profile-defined id, data) RFC 3550 5.3.1


def parse(data: bytes) -> RtpPacket:
    """Parse a datagram; raise RtpError if it is short, not version 2, or inconsistent."""
    if len(data) < HEADER_LEN:
        raise RtpError(f"short RTP packet ({len(data)} octets)")
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {b0 >> 6}")
    if b1 & 0x7F in RTCP_COLLIDING_PTS:
        # RFC 5761 4 / RFC 3550 A.1: with the marker set these are RTCP SR/RR/SDES/BYE/APP
        # (200-204); no RTP payload may use them, so this is RTCP on the RTP port.
        raise RtpError(f"RTP payload type {b1 & 0x7F} collides with RTCP")
    end = len(data)
    offset = HEADER_LEN + 4 * (b0 & 0x0F)
    if offset > end:
        raise RtpError("RTP CSRC list overruns packet")
    csrcs = struct.unpack_from(f"!{b0 & 0x0F}I", data, HEADER_LEN) if b0 & 0x0F else ()
    extension = None
    if b0 & 0x10:  # X bit: header extension (5.3.1)
        if offset + 4 > end:
            raise RtpError("RTP extension header overruns packet")
        ext_id, ext_words = struct.unpack_from("!HH", data, offset)
        ext_end = offset + 4 + 4 * ext_words
        if ext_end > end:
            raise RtpError("RTP extension overruns packet")
        extension = (ext_id, bytes(data[offset + 4:ext_end]))
        offset = ext_end
    if b0 & 0x20:  # P bit: the last octet counts the padding, itself included (5.1)
        pad = data[-1]
        if pad == 0 or pad > end - offset:  # padding may not reach into the header fields
            raise RtpError(f"bad RTP padding length {pad}")
        end -= pad
    return RtpPacket(
        payload_type=b1 & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset:end]),
        marker=bool(b1 & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
    )


def build(payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes,
          marker: bool = False) -> bytes:
    """Build a packet with no CSRC, extension or padding."""
    return _HDR.pack(0x80, (0x80 if marker else 0) | (payload_type & 0x7F),
                     sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + payload


def build_packet(pkt: RtpPacket) -> bytes:
    """Build a packet from an RtpPacket, including CSRCs and extension."""
    b0 = 0x80 | len(pkt.csrcs) | (0x10 if pkt.extension is not None else 0)
    out = bytearray(_HDR.pack(b0, (0x80 if pkt.marker else 0) | pkt.payload_type,
                              pkt.sequence & 0xFFFF, pkt.timestamp & 0xFFFFFFFF, pkt.ssrc))
    for c in pkt.csrcs:
        out += struct.pack("!I", c)
    if pkt.extension is not None:
        ext_id, data = pkt.extension
        if len(data) % 4:
            raise RtpError("RTP extension data must be a multiple of 4 octets")
        out += struct.pack("!HH", ext_id, len(data) // 4) + data
    return bytes(out + pkt.payload)
