"""SDP offer/answer for anchored media (RFC 4566 syntax, RFC 3264 negotiation).

The engine terminates every SDP itself: each call leg gets its own RTP port in our
media engine, so we only need the audio stream's address, codecs, telephone-event
payload type and direction, not a general SDP model.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

# Static payload types of RFC 3551 that we carry; dynamic ones come from a=rtpmap.
STATIC_PAYLOAD_TYPES = {0: "PCMU", 8: "PCMA", 9: "G722"}
CODEC_PAYLOAD_TYPES = {name: pt for pt, name in STATIC_PAYLOAD_TYPES.items()}
SUPPORTED_CODECS = ("PCMU", "PCMA", "G722")
TELEPHONE_EVENT_PT = 101
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3264 §6.1: the answer's direction mirrors the offer's.
ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}

_session_ids = itertools.count(int(time.time()))


class SdpError(ValueError):
    """The SDP cannot be used; carries the SIP status the request should get."""

    def __init__(self, message: str, status: int = 488) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class AudioOffer:
    """What one side says about its audio stream."""

    host: str
    port: int
    codecs: list[tuple[int, str]]  # (payload type, codec name) in preference order
    telephone_event_pt: int | None
    direction: str = "sendrecv"
    ptime: int = 20
    unknown_payloads: list[int] = field(default_factory=list)

    @property
    def on_hold(self) -> bool:
        """RFC 3264 §8.4 hold: sendonly/inactive, or the RFC 2543 c=0.0.0.0 form."""
        return self.direction in ("sendonly", "inactive") or self.host == "0.0.0.0"


def parse(text: str) -> AudioOffer:
    """Parse the first audio m-line of an SDP body; raises SdpError (488 / 400)."""
    session_host: str | None = None
    media_host: str | None = None
    port: int | None = None
    payloads: list[int] = []
    rtpmap: dict[int, str] = {}
    direction = "sendrecv"
    ptime = 20
    in_audio = False
    seen_audio = False
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            if seen_audio:
                in_audio = False
                continue
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"malformed m-line: {value!r}", 400)
            in_audio = parts[0] == "audio"
            if not in_audio:
                continue
            seen_audio = True
            try:
                port = int(parts[1].split("/")[0])
                payloads = [int(p) for p in parts[3:]]
            except ValueError as exc:
                raise SdpError(f"malformed m-line: {value!r}", 400) from exc
            if not 0 <= port <= 65535:
                raise SdpError(f"RTP port out of range: {port}", 400)
            if any(not 0 <= p <= 127 for p in payloads):
                # RFC 3550 5.1: the payload type is 7 bits (found by fuzz/sdp_offer: 962 went
                # through to the media engine as a telephone-event type).
                raise SdpError(f"payload type out of range 0-127: {value!r}", 400)
        elif kind == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN":
                raise SdpError(f"malformed c-line: {value!r}", 400)
            if in_audio:
                media_host = parts[2].split("/")[0]
            elif not seen_audio:
                session_host = parts[2].split("/")[0]
        elif kind == "a" and (in_audio or not seen_audio):
            name, _, rest = value.partition(":")
            if name in DIRECTIONS:
                direction = name
            elif name == "rtpmap" and in_audio:
                pt_text, _, encoding = rest.partition(" ")
                try:
                    rtpmap[int(pt_text)] = encoding.split("/")[0].upper()
                except ValueError as exc:
                    raise SdpError(f"malformed rtpmap: {value!r}", 400) from exc
            elif name == "ptime":
                try:
                    ptime = int(rest)
                except ValueError:
                    ptime = 20
    if not seen_audio or port is None:
        raise SdpError("no audio stream in SDP", 488)
    host = media_host or session_host
    if host is None:
        raise SdpError("no connection address in SDP", 400)
    codecs: list[tuple[int, str]] = []
    telephone_event: int | None = None
    unknown: list[int] = []
    for pt in payloads:
        name = rtpmap.get(pt) or STATIC_PAYLOAD_TYPES.get(pt, "")
        if name == "TELEPHONE-EVENT":
            telephone_event = pt
        elif name in SUPPORTED_CODECS:
            codecs.append((pt, name))
        else:
            unknown.append(pt)
    if port == 0:
        direction = "inactive"
    return AudioOffer(host, port, codecs, telephone_event, direction, ptime, unknown)


def choose_codec(offer: AudioOffer, allowed: tuple[str, ...] = SUPPORTED_CODECS) -> tuple[int, str]:
    """First codec of the offer we also allow (the offerer's preference wins, RFC 3264 §6.1)."""
    for pt, name in offer.codecs:
        if name in allowed:
            return pt, name
    raise SdpError("no common codec (we speak " + ", ".join(allowed) + ")", 488)


def build(
    host: str,
    port: int,
    codecs: list[tuple[int, str]],
    telephone_event_pt: int | None = TELEPHONE_EVENT_PT,
    direction: str = "sendrecv",
    session_id: int | None = None,
    version: int = 1,
) -> str:
    """Build an SDP body for one audio stream."""
    sid = session_id if session_id is not None else next(_session_ids)
    pts = [str(pt) for pt, _ in codecs]
    if telephone_event_pt is not None:
        pts.append(str(telephone_event_pt))
    lines = [
        "v=0",
        f"o=plateau {sid} {version} IN IP4 {host}",
        "s=plateau",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(pts)}",
    ]
    for pt, name in codecs:
        # RFC 3551 §4.5.2: G.722 is advertised with an 8000 Hz clock.
        lines.append(f"a=rtpmap:{pt} {name}/8000")
    if telephone_event_pt is not None:
        lines.append(f"a=rtpmap:{telephone_event_pt} telephone-event/8000")
        lines.append(f"a=fmtp:{telephone_event_pt} 0-16")
    lines.append("a=ptime:20")
    lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


def offer_codecs(preference: tuple[str, ...] = SUPPORTED_CODECS) -> list[tuple[int, str]]:
    """Our own offer's codec list with their static payload types."""
    return [(CODEC_PAYLOAD_TYPES[name], name) for name in preference]
