"""Wire format between MediaClient (PBX process) and the media server process.

Both directions use AF_UNIX SOCK_SEQPACKET socketpairs, so one datagram is one message; each is a
UTF-8 JSON object. Requests: ``{"op": name, "args": {...}}``; replies: ``{"ok": true, "result": x}``
or ``{"ok": false, "error": message}``. Events go on a second socketpair as ``event_to_dict``.
JSON, not pickle: the server never executes what it is sent.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from appliance.media.tones import ToneSpec

MAX_MESSAGE = 65536
OPS = frozenset({
    "create_leg", "configure_leg", "destroy_leg", "bridge", "unbridge", "destroy_bridge", "play",
    "stop_play", "record", "stop_record", "record_parties", "record_set_party", "pause_record", "resume_record",
    "monitor", "unmonitor", "send_dtmf", "detect_machine", "stop_detect_machine", "leg_stats", "engine_stats",
    "ping", "shutdown",
})


class MediaError(RuntimeError):
    """A media request failed; the message says why."""


def encode(obj: dict[str, Any]) -> bytes:
    """Serialise one message."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise MediaError(f"message too large ({len(data)} octets)")
    return data


def decode(data: bytes) -> dict[str, Any]:
    """Parse one message; MediaError if it is not a JSON object."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise MediaError(f"bad message: {exc}") from exc
    if not isinstance(obj, dict):
        raise MediaError("bad message: not an object")
    return obj


def source_to_wire(source: ToneSpec | str) -> dict[str, Any]:
    """A play() source: a ToneSpec or a WAV path."""
    if isinstance(source, ToneSpec):
        return {"tone": asdict(source)}
    return {"wav": str(source)}


def source_from_wire(obj: dict[str, Any]) -> ToneSpec | str:
    if "tone" in obj:
        t = obj["tone"]
        return ToneSpec(t["name"], tuple(t["freqs"]), tuple(t["cadence"]), t["level_dbm0"])
    if "wav" in obj:
        return str(obj["wav"])
    raise MediaError("play source must be a tone or a wav path")
