"""Call recording: policy, files, their index in the database, PCI pauses, retention, repair.

A recording holds what each party *sends* (the media engine's party recording): stereo puts the
caller on the left channel and the agent (or callee) on the right, so a quality reviewer can
follow each side; mixed is one channel. Files live under ``<data>/recordings/YYYY/MM/DD/`` and
each has a row in ``recordings`` linked to the call's CDR.

Pauses write silence (the timeline stays true) and are counted; they come from the agent's
in-call feature code or, automatically, from an IVR node marked sensitive (card capture, PCI DSS).
A file being written when the engine is killed keeps a header claiming 2 GiB; `repair_open`
rewrites its sizes at the next start so it stays playable, and closes its row. Retention is
a built-in job: files older than the configured days are deleted with their rows.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.media.protocol import MediaError
from appliance.media.wavfile import WavError, repair_wav
from appliance.pbx.ports import MediaPort
from appliance.schema.settings import RETENTION_SETTING, SETTINGS, SettingInvalid
from appliance.store import recordings
from appliance.store.db import Store

log = logging.getLogger("plateau.recording")


@dataclass
class ActiveRecording:
    """A recording the media engine is writing for a call."""

    row_id: int
    rec_id: str
    path: Path
    legs: list[str]
    paused: bool = False
    paused_since: float | None = None
    paused_seconds: float = 0.0


def node_directory(node: str) -> str:
    """An engine's name as one directory name: no separator, no dot-only name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in node)[:64]
    return safe if safe.strip(".") else "_" + safe


