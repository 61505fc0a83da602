"""The media engine: legs, bridges, players, recorders, and the 20 ms tick.

The engine does no I/O of its own: the I/O layer (``server.py``, or a test) gives each leg two
send callables and feeds received datagrams to ``rtp_received`` / ``rtcp_received``; ``tick`` is
called every 20 ms with the current monotonic time. All per-leg audio lives in rows of arrays
indexed by the leg's slot, so decode, detection, mixing and encode are whole-array operations.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from appliance.media import resample
from appliance.media.amd_tap import AmdTap
from appliance.media.codecs import MIX_RATE, MIX_SAMPLES, CodecError, codec_by_name
from appliance.media.dtmf import DtmfError, InbandDtmfDetector
from appliance.media.events import DtmfEvent, MediaEvent, PlaybackFinished, RtpTimeout
from appliance.media.leg import Address, Direction, Leg, LegState, Sender, TxState
from appliance.media.mixer import mix_minus
from appliance.media.protocol import MediaError
from appliance.media.rtp import HEADER_LEN
from appliance.media.rtp import RtpError as _RtpError
from appliance.media.rtp import parse as _parse
from appliance.media.recording import RecordingSet
from appliance.media.supervision import MonitorSet
from appliance.media.tickplan import G711_BYTES as _G711_BYTES
from appliance.media.tickplan import G711_DECODE as _G711
from appliance.media.tickplan import G711_ENCODE as _G711_ENC
from appliance.media.tickplan import G711_FILL as _G711_FILL
from appliance.media.tickplan import NARROW_RATE as _NARROW_RATE
from appliance.media.tickplan import PKT_BYTES as _PKT_BYTES
from appliance.media.tickplan import SendGroup as _SendGroup
from appliance.media.tickplan import TickPlan as _TickPlan
from appliance.media.tickplan import send_kind as _send_kind
from appliance.media.tones import ToneGenerator, ToneSpec
from appliance.media.wavfile import WavError, WavPlayer

FRAME_S = 0.020
LATE_THRESHOLD_S = 0.010  # a tick starting half a frame after its deadline is late
_HOUSEKEEPING_TICKS = 50  # each leg gets RTP-timeout and RTCP checks once a second
# RTP fixed header (RFC 3550 5.1) as a packed big-endian record: one row per packet
_HDR_DTYPE = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"),
                       ("ssrc", ">u4")])
_FAST_HDR = struct.Struct("!BHII")  # octets 1..11 of a header with no CSRC/extension/padding


class MediaEngine:
    """Holds legs, bridges, players and recorders; mixes every bridge once per tick."""

    def __init__(self, emit: Callable[[MediaEvent], None], rtp_timeout_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time, first_id: int = 1) -> None:
        self.emit = emit
        self.rtp_timeout_s = rtp_timeout_s
        self.clock = clock
        self.wallclock = wallclock
        self.legs: dict[str, Leg] = {}
        self._slot_leg: dict[int, Leg] = {}
        self.bridges: dict[str, set[str]] = {}
        self._bridge_index: dict[str, int] = {}
        self._free_bridge_idx: list[int] = []
        self._recordings = RecordingSet(self.emit)  # RecordingFailed: disk full, the calls go on
        self._monitors = MonitorSet()
        self._amd: dict[str, AmdTap] = {}  # leg id -> answering-machine detection running on it
        # ids of players and recordings; a restarted media process starts above those the
        # PBX holds (``first_id``), since the replayed ones keep theirs
        self._ids = itertools.count(first_id)
        self._cap = 0
        self._free_slots: list[int] = []
        self._grow(64)
        self._detector = InbandDtmfDetector(capacity=64)
        self._tick_no = 0
        self.late_ticks = 0
        self.skipped_ticks = 0
        # Bad packets dropped at the boundary (issue 12 Build 3), engine-wide so that they stay
        # counted after their leg is gone: malformed RTP (telephone-event included) and RTCP.
        self.malformed_rtp = 0
        self.malformed_rtcp = 0
        self._tick_total_s = 0.0
        self._tick_max_s = 0.0
        self._plan: _TickPlan | None = None  # None: rebuild before the next tick
        self._no_sums = np.zeros((1, MIX_SAMPLES), dtype=np.int32)

    # ------------------------------------------------------------------ slot arrays

    def _grow(self, cap: int) -> None:
        old = self._cap
        self._free_slots.extend(range(cap - 1, old - 1, -1))
        self._free_slots.sort(reverse=True)

        def grow(a: np.ndarray | None, shape: tuple[int, ...], dtype: Any, fill: Any = 0
                 ) -> np.ndarray:
            new = np.full(shape, fill, dtype=dtype)
            if a is not None:
                new[:old] = a
            return new

        self._bridge_of = grow(getattr(self, "_bridge_of", None), (cap,), np.int64, -1)
        self._up_hist = grow(getattr(self, "_up_hist", None), (cap, resample.UP_HISTORY),
                             np.float32)
        self._down_hist = grow(getattr(self, "_down_hist", None), (cap, resample.DOWN_HISTORY),
                               np.float32)
        self._frames = np.zeros((cap, MIX_SAMPLES), dtype=np.int16)
        self._frames8 = np.zeros((cap, _G711_BYTES), dtype=np.int16)  # narrowband bridges
        self._codes8 = np.zeros((cap, _G711_BYTES), dtype=np.uint8)  # received G.711 octets
        if old == 0:
            self._tx = TxState(cap)
        else:
            self._tx.grow(cap)
        self._cap = cap

    # ------------------------------------------------------------------ legs

    def add_leg(self, leg_id: str, port: int, rtp_send: Sender, rtcp_send: Sender) -> Leg:
        """Register a leg whose sockets the I/O layer owns."""
        if leg_id in self.legs:
            raise MediaError(f"leg {leg_id!r} exists")
        if not self._free_slots:
            self._grow(2 * self._cap)
        slot = self._free_slots.pop()
        self._up_hist[slot] = 0
        self._down_hist[slot] = 0
        self._bridge_of[slot] = -1
        self._detector.reset(slot)
        leg = Leg(leg_id, slot, port, rtp_send, rtcp_send, self.clock(), self._tx)
        self.legs[leg_id] = leg
        self._slot_leg[slot] = leg
        self._plan = None
        return leg

    def _leg(self, leg_id: str) -> Leg:
        leg = self.legs.get(leg_id)
        if leg is None:
            raise MediaError(f"no leg {leg_id!r}")
        return leg

    def configure_leg(self, leg_id: str, remote: Address | None, codec: str, payload_type: int,
                      dtmf_payload_type: int | None, direction: str = "sendrecv",
                      detect_inband_dtmf: bool = False) -> None:
        """Set the negotiated media of a leg (may be called again on re-INVITE)."""
        leg = self._leg(leg_id)
        try:
            new_codec = codec_by_name(codec)
            new_dir = Direction(direction)
        except (CodecError, ValueError) as exc:
            raise MediaError(str(exc)) from exc
        if not 0 <= payload_type <= 127 or (dtmf_payload_type is not None
                                            and not 0 <= dtmf_payload_type <= 127):
            raise MediaError("payload types must be 0..127")
        if leg.codec is None or leg.codec.name != new_codec.name:
            leg.codec = new_codec
            self._up_hist[leg.slot] = 0
            self._down_hist[leg.slot] = 0
            leg.jb.reset()
        leg.payload_type = payload_type
        leg.dtmf_pt = dtmf_payload_type
        leg.direction = new_dir
        leg.detect_inband = detect_inband_dtmf
        new_remote = (str(remote[0]), int(remote[1])) if remote else None
        if new_remote != leg.sdp_remote:
            leg.sdp_remote = new_remote
            leg.latched = None  # a new SDP address: learn the source again
        leg.g711_fill = _G711_FILL.get(new_codec.name)
        leg.state = LegState.CONFIGURED
        leg.last_rx = self.clock()
        leg.timeout_reported = False
        self._plan = None

    def remove_leg(self, leg_id: str) -> Leg:
        """Forget a leg (the I/O layer closes its sockets); stops its player, its leg recordings
        and its monitor; party recordings and monitors that named it get silence for it."""
        leg = self._leg(leg_id)
        if leg.bridge is not None:
            self.unbridge(leg_id)
        self._recordings.leg_removed(leg_id)
        self._amd.pop(leg_id, None)  # a leg hung up mid-greeting: no verdict, nothing to report
        del self.legs[leg_id]
        del self._slot_leg[leg.slot]
        self._monitors.leg_removed(leg_id, self.legs)
        self._free_slots.append(leg.slot)
        self._plan = None
        return leg

    # ------------------------------------------------------------------ bridges

    def bridge(self, bridge_id: str, leg_ids: list[str]) -> None:
        """Create or extend a bridge; a leg already in another bridge moves to this one, and a
        monitoring leg's monitor ends (barge: see ``supervision``)."""
        legs = [self._leg(i) for i in leg_ids]
        if bridge_id not in self.bridges:
            if bridge_id in self.legs:
                raise MediaError(f"bridge id {bridge_id!r} is a leg id")
            self.bridges[bridge_id] = set()
            self._bridge_index[bridge_id] = (self._free_bridge_idx.pop() if self._free_bridge_idx
                                             else len(self._bridge_index))
        idx = self._bridge_index[bridge_id]
        for leg in legs:
            if leg.leg_id in self._monitors:
                self._monitors.stop(leg.leg_id)
            if leg.bridge is not None and leg.bridge != bridge_id:
                self.unbridge(leg.leg_id)
            leg.bridge = bridge_id
            self.bridges[bridge_id].add(leg.leg_id)
            self._bridge_of[leg.slot] = idx
            self._plan = None

    def unbridge(self, leg_id: str) -> None:
        """Take a leg out of its bridge (the bridge stays, even if empty)."""
        leg = self._leg(leg_id)
        if leg.bridge is None:
            raise MediaError(f"leg {leg_id!r} is not bridged")
        self.bridges[leg.bridge].discard(leg_id)
        leg.bridge = None
        self._bridge_of[leg.slot] = -1
        self._plan = None

    def destroy_bridge(self, bridge_id: str) -> None:
        """Unbridge all members, stop recordings of the bridge, free the bridge."""
        members = self.bridges.get(bridge_id)
        if members is None:
            raise MediaError(f"no bridge {bridge_id!r}")
        for leg_id in list(members):
            self.unbridge(leg_id)
        self._recordings.stop_target(bridge_id)
        del self.bridges[bridge_id]
        self._plan = None
        self._free_bridge_idx.append(self._bridge_index.pop(bridge_id))

    # ------------------------------------------------------------------ players, recorders, DTMF

    def play(self, leg_id: str, source: ToneSpec | str, loop: bool = True,
             play_id: str | None = None) -> str:
        """Attach a tone or WAV to a leg; it replaces the bridge audio the leg hears.
        ``play_id`` re-creates a player under the id a previous media process gave it."""
        leg = self._leg(leg_id)
        try:
            player = ToneGenerator(source) if isinstance(source, ToneSpec) else WavPlayer(source, loop)
        except (WavError, OSError) as exc:
            raise MediaError(f"cannot play {source!r}: {exc}") from exc
        leg.player = player
        leg.play_id = play_id or f"play-{next(self._ids)}"
        self._plan = None
        return leg.play_id

    def stop_play(self, leg_id: str) -> None:
        """Detach the leg's player (no PlaybackFinished)."""
        leg = self._leg(leg_id)
        leg.player = None
        leg.play_id = None
        self._plan = None

    def record(self, target: str, path: str, rec_id: str | None = None) -> str:
        """Record a leg (what it says plus what it hears) or a bridge (the sum of its members)
        to a mono 16 kHz WAV."""
        if target not in self.legs and target not in self.bridges:
            raise MediaError(f"no leg or bridge {target!r}")
        rec_id = rec_id or f"rec-{next(self._ids)}"
        self._recordings.start_target(rec_id, target, path)
        self._plan = None
        return rec_id

    def record_parties(self, path: str, legs: list[str], stereo: bool, rec_id: str | None = None) -> str:
        """Record what each leg's far end sends (after the jitter buffer) to a 16 kHz WAV:
        stereo (2 legs, channel 0 = legs[0], channel 1 = legs[1]) or mono (their clipped sum).
        Follows the legs across bridges; a destroyed leg is silence until ``stop_record``."""
        for leg_id in legs:
            if leg_id:  # "": a party not on the call yet (the agent), silent until record_set_party
                self._leg(leg_id)
        rec_id = rec_id or f"rec-{next(self._ids)}"
        self._recordings.start_parties(rec_id, path, list(legs), stereo)
        self._plan = None
        return rec_id

    def record_set_party(self, rec_id: str, index: int, leg_id: str) -> None:
        """Put ``leg_id`` in party slot ``index`` of a party recording (the agent who answered)."""
        self._leg(leg_id)
        self._recordings.set_party(rec_id, index, leg_id)
        self._plan = None

    def pause_record(self, rec_id: str) -> None:
        """Write digital silence instead of audio from the next frame on (idempotent)."""
        self._recordings.pause(rec_id, True)

    def resume_record(self, rec_id: str) -> None:
        """Record audio again after ``pause_record`` (idempotent)."""
        self._recordings.pause(rec_id, False)

    def stop_record(self, rec_id: str) -> None:
        """Finish a recording (fixes the WAV header)."""
        self._recordings.stop(rec_id)
        self._plan = None

    def monitor(self, leg_id: str, hears: list[str], whisper_to: list[str]) -> None:
        """Supervise: ``leg_id`` hears the inbound audio of ``hears``, and what it sends is added
        to what ``whisper_to`` hear. Takes ``leg_id`` out of its bridge (see ``supervision``)."""
        self._monitors.start(leg_id, list(hears), list(whisper_to), self.legs)
        if self.legs[leg_id].bridge is not None:
            self.unbridge(leg_id)
        self._plan = None

    def unmonitor(self, leg_id: str) -> None:
        """End the monitor of ``leg_id`` (MediaError if it has none)."""
        self._monitors.stop(leg_id)
        self._plan = None

    def send_dtmf(self, leg_id: str, digit: str, duration_ms: int = 100) -> None:
        """Send a digit as RFC 4733 events, or in-band if the leg has no telephone-event PT."""
        leg = self._leg(leg_id)
        try:
            if leg.dtmf_pt is not None:
                leg.dtmf_tx.queue(digit, duration_ms)
            else:
                leg.inband_tx.queue(digit, duration_ms)
        except DtmfError as exc:
            raise MediaError(str(exc)) from exc
        self._plan = None

    def detect_machine(self, leg_id: str, params: dict[str, Any] | None = None) -> None:
        """Run answering-machine detection on what the leg's far end sends, from the next tick;
        one ``MachineDetected`` event reports the verdict (a new call replaces a running one)."""
        self._leg(leg_id)
        self._amd[leg_id] = AmdTap(leg_id, params)
        self._plan = None  # the leg must be decoded at 16 kHz from now on

    def stop_detect_machine(self, leg_id: str) -> None:
        """Stop a detection without a verdict (idempotent)."""
        if self._amd.pop(leg_id, None) is not None:
            self._plan = None

    def _detect_machines(self, frames: np.ndarray) -> None:
        for leg_id, tap in list(self._amd.items()):
            leg = self.legs.get(leg_id)
            if leg is None or leg.codec is None:
                continue  # not configured yet: the greeting has not started
            event = tap.feed(frames[leg.slot], MIX_RATE)
            if event is not None:
                del self._amd[leg_id]
                self._plan = None
                self.emit(event)

    # ------------------------------------------------------------------ receive path (per packet)

    def rtp_received(self, leg: Leg, data: bytes, addr: Address, now: float) -> None:
        """Hot path: validate, latch, then queue raw payload (decoded later, in the tick)."""
        if len(data) < HEADER_LEN or data[0] >> 6 != 2:
            leg.counters.malformed += 1
            self.malformed_rtp += 1
            return
        if addr != leg.latched:
            before = leg.remote
            if not leg.accept_source(addr, now):
                return
            if leg.remote != before:
                self._plan = None  # the destination of the leg's RTP changed
        if data[0] == 0x80:  # no padding, CSRC or extension: the common case, parsed inline
            b1, seq, timestamp, ssrc = _FAST_HDR.unpack_from(data, 1)
            pt = b1 & 0x7F
            payload = data[HEADER_LEN:]
        else:
            try:
                pkt = _parse(data)
            except _RtpError:
                leg.counters.malformed += 1
                self.malformed_rtp += 1
                return
            pt, seq, timestamp, ssrc = pkt.payload_type, pkt.sequence, pkt.timestamp, pkt.ssrc
            payload = pkt.payload
        counters = leg.counters
        counters.packets_in += 1
        counters.bytes_in += len(payload)
        leg.last_rx = now
        leg.timeout_reported = False
        if ssrc != leg.remote_ssrc:
            if leg.remote_ssrc is not None:
                leg.jb.reset()  # a new source: new sequence and timestamp spaces
            leg.remote_ssrc = ssrc
        if pt == leg.payload_type:
            if leg.receives:
                fill = leg.g711_fill
                if fill is not None and len(payload) != _G711_BYTES:
                    payload = payload[:_G711_BYTES].ljust(_G711_BYTES, fill)
                leg.jb.put(seq, timestamp, payload, now)
        elif pt == leg.dtmf_pt and leg.dtmf_pt is not None:
            leg.jb.stats.update(seq, timestamp, now, jitter=False)
            try:
                ended = leg.dtmf_rx.receive(timestamp, payload, now)
            except DtmfError:
                counters.malformed += 1
                self.malformed_rtp += 1
                return
            if leg.receives:
                for got in ended:
                    self.emit(DtmfEvent(leg.leg_id, got.digit, "rfc4733", got.duration_ms))
        else:
            counters.unknown_pt += 1  # comfort noise (PT 13) and the like are ignored

    def rtcp_received(self, leg: Leg, data: bytes, addr: Address, now: float) -> None:
        """An RTCP datagram on the leg's port + 1."""
        if not leg.rtcp_received(data, addr, now, self.wallclock()):
            self.malformed_rtcp += 1

    # ------------------------------------------------------------------ the tick

    def tick(self, now: float | None = None, deadline: float | None = None) -> None:
        """One 20 ms frame for every leg: decode, detect, mix, play, encode, send, record."""
        t0 = time.perf_counter()
        now = self.clock() if now is None else now
        if deadline is not None and now - deadline > LATE_THRESHOLD_S:
            self.late_ticks += 1
        plan = self._plan
        if plan is None:
            wide_ids = self._recordings.wide() | self._monitors.wide() | set(self._amd)
            plan = self._plan = _TickPlan(list(self.legs.values()), wide_ids, self.bridges,
                                          self.legs)
        frames, frames8 = self._frames, self._frames8
        frames[:] = 0
        frames8[:] = 0
        for (name, wide), (idx, gets, silence, inband8) in plan.rx.items():
            payloads = [get() for get in gets]
            missing: list[int] = []
            if None in payloads:
                missing = [i for i, p in enumerate(payloads) if p is None]
                if len(missing) == len(payloads):
                    if not wide:
                        self._codes8[idx] = silence[0]
                    continue
                for i in missing:
                    payloads[i] = silence
            codes = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(idx), -1)
            if not wide:
                self._codes8[idx] = codes  # relayed as is (a missing frame: silence)
                if not plan.narrowband and not inband8.size:
                    continue
            pcm8 = _G711[name][codes]
            if missing:
                pcm8[missing] = 0  # no frame: the leg is silent this tick
            if not wide:
                if inband8.size:
                    self._detect_inband(idx[inband8], pcm8[inband8], _NARROW_RATE)
                frames8[idx] = pcm8
                continue
            pcm16, self._up_hist[idx] = resample.upsample2(pcm8, self._up_hist[idx])
            if missing:
                pcm16[missing] = 0
            frames[idx] = pcm16
        for leg in plan.rx_other:
            payload = leg.jb.get()
            if payload is not None and leg.codec is not None:
                pcm = leg.codec.decode(payload)[:MIX_SAMPLES]
                frames[leg.slot, :len(pcm)] = pcm
        if plan.inband.size:
            self._detect_inband(plan.inband, frames[plan.inband], MIX_RATE)
        if self._amd:
            self._detect_machines(frames)
        n_bridges = len(self._bridge_index) + len(self._free_bridge_idx)
        if plan.wideband:
            out, sums = mix_minus(frames, self._bridge_of, max(n_bridges, 1))
        else:  # every bridge is narrowband: nothing at 16 kHz to mix
            out, sums = frames, self._no_sums
        if self._monitors.active:  # its legs are wide, so ``out`` is the 16 kHz mix here
            self._monitors.apply(frames, out)
        self._send_slow(plan.slow, out)
        out8 = mix_minus(frames8, self._bridge_of, max(n_bridges, 1))[0] if plan.narrowband else None
        for (name, wide), group in plan.fast.items():
            if wide:
                pcm8, self._down_hist[group.idx] = resample.decimate2(out[group.idx],
                                                                      self._down_hist[group.idx])
            else:
                assert out8 is not None
                pcm8 = out8[group.idx]
            self._send_fast(group, _G711_ENC[name][pcm8.view(np.uint16)])
        for group, src in plan.relay.values():
            self._send_fast(group, self._codes8[src])
        tx = self._tx
        tx.timestamp[plan.ts_idx] = (tx.timestamp[plan.ts_idx] + plan.ts_step) & 0xFFFFFFFF
        if self._recordings.active:
            self._recordings.write(frames, out, sums, self.legs, self._bridge_index)
        self._housekeeping(plan.legs[self._tick_no % _HOUSEKEEPING_TICKS::_HOUSEKEEPING_TICKS],
                           now)
        self._tick_no += 1
        dt = time.perf_counter() - t0
        self._tick_total_s += dt
        self._tick_max_s = max(self._tick_max_s, dt)

    def _detect_inband(self, slots: np.ndarray, frames: np.ndarray, rate: int) -> None:
        for slot, digit in self._detector.process(slots, frames, rate):
            self.emit(DtmfEvent(self._slot_leg[slot].leg_id, digit, "inband"))

    def _send_fast(self, group: _SendGroup, payload: np.ndarray) -> None:
        """Packetise and send a codec group (``payload``: G.711 octets, a row per leg): one numpy
        pass, then one ``sendto`` per leg."""
        idx, tx = group.idx, self._tx
        hdr = np.empty(len(idx), dtype=_HDR_DTYPE)
        hdr["b0"] = 0x80
        hdr["b1"] = group.b1 | (tx.marker[idx] << 7)
        hdr["seq"] = tx.seq[idx]
        hdr["ts"] = tx.timestamp[idx]
        hdr["ssrc"] = tx.ssrc[idx]
        pkts = np.empty((len(idx), _PKT_BYTES), dtype=np.uint8)
        pkts[:, :HEADER_LEN] = hdr.view(np.uint8).reshape(len(idx), HEADER_LEN)
        pkts[:, HEADER_LEN:] = payload
        data = pkts.tobytes()
        failed: list[int] = []
        for i, (send, part, dest) in enumerate(zip(group.sends, map(data.__getitem__,
                                                                    group.slices), group.dests)):
            try:
                send(part, dest)
            except OSError:
                failed.append(i)
        tx.seq[idx] = (tx.seq[idx] + 1) & 0xFFFF
        tx.marker[idx] = 0
        tx.packets_out[idx] += 1
        tx.bytes_out[idx] += _G711_BYTES
        for i in failed:
            leg = group.legs[i]
            leg.counters.send_errors += 1
            tx.packets_out[leg.slot] -= 1
            tx.bytes_out[leg.slot] -= _G711_BYTES

    def _send_slow(self, legs: list[Leg], out: np.ndarray) -> None:
        """Legs with a player, DTMF to send or a non-G.711 codec, one at a time."""
        g711_out: dict[str, list[tuple[Leg, int]]] = {"PCMU": [], "PCMA": []}
        for leg in legs:
            if leg.codec is None:
                continue
            # a player or in-band DTMF replaces the bridge audio for this leg
            override = leg.inband_tx.next_frame() if leg.inband_tx.busy else None
            if override is None and leg.player is not None:
                override = leg.player.next_frame()
                if override is None:
                    self.emit(PlaybackFinished(leg.leg_id, leg.play_id or ""))
                    leg.player = None
                    leg.play_id = None
            if override is not None:
                out[leg.slot] = override
            if leg.sends and leg.remote is not None:
                if leg.dtmf_tx.busy and leg.dtmf_pt is not None:
                    ev = leg.dtmf_tx.tick(leg.timestamp)
                    if ev is not None:
                        leg.send_rtp(leg.dtmf_pt, ev.payload, ev.timestamp, ev.marker)
                elif leg.codec.name in g711_out:
                    g711_out[leg.codec.name].append((leg, leg.timestamp))
                else:
                    payload = leg.codec.encode(out[leg.slot])
                    leg.send_rtp(leg.payload_type, payload, leg.timestamp, leg.marker)
                    leg.marker = False
            if _send_kind(leg) != "slow":
                self._plan = None  # player or DTMF done: back to the fast path (or idle)
        for name, group in g711_out.items():
            if not group:
                continue
            idx = np.array([leg.slot for leg, _ in group])
            pcm8, self._down_hist[idx] = resample.decimate2(out[idx], self._down_hist[idx])
            data = _G711_ENC[name][pcm8.view(np.uint16)].tobytes()
            for i, (leg, ts) in enumerate(group):
                leg.send_rtp(leg.payload_type, data[i * _G711_BYTES:(i + 1) * _G711_BYTES], ts,
                             leg.marker)
                leg.marker = False

    def _housekeeping(self, legs: list[Leg], now: float) -> None:
        """RTP timeouts and due RTCP reports (each tick checks a 1/50 share of the legs)."""
        wall = self.wallclock()
        for leg in legs:
            if leg.state is not LegState.CONFIGURED:
                continue
            for got in leg.dtmf_rx.expire(now):  # every end packet lost (RFC 4733 2.5.2.2)
                if leg.receives:
                    self.emit(DtmfEvent(leg.leg_id, got.digit, "rfc4733", got.duration_ms))
            if (leg.direction.receives and not leg.timeout_reported
                    and now - leg.last_rx >= self.rtp_timeout_s):
                leg.timeout_reported = True
                self.emit(RtpTimeout(leg.leg_id, round(now - leg.last_rx, 3)))
            target = leg.rtcp_target
            if now >= leg.next_rtcp and target is not None and leg.direction is not Direction.INACTIVE:
                leg.next_rtcp = now + 5.0 * np.random.uniform(0.5, 1.5)  # RFC 3550 6.3.5
                try:
                    leg.rtcp_send(leg.rtcp_report(now, wall), target)
                    leg.counters.rtcp_out += 1
                except OSError:
                    leg.counters.send_errors += 1

    def count_skipped(self, n: int) -> None:
        """The scheduler fell too far behind and skipped ``n`` ticks."""
        self.skipped_ticks += n

    # ------------------------------------------------------------------ stats

    def leg_stats(self, leg_id: str) -> dict[str, Any]:
        """Counters and quality figures of one leg."""
        return self._leg(leg_id).stats()

    def engine_stats(self) -> dict[str, Any]:
        """Engine-wide counters and tick timing."""
        n = max(self._tick_no, 1)
        legs = list(self.legs.values())
        return {
            # Totals over the live legs, so a load test can diff them across a steady period.
            "packets_in": sum(leg.counters.packets_in for leg in legs),
            "packets_out": sum(int(leg.packets_out) for leg in legs),
            "lost_frames": sum(leg.jb.lost_frames for leg in legs),
            "legs": len(self.legs), "bridges": len(self.bridges), "ticks": self._tick_no,
            "late_ticks": self.late_ticks, "skipped_ticks": self.skipped_ticks,
            "malformed_rtp": self.malformed_rtp, "malformed_rtcp": self.malformed_rtcp,
            "max_tick_ms": self._tick_max_s * 1000.0, "mean_tick_ms": self._tick_total_s * 1000.0 / n,
            "recorders": len(self._recordings), "monitors": len(self._monitors), "cpu_s": time.process_time(),
        }

    def close(self) -> None:
        """Close all recorders."""
        self._recordings.close()

