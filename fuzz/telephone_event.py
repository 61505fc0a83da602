"""RFC 4733 telephone-event payloads: dtmf.decode_event, DtmfReceiver, and the engine's path
for an RTP packet with the leg's telephone-event payload type (101).

Contract: ``decode_event`` and ``DtmfReceiver.receive`` raise only DtmfError; a decoded event
has its fields in their wire ranges and reports a digit only for events 0-15; the engine never
raises.
"""

from __future__ import annotations

import struct

from fuzz.harness import Target, instrumented, main

with instrumented():
    from appliance.media import dtmf
    from fuzz.media_rig import MediaRig

_rig = MediaRig()
_receiver = dtmf.DtmfReceiver()


def one_input(data: bytes) -> None:
    # Fuzz the timestamp too: the receiver keys events on it (RFC 4733 2.5.1.2).
    head, payload = data[:2], data[2:]
    ts = int.from_bytes(head, "big") * 160
    seq = _rig.leg.counters.packets_in & 0xFFFF
    _rig.rtp(struct.pack("!BBHII", 0x80, 101, seq, ts, 0x1234) + payload)
    ev = dtmf.decode_event(payload)
    if not (0 <= ev.event <= 255 and 0 <= ev.volume <= 63 and 0 <= ev.duration <= 0xFFFF):
        raise AssertionError(f"event out of range: {ev!r}")
    if (ev.digit is not None) != (ev.event < 16):
        raise AssertionError(f"digit {ev.digit!r} for event {ev.event}")
    _receiver.receive(ts, payload)


TARGET = Target("telephone_event", __doc__ or "", one_input, (dtmf.DtmfError,))

if __name__ == "__main__":
    main(TARGET)
