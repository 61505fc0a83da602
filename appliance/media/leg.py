"""A call leg as the media engine sees it: one RTP/RTCP port pair, a codec, a jitter buffer.

Symmetric RTP (RFC 4961) with latching: the leg sends to the source of the first RTP packet it
receives, else to the SDP address. Once latched, packets from any other source are dropped, unless
the latched source has been silent for ``RELATCH_AFTER_S`` (the phone moved: NAT rebinding, or a
re-INVITE pointed a new endpoint at us). This refuses injected RTP during a live stream.
"""

from __future__ import annotations

import enum
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.media import rtcp, rtp
from appliance.media.codecs import Codec
from appliance.media.dtmf import DtmfReceiver, DtmfSender, DtmfToneSource
from appliance.media.jitterbuffer import JitterBuffer

Address = tuple[str, int]
Sender = Callable[[bytes, Address], object]
RELATCH_AFTER_S = 1.0


class Direction(enum.Enum):
    """Our side's SDP direction attribute (RFC 3264 section 5.1): what *we* do on this leg."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"  # we send, and ignore what we receive
    RECVONLY = "recvonly"  # we receive, and send nothing
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)


class LegState(enum.Enum):
    CREATED = "created"  # port allocated, no codec yet: receives nothing, sends nothing
    CONFIGURED = "configured"


class TxState:
    """Per-slot RTP sender state of all legs, one numpy row each, so the engine can build every
    G.711 packet header of a tick in one vectorised pass (``Leg`` exposes its row as attributes).

    The arrays are replaced when the engine grows; legs keep a reference to this holder only.
    """

    def __init__(self, cap: int) -> None:
        self.seq = np.zeros(cap, dtype=np.int64)
        self.timestamp = np.zeros(cap, dtype=np.int64)
        self.ssrc = np.zeros(cap, dtype=np.int64)
        self.marker = np.zeros(cap, dtype=np.int64)
        self.packets_out = np.zeros(cap, dtype=np.int64)
        self.bytes_out = np.zeros(cap, dtype=np.int64)

    def grow(self, cap: int) -> None:
        """Enlarge every array to ``cap`` rows, keeping the existing rows."""
        for name in ("seq", "timestamp", "ssrc", "marker", "packets_out", "bytes_out"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=np.int64)
            new[:len(old)] = old
            setattr(self, name, new)

    def reset(self, slot: int) -> None:
        """A new stream in ``slot``: random SSRC, sequence and timestamp (RFC 3550 5.1)."""
        self.ssrc[slot] = random.getrandbits(32)
        self.seq[slot] = random.getrandbits(16)
        self.timestamp[slot] = random.getrandbits(32)
        self.marker[slot] = 1  # first packet of the stream (RFC 3551 section 4.1)
        self.packets_out[slot] = 0
        self.bytes_out[slot] = 0


def _tx_field(name: str, mask: int) -> property:
    def get(self: Leg) -> int:
        return int(getattr(self.tx, name)[self.slot])

    def put(self: Leg, value: int) -> None:
        getattr(self.tx, name)[self.slot] = int(value) & mask

    return property(get, put, doc=f"This leg's row of TxState.{name}.")


@dataclass
class LegCounters:
    packets_in: int = 0
    bytes_in: int = 0
    malformed: int = 0
    foreign_source: int = 0  # dropped: not from the latched address
    unknown_pt: int = 0
    send_errors: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0


class Leg:
    """State of one leg; the engine owns all transitions."""

    seq = _tx_field("seq", 0xFFFF)
    timestamp = _tx_field("timestamp", 0xFFFFFFFF)
    ssrc = _tx_field("ssrc", 0xFFFFFFFF)
    packets_out = _tx_field("packets_out", (1 << 62) - 1)
    bytes_out = _tx_field("bytes_out", (1 << 62) - 1)

    def __init__(self, leg_id: str, slot: int, port: int, rtp_send: Sender, rtcp_send: Sender,
                 now: float, tx: TxState | None = None) -> None:
        self.leg_id = leg_id
        self.slot = slot
        if tx is None:  # a stand-alone leg: a private one-row state
            tx, self.slot = TxState(1), 0
        self.tx = tx
        tx.reset(self.slot)
        self.port = port
        self.rtp_send = rtp_send
        self.rtcp_send = rtcp_send
        self.state = LegState.CREATED
        self.codec: Codec | None = None
        self.payload_type = -1
        self.dtmf_pt: int | None = None
        self.receives = False  # cached from direction (hot receive path)
        self.sends = False
        self.direction = Direction.INACTIVE
        self.detect_inband = False
        self.g711_fill: bytes | None = None  # padding octet if the codec is G.711 (engine sets)
        self.sdp_remote: Address | None = None
        self.latched: Address | None = None
        self.rtcp_remote: Address | None = None  # learnt from received RTCP
        self.last_rx = now
        self.timeout_reported = False
        self.remote_ssrc: int | None = None
        self.jb = JitterBuffer()
        self.dtmf_rx = DtmfReceiver()
        self.dtmf_tx = DtmfSender()
        self.inband_tx = DtmfToneSource()
        self.counters = LegCounters()
        self.bridge: str | None = None
        self.player: Any = None  # WavPlayer | ToneGenerator
        self.play_id: str | None = None
        self.next_rtcp = now + rtcp.REPORT_INTERVAL_S * random.uniform(0.5, 1.5)
        self.peer_report: rtcp.ReportBlock | None = None
        self.peer_rtt_ms: float | None = None
        self.cname = f"plateau-{os.getpid()}@{leg_id}"

    @property
    def direction(self) -> Direction:
        return self._direction

    @direction.setter
    def direction(self, value: Direction) -> None:
        self._direction = value
        self.receives = value.receives
        self.sends = value.sends

    @property
    def marker(self) -> bool:
        """RTP marker bit for the next audio packet (set at the start of the stream)."""
        return bool(self.tx.marker[self.slot])

    @marker.setter
    def marker(self, value: bool) -> None:
        self.tx.marker[self.slot] = 1 if value else 0

    @property
    def remote(self) -> Address | None:
        """Where RTP goes: the latched source, else the SDP address."""
        return self.latched or self.sdp_remote

    @property
    def rtcp_target(self) -> Address | None:
        if self.rtcp_remote is not None:
            return self.rtcp_remote
        r = self.remote
        return (r[0], r[1] + 1) if r is not None else None

    def accept_source(self, addr: Address, now: float) -> bool:
        """Latching rule (module docstring): True if a packet from ``addr`` is to be used."""
        if self.latched is None or addr == self.latched:
            self.latched = addr
            return True
        if now - self.last_rx >= RELATCH_AFTER_S:
            self.latched = addr
            self.jb.reset()
            self.remote_ssrc = None
            return True
        self.counters.foreign_source += 1
        return False

    def send_rtp(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> None:
        """Packetise and send to the current remote; socket errors are counted, not raised."""
        dest = self.remote
        if dest is None:
            return
        pkt = rtp.build(payload_type, self.seq, timestamp, self.ssrc, payload, marker)
        self.seq = (self.seq + 1) & 0xFFFF
        try:
            self.rtp_send(pkt, dest)
        except OSError:
            self.counters.send_errors += 1
            return
        tx, slot = self.tx, self.slot
        tx.packets_out[slot] += 1
        tx.bytes_out[slot] += len(payload)

    def rtcp_report(self, now: float, wallclock: float) -> bytes:
        """Compound SR (if we have sent) or RR with a block about the peer (RFC 3550 6.4)."""
        blocks: tuple[rtcp.ReportBlock, ...] = ()
        if self.remote_ssrc is not None and self.jb.stats.received:
            blocks = (self.jb.stats.report_block(self.remote_ssrc, now),)
        first: rtcp.SenderReport | rtcp.ReceiverReport
        packets_out = self.packets_out
        if packets_out:
            first = rtcp.SenderReport(self.ssrc, rtcp.ntp_timestamp(wallclock), self.timestamp,
                                      packets_out, self.bytes_out, blocks)
        else:
            first = rtcp.ReceiverReport(self.ssrc, blocks)
        return rtcp.build_compound(first, self.cname)

    def rtcp_received(self, data: bytes, addr: Address, now: float, wallclock: float) -> bool:
        """Take the peer's SR (for LSR/DLSR) and its report block about our stream; False when
        the packet was malformed and dropped."""
        try:
            packets = rtcp.parse_compound(data)
        except rtcp.RtcpError:
            self.counters.malformed += 1
            return False
        self.counters.rtcp_in += 1
        self.rtcp_remote = addr
        for p in packets:
            if isinstance(p, rtcp.SenderReport):
                self.jb.stats.sender_report_received(p, now)
            if isinstance(p, (rtcp.SenderReport, rtcp.ReceiverReport)):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        self.peer_report = block
                        if block.lsr:
                            # RTT = A - LSR - DLSR, in 1/65536 s (RFC 3550 6.4.1)
                            a = (rtcp.ntp_timestamp(wallclock) >> 16) & 0xFFFFFFFF
                            rtt = (a - block.lsr - block.dlsr) & 0xFFFFFFFF
                            self.peer_rtt_ms = rtt * 1000.0 / 65536 if rtt < 1 << 31 else None
        return True

    def stats(self) -> dict[str, Any]:
        """Counters and reception quality for ``leg_stats``."""
        c, jb = self.counters, self.jb
        peer = None
        if self.peer_report is not None:
            clock = self.codec.clock_rate if self.codec else 8000
            peer = {"fraction_lost": self.peer_report.fraction_lost / 256.0,
                    "cumulative_lost": self.peer_report.cumulative_lost,
                    "jitter_ms": self.peer_report.jitter * 1000.0 / clock,
                    "rtt_ms": self.peer_rtt_ms}
        return {
            "leg_id": self.leg_id, "port": self.port, "state": self.state.value,
            "codec": self.codec.name if self.codec else None, "direction": self.direction.value,
            "remote": list(self.remote) if self.remote else None, "bridge": self.bridge,
            "packets_in": c.packets_in, "bytes_in": c.bytes_in,
            "packets_out": self.packets_out, "bytes_out": self.bytes_out,
            "lost": jb.stats.lost if jb.stats.received else 0, "jitter_ms": jb.jitter_ms,
            "late_packets": jb.late, "duplicates": jb.duplicates, "lost_frames": jb.lost_frames,
            "jb_target_frames": jb.target, "jb_depth_frames": jb.depth,
            "malformed": c.malformed, "foreign_source": c.foreign_source,
            "unknown_pt": c.unknown_pt, "send_errors": c.send_errors,
            "rtcp_in": c.rtcp_in, "rtcp_out": c.rtcp_out, "rtcp_peer": peer,
        }