class Recorder:
    """Starts, pauses and stops recordings and keeps their index; one per switchboard."""

    def __init__(self, store: Store, media: MediaPort, root: Path, clock: Callable[[], float],
                 node: str = "") -> None:
        """``node``: this engine's name where several engines share the store and the recordings
        directory. Its files then go under ``<root>/<node>/``, and at start-up it repairs only
        those: a row another engine left open is a recording that engine is still writing."""
        self.store = store
        self.media = media
        self.root = root
        self.clock = clock
        self.node_dir = node_directory(node) if node else ""

    def start(self, call_id: str, cdr_id: int | None, legs: list[str], mode: str, reason: str,
              queue: str = "", agent: str = "") -> ActiveRecording | None:
        """Record `legs` (caller first) in `mode` "stereo" or "mixed"; None if it cannot start.

        A leg may be "" (the agent not connected yet): its channel is silent until `add_leg`.
        A recording that cannot start never fails the call: it is logged, the call goes on.
        """
        now = self.clock()
        day = dt.datetime.fromtimestamp(now, dt.UTC)
        base = self.root / self.node_dir if self.node_dir else self.root
        directory = base / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in call_id)[:80]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{day:%H%M%S}-{safe_id}-{reason}.wav"
            rec_id = self.media.record_parties(str(path), legs, mode == "stereo")
        except (OSError, MediaError) as exc:
            log.error("recording of %s could not start: %s", call_id, exc)
            return None
        row_id = recordings.start(  # kept in memory while the disk is full (store/deferred.py)
            self.store, call_id, cdr_id, str(path.relative_to(self.root)), mode, reason, queue, agent, now)
        log.info("recording %s (%s, %s) to %s", call_id, mode, reason, path)
        return ActiveRecording(row_id, rec_id, path, list(legs))

    def add_leg(self, rec: ActiveRecording, index: int, leg_id: str, agent: str = "", queue: str = "") -> None:
        """Fill a party slot left empty at start (the agent answered, from `queue`)."""
        try:
            self.media.record_set_party(rec.rec_id, index, leg_id)
        except MediaError as exc:
            log.error("recording %s: cannot add %s: %s", rec.rec_id, leg_id, exc)
            return
        rec.legs[index] = leg_id
        if agent or queue:
            recordings.set_party(self.store, rec.row_id, agent, queue)

    def pause(self, rec: ActiveRecording, paused: bool, why: str) -> None:
        """Pause (silence) or resume; idempotent. The client waits for the media engine's reply,
        so when this returns the card number being spoken is no longer written."""
        if rec.paused == paused:
            return
        try:
            if paused:
                self.media.pause_record(rec.rec_id)
            else:
                self.media.resume_record(rec.rec_id)
        except MediaError as exc:
            log.error("recording %s: pause=%s failed: %s", rec.rec_id, paused, exc)
            return
        now = self.clock()
        rec.paused = paused
        if paused:
            rec.paused_since = now
        elif rec.paused_since is not None:
            rec.paused_seconds += now - rec.paused_since
            rec.paused_since = None
        log.info("recording %s %s (%s)", rec.rec_id, "paused" if paused else "resumed", why)

    def continued(self, rec: ActiveRecording, new_path: Path, part: int, gap_s: float, died_at: float) -> None:
        """The media process died and the recording goes on in ``new_path``: the current row
        ends when it died, and a new row (same call, same CDR) says which part it is and how
        long the gap was, so a reviewer knows audio is missing there."""
        now = self.clock()
        rec.row_id = recordings.continue_in(
            self.store, rec.row_id, died_at, f"media process died; continued in part {part}",
            str(new_path.relative_to(self.root)), now,
            f"part {part}: {gap_s:.2f} s gap before it (media process restart)")
        rec.path = new_path
        log.warning("recording %s continues in %s after a %.2f s gap", rec.rec_id, new_path, gap_s)

    def stop(self, rec: ActiveRecording) -> None:
        """Finish the file and close its row (durably: the index must match the files)."""
        try:
            self.media.stop_record(rec.rec_id)
        except MediaError as exc:  # the media engine may already have stopped it with its legs
            log.debug("stop_record %s: %s", rec.rec_id, exc)
        now = self.clock()
        if rec.paused and rec.paused_since is not None:
            rec.paused_seconds += now - rec.paused_since
        recordings.stop(self.store, rec.row_id, now, rec.paused_seconds)

    def failed(self, path: str, error: str, seconds: float) -> None:
        """The media engine stopped a recording the disk refused (ENOSPC): the file keeps a valid
        WAV of its first ``seconds``; its row says so (written, or deferred, like the CDR)."""
        try:
            rel = str(Path(path).relative_to(self.root))
        except ValueError:
            rel = path
        log.error("recording %s stopped after %.1f s: %s (the call goes on)", rel, seconds, error)
        recordings.stopped_early(self.store, rel, seconds, f"stopped after {seconds:.1f} s: {error}")

    # -- start-up and housekeeping ---------------------------------------------------------------
    def repair_open(self) -> int:
        """Start-up: make every file left open by a killed engine playable, and close its row
        (on a site: this engine's files only, see `__init__`)."""
        rows = [row for row in recordings.open_rows(self.store)
                if not self.node_dir or row.path.startswith(f"{self.node_dir}/")]
        for row in rows:
            path = self.root / row.path
            note, seconds = "repaired", 0.0
            try:
                repair_wav(path)
                with wave.open(str(path), "rb") as w:
                    seconds = w.getnframes() / float(w.getframerate())
            except (OSError, WavError, wave.Error, EOFError) as exc:
                note = f"unrecoverable: {exc}"
            log.warning("recording %s was open when the engine stopped: %s", path, note)
            recordings.close_repaired(self.store, row.id, row.started_at + seconds, note)
        return len(rows)

    def purge(self, now: float | None = None) -> int:
        """Delete recordings older than the retention setting (days; 0 keeps them for ever)."""
        try:
            days = SETTINGS[RETENTION_SETTING].number(self.store.get_setting(RETENTION_SETTING))
        except SettingInvalid as exc:
            log.error("%s: nothing purged", exc)
            return 0
        if days <= 0:
            return 0
        cutoff = (now if now is not None else self.clock()) - days * 86400.0
        rows = recordings.closed_before(self.store, cutoff)
        for row_id, rel in rows:
            try:
                os.unlink(self.root / rel)
            except FileNotFoundError:
                pass
            except OSError as exc:  # keep the row: the file is still there and still counted
                log.error("retention: cannot delete %s: %s", rel, exc)
                continue
            recordings.delete(self.store, row_id)
        if rows:
            log.info("retention: deleted %d recordings older than %d days", len(rows), days)
        return len(rows)


def recordings_for_call(store: Store, call_id: str) -> list[dict[str, Any]]:
    """The recordings of one call (SIP Call-ID of its first leg), for the API and tests."""
    return [dataclasses.asdict(row) for row in recordings.for_call(store, call_id)]
