"""The per-tick work plan of the media engine: which legs decode, mix, relay or send, and how.

A plan is rebuilt only when a leg's media state changes (codec, direction, bridge, player, DTMF,
recorder, monitor), so a tick spends no Python time on deciding what to do.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from appliance.media.codecs import Pcma, Pcmu
from appliance.media.leg import Leg
from appliance.media.rtp import HEADER_LEN

G711_DECODE = {"PCMU": Pcmu.decode_table(), "PCMA": Pcma.decode_table()}
G711_ENCODE = {"PCMU": Pcmu.encode_table(), "PCMA": Pcma.encode_table()}
G711_BYTES = 160
NARROW_RATE = 8000
G711_FILL = {"PCMU": b"\xff", "PCMA": b"\xd5"}  # codes of (near) silence
PKT_BYTES = HEADER_LEN + G711_BYTES


class SendGroup:
    """G.711 legs of one codec on the fast path: plain audio, sent to a known address."""

    def __init__(self, legs: list[Leg]) -> None:
        self.legs = legs
        self.idx = np.array([leg.slot for leg in legs], dtype=np.int64)
        self.b1 = np.array([leg.payload_type for leg in legs], dtype=np.int64)
        self.sends = [leg.rtp_send for leg in legs]
        self.dests = [leg.remote for leg in legs]
        self.slices = [slice(i * PKT_BYTES, (i + 1) * PKT_BYTES) for i in range(len(legs))]


class TickPlan:
    """Per-tick work lists, cached between ticks and rebuilt when a leg's media state changes.

    Keeping the lists ready (bound methods, slot index arrays, destinations) is what keeps the
    per-leg Python work of a tick down to one jitter-buffer read and one ``sendto``.

    ``wide`` names the legs and bridges whose audio must exist at 16 kHz whatever their codecs:
    recorded bridges and legs, party-recorded legs, and every leg of a monitor (supervisor,
    heard and whispered legs). A wide leg makes its whole bridge wide, so such a bridge goes
    through the 16 kHz mix, never the narrowband mix or the two-party relay, whose audio the
    recorder or the monitor could not see.
    """

    def __init__(self, legs: list[Leg], wide: Iterable[str], bridges: dict[str, set[str]],
                 by_id: dict[str, Leg]) -> None:
        self.rx_other: list[Leg] = []  # receiving legs of codecs decoded one at a time
        self.slow: list[Leg] = []  # sending legs with a player, DTMF or a non-G.711 codec
        inband: list[int] = []
        configured: list[Leg] = []
        kinds = {}
        # Bridges (and lone legs) whose audio must exist at 16 kHz: a wideband codec, a player
        # or DTMF replacing what a member hears, a recorder or a monitor. All others are
        # narrowband: G.711 in, G.711 out, mixed at 8 kHz with no resampling at all (in-band
        # DTMF is detected on the 8 kHz audio: the Q.23 tones are all below 1.7 kHz).
        wide_bridges: set[str | None] = set(wide)
        wide_legs: set[str] = set(wide)
        for leg in legs:
            if leg.codec is None:
                continue
            configured.append(leg)
            kinds[leg.leg_id] = kind = send_kind(leg)
            if kind == "slow" or leg.g711_fill is None:
                wide_legs.add(leg.leg_id)
            if leg.leg_id in wide_legs and leg.bridge is not None:
                wide_bridges.add(leg.bridge)
        rx: dict[tuple[str, bool], list[Leg]] = {}
        fast: dict[tuple[str, bool], list[Leg]] = {}
        relay: dict[str, list[tuple[Leg, Leg]]] = {}
        for leg in configured:
            assert leg.codec is not None
            name = leg.codec.name
            is_wide = leg.leg_id in wide_legs or leg.bridge in wide_bridges
            if leg.receives:
                if leg.detect_inband and (is_wide or name not in G711_DECODE):
                    inband.append(leg.slot)
                if name in G711_DECODE:
                    rx.setdefault((name, is_wide), []).append(leg)
                else:
                    self.rx_other.append(leg)
            if kinds[leg.leg_id] == "fast":
                partner = None if is_wide else relay_partner(leg, bridges, by_id)
                if partner is not None:
                    relay.setdefault(name, []).append((leg, partner))
                else:
                    fast.setdefault((name, is_wide), []).append(leg)
            elif kinds[leg.leg_id] == "slow":
                self.slow.append(leg)
        # (slots, jitter-buffer reads, silence, rows detecting in-band DTMF at 8 kHz)
        self.rx = {key: (np.array([leg.slot for leg in group], dtype=np.int64),
                         [leg.jb.get for leg in group], G711_FILL[key[0]] * G711_BYTES,
                         np.array([i for i, leg in enumerate(group)
                                   if leg.detect_inband and not key[1]], dtype=np.int64))
                   for key, group in rx.items()}
        self.fast = {key: SendGroup(group) for key, group in fast.items()}
        # narrowband two-party bridges of one codec: each member sends its partner's payload
        self.relay = {name: (SendGroup([leg for leg, _ in pairs]),
                             np.array([p.slot for _, p in pairs], dtype=np.int64))
                      for name, pairs in relay.items()}
        self.narrowband = any(not is_wide for _, is_wide in fast)
        self.wideband = bool(wide_legs or wide_bridges or any(w for _, w in fast))
        self.inband = np.array(inband, dtype=np.int64)
        self.ts_idx = np.array([leg.slot for leg in configured], dtype=np.int64)
        self.ts_step = np.array([leg.codec.timestamp_step for leg in configured  # type: ignore
                                 ], dtype=np.int64)
        self.legs = legs


def relay_partner(leg: Leg, bridges: dict[str, set[str]], by_id: dict[str, Leg]) -> Leg | None:
    """The other member of a narrowband two-party bridge whose received G.711 payload ``leg``
    can send unchanged, else None.

    The mix-minus of a two-member bridge is the other member's audio, and G.711 of one law
    decodes and re-encodes to the same octets, so decode, mix and encode are skipped: a
    measured 2 ms of the 7 ms tick at 1000 legs. The partner must receive (else it is silence)
    in the same codec. The caller only asks for narrowband legs: a recorded or monitored
    member makes the bridge wide (``TickPlan``), so it never reaches here.
    """
    if leg.bridge is None:
        return None
    members = bridges.get(leg.bridge)
    if members is None or len(members) != 2:
        return None
    other = next(m for m in members if m != leg.leg_id)
    partner = by_id.get(other)
    if (partner is None or partner.codec is None or leg.codec is None
            or partner.codec.name != leg.codec.name or not partner.receives):
        return None
    return partner


def send_kind(leg: Leg) -> str:
    """'fast' (batched G.711 audio), 'slow' (per-leg work this tick) or 'idle' (nothing to send)."""
    if leg.codec is None:
        return "idle"
    sending = leg.sends and leg.remote is not None
    if leg.player is not None or leg.inband_tx.busy:
        return "slow"
    if not sending:
        return "idle"
    if leg.dtmf_tx.busy or leg.g711_fill is None:
        return "slow"
    return "fast"
