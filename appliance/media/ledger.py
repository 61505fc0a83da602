"""The media ledger: the PBX side's record of everything it asked the media process to hold.

The engine is the source of truth for media state, so a media process that dies (kill -9, a
crash in a codec) can be given its state back: every leg (its RTP port, the negotiated remote
address, codec, payload types, direction), every bridge and monitor, the players and the
recordings. `MediaClient` updates the ledger with each command it sends and replays it into a
new process (`replay_commands`), in dependency order: legs, then their configuration, then
bridges and monitors, then players and recordings.

What is not kept: SSRC, sequence number and timestamp. The new process starts a new RTP
stream with a fresh SSRC, which RFC 3550 §8.2 lets a receiver treat as a new source (and
random initial values, §5.1, are what the far end expects of a new stream anyway); jitter
buffers, DTMF being sent and answering-machine detection restart from nothing.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ID_NUMBER = re.compile(r"-(\d+)$")


@dataclass
class LegEntry:
    """One leg: its port (the far end sends there, so it must not change) and its media."""

    leg_id: str
    port: int
    configure: dict[str, Any] | None = None  # the last configure_leg arguments
    bridge: str | None = None


@dataclass
class PlayEntry:
    """The player on a leg (one per leg, as in the engine)."""

    play_id: str
    leg_id: str
    source: Any  # wire form
    loop: bool


@dataclass
class RecordingEntry:
    """A recording in progress; ``parts`` are its files, the first one the PBX asked for."""

    rec_id: str
    op: str  # "record" or "record_parties"
    args: dict[str, Any]
    paused: bool = False
    parts: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.parts[-1]


@dataclass(frozen=True)
class RecordingContinued:
    """A recording that goes on in a new file after a media restart (the gap is lost audio)."""

    rec_id: str
    first_path: str
    new_path: str
    part: int  # 2 for the first continuation
    gap_s: float


@dataclass(frozen=True)
class MediaRestarted:
    """Typed report of one media-process restart, for the PBX (recordings, lost legs)."""

    died_at: float  # time.time()
    cause: str
    down_s: float
    legs: int
    lost_legs: list[str]  # legs that could not be re-created (port taken): their calls must end
    recordings: list[RecordingContinued]


def continuation_path(first: str, part: int) -> str:
    """``.../x.wav`` -> ``.../x.part2.wav``: the next file of a recording, beside the first."""
    p = Path(first)
    return str(p.with_name(f"{p.stem}.part{part}{p.suffix}"))


class MediaLedger:
    """Mirror of the media process's state, kept by the client; plain data, no I/O."""

    def __init__(self) -> None:
        self.legs: dict[str, LegEntry] = {}
        self.bridges: dict[str, list[str]] = {}
        self.monitors: dict[str, tuple[list[str], list[str]]] = {}
        self.plays: dict[str, PlayEntry] = {}  # by leg id
        self.recordings: dict[str, RecordingEntry] = {}
        self.max_id = 0  # highest numeric suffix of a play/rec id seen: a new process starts above

    # -- legs ----------------------------------------------------------------------
    def leg_created(self, leg_id: str, port: int) -> None:
        self.legs[leg_id] = LegEntry(leg_id, port)

    def leg_configured(self, leg_id: str, args: dict[str, Any]) -> None:
        self.legs[leg_id].configure = dict(args)

    def leg_destroyed(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        if leg is not None and leg.bridge is not None:
            self._leave(leg_id, leg.bridge)
        self.plays.pop(leg_id, None)
        self.monitors.pop(leg_id, None)
        for sup, (hears, whisper) in list(self.monitors.items()):
            self.monitors[sup] = ([i for i in hears if i != leg_id], [i for i in whisper if i != leg_id])
        # recordings of the leg as a target end with it in the engine; party recordings go on
        for rec_id, rec in list(self.recordings.items()):
            if rec.op == "record" and rec.args.get("target") == leg_id:
                del self.recordings[rec_id]

    # -- bridges and monitors --------------------------------------------------------
    def _leave(self, leg_id: str, bridge_id: str) -> None:
        members = self.bridges.get(bridge_id)
        if members is not None and leg_id in members:
            members.remove(leg_id)

    def bridged(self, bridge_id: str, leg_ids: list[str]) -> None:
        members = self.bridges.setdefault(bridge_id, [])
        for leg_id in leg_ids:
            self.monitors.pop(leg_id, None)  # bridging a monitoring leg ends its monitor (barge)
            leg = self.legs[leg_id]
            if leg.bridge is not None and leg.bridge != bridge_id:
                self._leave(leg_id, leg.bridge)
            leg.bridge = bridge_id
            if leg_id not in members:
                members.append(leg_id)

    def unbridged(self, leg_id: str) -> None:
        leg = self.legs.get(leg_id)
        if leg is not None and leg.bridge is not None:
            self._leave(leg_id, leg.bridge)
            leg.bridge = None

    def bridge_destroyed(self, bridge_id: str) -> None:
        for leg_id in self.bridges.pop(bridge_id, []):
            if leg_id in self.legs:
                self.legs[leg_id].bridge = None
        for rec_id, rec in list(self.recordings.items()):
            if rec.op == "record" and rec.args.get("target") == bridge_id:
                del self.recordings[rec_id]

    def monitored(self, leg_id: str, hears: list[str], whisper_to: list[str]) -> None:
        self.unbridged(leg_id)
        self.monitors[leg_id] = (list(hears), list(whisper_to))

    def unmonitored(self, leg_id: str) -> None:
        self.monitors.pop(leg_id, None)

    # -- players and recordings ------------------------------------------------------
    def _saw_id(self, some_id: str) -> None:
        m = _ID_NUMBER.search(some_id)
        if m:
            self.max_id = max(self.max_id, int(m.group(1)))

    def played(self, play_id: str, leg_id: str, source: Any, loop: bool) -> None:
        self._saw_id(play_id)
        self.plays[leg_id] = PlayEntry(play_id, leg_id, source, loop)

    def play_ended(self, leg_id: str, play_id: str | None = None) -> None:
        entry = self.plays.get(leg_id)
        if entry is not None and (play_id is None or entry.play_id == play_id):
            del self.plays[leg_id]

    def recorded(self, rec_id: str, op: str, args: dict[str, Any]) -> None:
        self._saw_id(rec_id)
        self.recordings[rec_id] = RecordingEntry(rec_id, op, dict(args), parts=[str(args["path"])])

    def record_party_set(self, rec_id: str, index: int, leg_id: str) -> None:
        rec = self.recordings.get(rec_id)
        if rec is not None and rec.op == "record_parties":
            legs = list(rec.args["legs"])
            legs[index] = leg_id
            rec.args["legs"] = legs

    def record_paused(self, rec_id: str, paused: bool) -> None:
        rec = self.recordings.get(rec_id)
        if rec is not None:
            rec.paused = paused

    def record_stopped(self, rec_id: str) -> None:
        self.recordings.pop(rec_id, None)

    # -- replay ------------------------------------------------------------------------
    def ports(self) -> list[int]:
        return [leg.port for leg in self.legs.values()]

    def replay_commands(self, lost: set[str], died_at: float) -> tuple[list[tuple[str, dict[str, Any]]],
                                                                       list[RecordingContinued]]:
        """The commands that rebuild this state in a new process (legs in ``lost`` left out),
        and the recordings that continue in a new file (their ledger entries move to it)."""
        cmds: list[tuple[str, dict[str, Any]]] = []
        legs = {i: leg for i, leg in self.legs.items() if i not in lost}
        for leg in legs.values():
            cmds.append(("create_leg", {"leg_id": leg.leg_id, "port": leg.port}))
            if leg.configure is not None:
                cmds.append(("configure_leg", dict(leg.configure)))
        for bridge_id, members in self.bridges.items():
            alive = [i for i in members if i in legs]
            if alive:
                cmds.append(("bridge", {"bridge_id": bridge_id, "leg_ids": alive}))
        for sup, (hears, whisper) in self.monitors.items():
            if sup in legs:
                cmds.append(("monitor", {"leg_id": sup, "hears": [i for i in hears if i in legs],
                                         "whisper_to": [i for i in whisper if i in legs]}))
        for play in self.plays.values():
            if play.leg_id in legs:  # a prompt starts again from its beginning
                cmds.append(("play", {"leg_id": play.leg_id, "source": play.source, "loop": play.loop,
                                      "play_id": play.play_id}))
        continued: list[RecordingContinued] = []
        gap = max(0.0, time.time() - died_at)
        for rec in self.recordings.values():
            args = dict(rec.args)
            if rec.op == "record_parties":
                args["legs"] = [i if i in legs else "" for i in args["legs"]]
            elif args.get("target") not in legs and args.get("target") not in self.bridges:
                continue
            part = len(rec.parts) + 1
            new_path = continuation_path(rec.parts[0], part)
            args["path"] = new_path
            rec.parts.append(new_path)
            rec.args["path"] = new_path
            cmds.append((rec.op, dict(args, rec_id=rec.rec_id)))
            if rec.paused:
                cmds.append(("pause_record", {"rec_id": rec.rec_id}))
            continued.append(RecordingContinued(rec.rec_id, rec.parts[0], new_path, part, gap))
        return cmds, continued
