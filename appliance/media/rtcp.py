"""RTCP sender/receiver reports (RFC 3550 section 6.4) and receiver statistics (appendix A)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)
PT_SR, PT_RR, PT_SDES, PT_BYE = 200, 201, 202, 203
MAX_DROPOUT = 3000  # RFC 3550 A.1
MAX_MISORDER = 100
REPORT_INTERVAL_S = 5.0


class RtcpError(ValueError):
    """A malformed RTCP compound packet."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int  # fixed point /256
    cumulative_lost: int  # signed 24 bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # timestamp units
    lsr: int  # middle 32 bits of the NTP timestamp of the last SR received
    dlsr: int  # delay since that SR, 1/65536 s


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription:
    ssrc: int
    cname: str


RtcpPacket = SenderReport | ReceiverReport | SourceDescription


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp for a Unix time."""
    t = unix_time + NTP_EPOCH_OFFSET
    return (int(t) << 32) | int((t % 1.0) * (1 << 32))


def _header(pt: int, count: int, body_len: int) -> bytes:
    # length field: 32-bit words minus one, header included (6.4.1)
    return struct.pack("!BBH", 0x80 | count, pt, (body_len + 4) // 4 - 1)


def _block(rb: ReportBlock) -> bytes:
    lost = rb.cumulative_lost & 0xFFFFFF  # two's complement, 24 bit
    return struct.pack("!IIIIII", rb.ssrc, (rb.fraction_lost << 24) | lost, rb.highest_seq,
                       rb.jitter, rb.lsr, rb.dlsr)


def build_sr(sr: SenderReport) -> bytes:
    """Encode a sender report."""
    body = struct.pack("!IQIII", sr.ssrc, sr.ntp_timestamp, sr.rtp_timestamp & 0xFFFFFFFF,
                       sr.packet_count & 0xFFFFFFFF, sr.octet_count & 0xFFFFFFFF)
    body += b"".join(_block(b) for b in sr.reports)
    return _header(PT_SR, len(sr.reports), len(body)) + body


def build_rr(rr: ReceiverReport) -> bytes:
    """Encode a receiver report."""
    body = struct.pack("!I", rr.ssrc) + b"".join(_block(b) for b in rr.reports)
    return _header(PT_RR, len(rr.reports), len(body)) + body


def build_sdes(sd: SourceDescription) -> bytes:
    """Encode an SDES packet with one chunk carrying a CNAME (required, RFC 3550 6.5.1)."""
    cname = sd.cname.encode()[:255]
    chunk = struct.pack("!IBB", sd.ssrc, 1, len(cname)) + cname + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return _header(PT_SDES, 1, len(chunk)) + chunk


def build_compound(first: SenderReport | ReceiverReport, cname: str) -> bytes:
    """A compound packet: SR or RR first, then SDES CNAME (RFC 3550 6.1)."""
    head = build_sr(first) if isinstance(first, SenderReport) else build_rr(first)
    return head + build_sdes(SourceDescription(first.ssrc, cname))


def _parse_blocks(data: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        ssrc, fl, hs, jit, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset + 24 * i)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        blocks.append(ReportBlock(ssrc, fl >> 24, lost, hs, jit, lsr, dlsr))
    return tuple(blocks)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; unknown packet types are skipped, malformed raise RtcpError."""
    out: list[RtcpPacket] = []
    offset = 0
    if len(data) < 8:
        raise RtcpError(f"short RTCP packet ({len(data)} octets)")
    # RFC 3550 A.2 validity checks: version 2 in every packet, an SR or RR first (6.1), padding
    # only in the last packet, and the length fields adding up to the datagram.
    if data[1] not in (PT_SR, PT_RR):
        raise RtcpError(f"compound RTCP packet starts with type {data[1]}, not SR or RR")
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtcpError("truncated RTCP header")
        b0, pt, length = struct.unpack_from("!BBH", data, offset)
        if b0 >> 6 != 2:
            raise RtcpError(f"RTCP version {b0 >> 6}")
        end = offset + 4 * (length + 1)
        if end > len(data):
            raise RtcpError("RTCP length overruns datagram")
        count = b0 & 0x1F
        body = offset + 4
        if b0 & 0x20:  # P bit (6.4.1): only the last packet may be padded, by 1..body octets
            if end != len(data):
                raise RtcpError("RTCP padding before the last packet of a compound")
            pad = data[end - 1]
            if pad == 0 or pad > end - body:
                raise RtcpError(f"bad RTCP padding length {pad}")
            end -= pad
        if pt == PT_SR:
            if end - body < 24 + 24 * count:
                raise RtcpError("SR too short for its report count")
            ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", data, body)
            out.append(SenderReport(ssrc, ntp, rtp_ts, pc, oc, _parse_blocks(data, body + 24, count)))
        elif pt == PT_RR:
            if end - body < 4 + 24 * count:
                raise RtcpError("RR too short for its report count")
            (ssrc,) = struct.unpack_from("!I", data, body)
            out.append(ReceiverReport(ssrc, _parse_blocks(data, body + 4, count)))
        elif pt == PT_SDES and count >= 1 and end - body >= 6:
            ssrc, item, ln = struct.unpack_from("!IBB", data, body)
            if item == 1 and body + 6 + ln <= end:
                out.append(SourceDescription(ssrc, data[body + 6:body + 6 + ln].decode("utf-8", "replace")))
        offset = offset + 4 * (length + 1)
    return out


