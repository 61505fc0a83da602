"""Events the media engine reports to the PBX (typed records, never strings)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class DtmfEvent:
    """A digit received on a leg, from RFC 4733 telephone-events (reported when the event
    ends, with its length) or detected in-band (reported once heard, ``duration_ms`` a default)."""

    leg_id: str
    digit: str
    source: Literal["rfc4733", "inband"]
    duration_ms: int = 100


@dataclass(frozen=True)
class PlaybackFinished:
    """A non-looping player reached the end of its file."""

    leg_id: str
    play_id: str


@dataclass(frozen=True)
class RtpTimeout:
    """No RTP arrived for ``seconds`` on an active leg (reported once until RTP resumes)."""

    leg_id: str
    seconds: float


@dataclass(frozen=True)
class MachineDetected:
    """The answering-machine detector's one verdict on a leg (``detect_machine``).

    ``verdict`` is HUMAN, MACHINE or NOTSURE; ``cause`` says what decided it (long greeting,
    silence after a short hello...); ``ms`` is how much received audio it took.
    """

    leg_id: str
    verdict: str
    cause: str
    ms: int


@dataclass(frozen=True)
class RecordingFailed:
    """A recording could not be written (ENOSPC on the data directory, an I/O error): it was
    stopped, and ``path`` keeps a valid WAV of what was written (``seconds`` of audio)."""

    rec_id: str
    path: str
    error: str
    seconds: float


MediaEvent = DtmfEvent | PlaybackFinished | RtpTimeout | MachineDetected | RecordingFailed
EVENT_TYPES: dict[str, type] = {c.__name__: c for c in (DtmfEvent, PlaybackFinished, RtpTimeout, MachineDetected,
                                                         RecordingFailed)}


def event_to_dict(ev: MediaEvent) -> dict[str, Any]:
    """Wire form of an event."""
    return {"type": type(ev).__name__, **asdict(ev)}


def event_from_dict(d: dict[str, Any]) -> MediaEvent:
    """Event from its wire form; ValueError for an unknown type."""
    fields = dict(d)
    cls = EVENT_TYPES.get(fields.pop("type", ""))
    if cls is None:
        raise ValueError(f"unknown media event {d!r}")
    return cls(**fields)  # type: ignore[no-any-return]
