"""Keys sent in SIP INFO bodies: ``application/dtmf-relay`` and ``application/dtmf``.

Neither has an RFC; both are de-facto formats (Cisco's dtmf-relay, used by most desk phones and
by pjsua: ``Signal=5`` CRLF ``Duration=160``, duration in ms; ``application/dtmf``: the bare
key). Some phones send ``Signal=10`` / ``11`` for ``*`` / ``#``, as RFC 4733 event codes do.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.media.dtmf import DIGITS, clamp_duration

DEFAULT_DURATION_MS = 100  # a body without Duration=
_BY_CODE = {str(i): d for i, d in enumerate(DIGITS)}  # "10" -> "*", "11" -> "#" (RFC 4733 3.2)


@dataclass(frozen=True)
class InfoKey:
    digit: str
    duration_ms: int


def _digit(text: str) -> str | None:
    text = text.strip().upper()
    if len(text) == 1 and text in DIGITS:
        return text
    return _BY_CODE.get(text)


def parse_info_key(body: str, content_type: str = "application/dtmf-relay") -> InfoKey | None:
    """The key an INFO body carries, or None when it carries none we can relay (flash, junk).
    Duration is range-checked here, where it enters: clamped to what can be sent."""
    mtype = content_type.split(";")[0].strip().lower()
    if mtype == "application/dtmf":
        digit = _digit(body)
        return InfoKey(digit, DEFAULT_DURATION_MS) if digit else None
    fields: dict[str, str] = {}
    for line in body.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields[name.strip().lower()] = value.strip()
    digit = _digit(fields.get("signal", ""))
    if digit is None:
        return None
    try:
        duration = int(fields.get("duration", DEFAULT_DURATION_MS))
    except ValueError:
        duration = DEFAULT_DURATION_MS
    return InfoKey(digit, clamp_duration(duration))
