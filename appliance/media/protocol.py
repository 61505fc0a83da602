"""Wire format between MediaClient (PBX process) and the media server process.

Both directions use AF_UNIX SOCK_SEQPACKET socketpairs, so one datagram is one message; each is a
UTF-8 JSON object. Requests: ``{"op": name, "args": {...}}``; replies: ``{"ok": true, "result": x}``
or ``{"ok": false, "error": message}``. Commands sent with ``"noreply": true`` get no reply;
several of them may travel as one ``{"op": "batch", "noreply": true, "cmds": [...]}``, run in
order, each failing alone (see ``batch_messages``). Events go on a second socketpair as ``event_to_dict``.
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
    "ping", "shutdown", "batch",
})
_BATCH_HEAD = b'{"op":"batch","noreply":true,"cmds":['
_BATCH_TAIL = b"]}"


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


def batch_messages(commands: list[bytes]) -> list[bytes]:
    """Encoded no-reply commands joined into as few ``batch`` messages as MAX_MESSAGE allows.

    Each command is already a JSON object under MAX_MESSAGE (``encode`` checked it), so the
    join needs no second serialisation; one that fills a message alone goes alone."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = len(_BATCH_HEAD) + len(_BATCH_TAIL)
    for cmd in commands:
        if chunk and size + len(cmd) + 1 > MAX_MESSAGE:
            out.append(_BATCH_HEAD + b",".join(chunk) + _BATCH_TAIL)
            chunk, size = [], len(_BATCH_HEAD) + len(_BATCH_TAIL)
        if len(_BATCH_HEAD) + len(_BATCH_TAIL) + len(cmd) > MAX_MESSAGE:
            out.append(cmd)
            continue
        chunk.append(cmd)
        size += len(cmd) + 1
    if chunk:
        out.append(_BATCH_HEAD + b",".join(chunk) + _BATCH_TAIL)
    return out