@dataclass
class ReceptionStats:
    """Statistics of one received RTP source (RFC 3550 A.1 sequence, A.3 loss, A.8 jitter)."""

    clock_rate: int = 8000
    received: int = 0
    base_seq: int = 0
    max_seq: int = 0
    cycles: int = 0
    jitter: float = 0.0  # timestamp units
    _transit: float | None = None
    _expected_prior: int = 0
    _received_prior: int = 0
    last_sr_ntp: int = 0  # middle 32 bits of the peer's last SR
    last_sr_arrival: float = 0.0
    peer_reports: list[ReportBlock] = field(default_factory=list)

    def update(self, seq: int, timestamp: int, arrival: float, jitter: bool = True) -> int:
        """Account one packet arriving at ``arrival`` (seconds); return its extended sequence.

        ``jitter=False`` counts the packet without a jitter sample (RFC 4733 events keep one
        timestamp for a whole event, which is not a media clock).
        """
        if self.received == 0:
            self._restart(seq)
            ext = seq
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if delta < MAX_DROPOUT:  # in order, possibly with a gap (A.1)
                if seq < self.max_seq:
                    self.cycles += 0x10000
                self.max_seq = seq
                ext = self.cycles + seq
            elif delta <= 0x10000 - MAX_MISORDER:  # a jump: the source restarted
                self._restart(seq)
                ext = seq
                self._transit = None
            else:  # old or duplicate packet
                ext = self.cycles + self.max_seq - (0x10000 - delta) % 0x10000
        self.received += 1
        # A.8: D(i-1,i) from transit time differences, J += (|D| - J) / 16
        if not jitter:
            return ext
        transit = arrival * self.clock_rate - timestamp
        if self._transit is not None:
            d = transit - self._transit
            d = (d + 2**31) % 2**32 - 2**31  # timestamp wrap
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._transit = transit
        return ext

    def _restart(self, seq: int) -> None:
        self.base_seq = self.max_seq = seq
        self.cycles = 0
        self.received = 0
        self._expected_prior = self._received_prior = 0

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3), clamped to the 24-bit signed field."""
        return max(-0x800000, min(0x7FFFFF, self.expected - self.received))

    def report_block(self, source_ssrc: int, now: float) -> ReportBlock:
        """A report block for this source; advances the fraction-lost interval (A.3)."""
        expected = self.expected
        exp_int = expected - self._expected_prior
        rec_int = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        lost_int = exp_int - rec_int
        fraction = 0 if exp_int == 0 or lost_int <= 0 else min(255, (lost_int << 8) // exp_int)
        dlsr = int((now - self.last_sr_arrival) * 65536) if self.last_sr_ntp else 0
        return ReportBlock(source_ssrc, fraction, self.lost, self.extended_max & 0xFFFFFFFF,
                           int(self.jitter), self.last_sr_ntp, dlsr)

    def sender_report_received(self, sr: SenderReport, now: float) -> None:
        """Remember LSR and its arrival time for DLSR (6.4.1)."""
        self.last_sr_ntp = (sr.ntp_timestamp >> 16) & 0xFFFFFFFF
        self.last_sr_arrival = now
