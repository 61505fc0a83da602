"""The recordings index: retention purge and the start-up repair of files left open by a kill."""
from __future__ import annotations

import struct
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.media.wavfile import WavRecorder
from appliance.pbx.recording import Recorder, recordings_for_call
from appliance.schema.settings import RETENTION_SETTING
from appliance.store.db import Store

DAY = 86400.0
NOW = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "plateau.db")
    yield s
    s.close()


def add_row(store: Store, root: Path, name: str, started: float, ended: float | None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")
    with store.transaction():
        store.execute("INSERT INTO recordings (call_id, path, mode, reason, started_at, ended_at)"
                    " VALUES (?, ?, 'stereo', 'queue', ?, ?)", (name, name, started, ended))
    return path


def test_retention_deletes_old_files_and_rows_only(store: Store, tmp_path: Path) -> None:
    rec = Recorder(store, media=None, root=tmp_path, clock=lambda: NOW)
    old = add_row(store, tmp_path, "old.wav", NOW - 100 * DAY, NOW - 100 * DAY + 60)
    recent = add_row(store, tmp_path, "recent.wav", NOW - 10 * DAY, NOW - 10 * DAY + 60)
    writing = add_row(store, tmp_path, "writing.wav", NOW - 200 * DAY, None)  # never purged while open
    assert rec.purge() == 1  # the default: 90 days
    assert not old.exists() and recent.exists() and writing.exists()
    assert recordings_for_call(store, "old.wav") == []
    store.set_setting(RETENTION_SETTING, "5")
    assert rec.purge() == 1 and not recent.exists()
    store.set_setting(RETENTION_SETTING, "0")  # keep for ever
    add_row(store, tmp_path, "older.wav", NOW - 900 * DAY, NOW - 900 * DAY + 1)
    assert rec.purge() == 0
    store.set_setting(RETENTION_SETTING, "ninety")  # a bad setting purges nothing, loudly
    assert rec.purge() == 0


def test_repair_closes_open_rows_and_makes_the_file_readable(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "2026" / "cut.wav"
    path.parent.mkdir(parents=True)
    writer = WavRecorder(str(path), 16000, 2)
    writer.write(np.full((16000, 2), 1000, dtype=np.int16))
    writer._f.close()  # what the periodic flush leaves on disk when the process is killed: no header fix
    with store.transaction():
        store.execute("INSERT INTO recordings (call_id, path, mode, reason, started_at)"
                    " VALUES ('c1', '2026/cut.wav', 'stereo', 'queue', ?)", (NOW,))
    assert struct.unpack("<I", path.read_bytes()[4:8])[0] > 10**9  # still claims 2 GiB
    rec = Recorder(store, media=None, root=tmp_path, clock=lambda: NOW + 5)
    assert rec.repair_open() == 1
    [row] = recordings_for_call(store, "c1")
    assert row["note"] == "repaired" and row["ended_at"] == pytest.approx(NOW + 1.0)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getnframes()) == (2, 16000)
    assert rec.repair_open() == 0  # nothing left open


def test_on_a_site_each_engine_writes_under_its_node_and_repairs_only_its_own(store: Store, tmp_path: Path) -> None:
    """Engines sharing the store and the recordings directory: engine two starting up must not
    "repair" (close) the recording engine one is still writing, only what it left open itself."""
    class Media:
        def record_parties(self, path: str, legs: list[str], stereo: bool) -> str:
            Path(path).write_bytes(b"")  # the media process opens the file
            return "rec-1"

    one = Recorder(store, media=Media(), root=tmp_path, clock=lambda: NOW, node="one")  # type: ignore[arg-type]
    live = one.start("call-live", None, ["leg-a"], "mixed", "always")
    assert live is not None and live.path.relative_to(tmp_path).parts[0] == "one"
    left = add_row(store, tmp_path, "two/2027/01/15/cut.wav", NOW - 60, None)  # engine two was killed
    two = Recorder(store, media=None, root=tmp_path, clock=lambda: NOW + 5, node="two")
    assert two.repair_open() == 1
    [repaired] = recordings_for_call(store, "two/2027/01/15/cut.wav")
    assert repaired["ended_at"] is not None and left.exists()
    [still_open] = recordings_for_call(store, "call-live")
    assert still_open["ended_at"] is None  # engine one's recording goes on, untouched
    # A name that is not a directory name is made one.
    assert Recorder(store, None, tmp_path, lambda: NOW, node="../x").node_dir == ".._x"  # type: ignore[arg-type]
