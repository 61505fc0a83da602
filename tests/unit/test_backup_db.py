"""`plateau backup create|restore`: a populated appliance round-trips, table by table and file by file,
into an empty data directory; damaged archives and a running engine are refused and change nothing.

The data directory is filled through the store's own APIs (demo seeding, CDRs, the queue log, the
recorder's index, interactions and surveys, voicemail, web users). The running-engine refusal uses a
real engine (tests/peers/engine.py) on the very data directory being restored.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import sys
import tarfile
import wave
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.cli import main as plateau
from appliance.pbx.recording import Recorder
from appliance.store import interactions, queue_log
from appliance.store.db import Store
from appliance.store.demo import seed_demo
from appliance.store.migrations import MIGRATIONS
from appliance.system import backup
from appliance.voicemail.mailbox import Mailboxes
from tests.peers.engine import Engine
from web import accounts

EXAMPLE_FLOW = REPO_ROOT / "appliance" / "ivr" / "examples" / "reception.yaml"
T0 = 1_700_000_000.0


def _wav(seconds: float = 1.5, channels: int = 1, seed: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes((seed + i) % 251 for i in range(int(8000 * seconds) * 2 * channels)))
    return buf.getvalue()


class _WavMedia:
    """The media engine's recording calls, writing a real WAV where the engine would."""

    def __init__(self) -> None:
        self.n = 0

    def record_parties(self, path: str, legs: list[str], stereo: bool) -> str:
        self.n += 1
        Path(path).write_bytes(_wav(channels=2 if stereo else 1, seed=self.n))
        return f"rec{self.n}"

    def stop_record(self, rec_id: str) -> None:
        pass


def populate(data: Path) -> None:
    """A working appliance: demo config, calls with CDRs, queue events, recordings, voicemail, users."""
    data.mkdir(parents=True, exist_ok=True)
    (data / "flows").mkdir()
    shutil.copyfile(EXAMPLE_FLOW, data / "flows" / "reception.yaml")
    (data / "sounds" / "greetings").mkdir(parents=True)
    (data / "sounds" / "moh.wav").write_bytes(_wav(seed=7))
    (data / "sounds" / "greetings" / "welcome.wav").write_bytes(_wav(seed=8))
    with Store(data / backup.DB_NAME) as store:
        seed_demo(store)
        clock = iter(T0 + i for i in range(10_000))
        recorder = Recorder(store, _WavMedia(), data / "recordings", lambda: next(clock))
        for i in range(5):
            call_id = f"call-{i}@plateau"
            cdr = store.cdr_open(call_id, f"+3361234567{i}", f"Caller {i}", "6001", "inbound", T0 + i * 60)
            store.cdr_answer(cdr, T0 + i * 60 + 5)
            queue_log.record(store, queue_log.QueueEvent(T0 + i * 60, "ENTER", call_id, "sales", caller="x"))
            queue_log.record(store, queue_log.QueueEvent(T0 + i * 60 + 5, "CONNECT", call_id, "sales", "2001",
                                                         wait_s=5.0))
            rec = recorder.start(call_id, cdr, ["leg-a", "leg-b"], "stereo" if i % 2 else "mixed", "queue",
                                 queue="sales", agent="2001")
            assert rec is not None
            recorder.stop(rec)
            interaction = interactions.open_interaction(store, f"+3361234567{i}", "sales", call_id, T0 + i * 60)
            interactions.assign_agent(store, interaction, "2001", T0 + i * 60 + 5)
            interactions.record_survey(store, call_id, "sales", "2001", 4, 9, 2, T0 + i * 60 + 99, interaction)
            store.cdr_close(cdr, T0 + i * 60 + 90, "ANSWERED", "normal")
        boxes = Mailboxes(store, data / "voicemail")
        for i in range(2):
            path = boxes.new_path("1001").with_name(f"msg-{i}.wav")
            path.write_bytes(_wav(seconds=2.0, seed=20 + i))
            assert boxes.add("1001", f"+336000000{i}", "", path, at=T0 + i) is not None
        accounts.create_user(store, "alice", "correct-horse-battery", "admin", T0)
        accounts.create_user(store, "bob", "another-long-password", "supervisor", T0)


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, in primary-key order."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: conn.execute(f'SELECT * FROM "{n}" ORDER BY 1, 2').fetchall() for n in names}
    finally:
        conn.close()


def files(data: Path) -> dict[str, bytes]:
    return {p.relative_to(data).as_posix(): p.read_bytes() for part in ("flows", "sounds", "recordings", "voicemail")
            for p in sorted((data / part).rglob("*")) if p.is_file()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    data = tmp_path / "src" / "data"
    populate(data)
    return data


def _create(data: Path, out: Path, *extra: str) -> None:
    assert plateau(["backup", "create", str(out), "--data-dir", str(data), *extra]) == 0
    assert out.is_file() and not out.with_name(f".{out.name}.tmp").exists()
    assert not out.with_name(f".{out.name}.partial").exists()


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _repack(members: dict[str, bytes], out: Path, *, fix_manifest: bool = True) -> Path:
    if fix_manifest:
        manifest = json.loads(members["manifest.json"])
        manifest["files"] = {n: hashlib.sha256(d).hexdigest() for n, d in members.items() if n != "manifest.json"}
        members = {**members, "manifest.json": json.dumps(manifest).encode()}
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


# -- round trip ------------------------------------------------------------------------------------
def test_round_trip_into_an_empty_data_dir(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "full.tar.gz"
    _create(source, archive, "--recordings")
    names = set(_members(archive))
    assert {"manifest.json", "config.yaml", backup.DB_MEMBER, "flows/reception.yaml", "sounds/moh.wav",
            "recordings.json"} <= names
    assert sum(n.startswith("recordings/") for n in names) == 5 and sum(n.startswith("voicemail/") for n in names) == 2

    target = tmp_path / "dst" / "data"
    assert not target.exists()
    assert plateau(["backup", "restore", str(archive), "--data-dir", str(target)]) == 0
    assert "restored the backup" in capsys.readouterr().out

    before, after = tables(source / backup.DB_NAME), tables(target / backup.DB_NAME)
    assert set(before) == set(after)
    voicemail_paths = [r[6] for r in after.pop("voicemail")]
    voicemail_before = before.pop("voicemail")
    for name in before:
        assert after[name] == before[name], name
    counts = {n: len(before[n]) for n in ("extensions", "cdr", "queue_log", "recordings", "interactions",
                                          "survey_results", "web_users", "agents", "queues")}
    assert counts == {"extensions": 10, "cdr": 5, "queue_log": 10, "recordings": 5, "interactions": 5,
                      "survey_results": 5, "web_users": 2, "agents": 3, "queues": 2}
    # Voicemail rows hold absolute paths: they now point into the target directory, at equal files.
    assert len(voicemail_paths) == len(voicemail_before) == 2
    for row, path in zip(voicemail_before, voicemail_paths, strict=True):
        assert path == str(target.resolve() / Path(row[6]).relative_to(source.resolve()))
        assert Path(path).read_bytes() == Path(row[6]).read_bytes()
    assert files(target) == files(source)
    # The restored database opens with the software's Store and serves logins.
    with Store(target / backup.DB_NAME) as store:
        assert accounts.authenticate(store, "alice", "correct-horse-battery", T0 + 10) is not None
        assert store.schema_version() == len(MIGRATIONS)
    assert not list(target.glob(".restore-*"))


def test_restore_replaces_a_changed_database(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "full.tar.gz"
    _create(source, archive)
    snapshot = tables(source / backup.DB_NAME)
    wal = source / "plateau.db-wal"
    with Store(source / backup.DB_NAME) as store:
        store.delete_extension("1005")
        store.cdr_open("late", "1", "", "2", "inbound", T0 + 9999)
        kept = wal.read_bytes()  # what an engine killed now would leave beside the database
    wal.write_bytes(kept)  # the restore must remove it, or SQLite would replay it into the restored file
    (source / "flows" / "reception.yaml").unlink()
    assert plateau(["backup", "restore", str(archive), "--data-dir", str(source)]) == 0
    assert tables(source / backup.DB_NAME) == snapshot
    assert (source / "flows" / "reception.yaml").read_bytes() == EXAMPLE_FLOW.read_bytes()


def test_config_only_restore_and_archive_without_database(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "full.tar.gz"
    _create(source, archive)
    target = tmp_path / "cfg" / "data"
    assert plateau(["backup", "restore", str(archive), "--data-dir", str(target), "--config-only"]) == 0
    restored = tables(target / backup.DB_NAME)
    assert len(restored["extensions"]) == 10 and restored["cdr"] == [] and restored["web_users"] == []
    # A web-UI (configuration only) archive cannot be restored as a full one.
    with Store(source / backup.DB_NAME) as store, open(tmp_path / "cfg.tar.gz", "wb") as out:
        backup.write_backup(out, store, source, "test")
    assert plateau(["backup", "restore", str(tmp_path / "cfg.tar.gz"), "--data-dir", str(tmp_path / "x")]) == 2


# -- refusals that change nothing --------------------------------------------------------------------
def _target_with_data(tmp_path: Path) -> tuple[Path, dict[str, Any], dict[str, bytes]]:
    target = tmp_path / "dst" / "data"
    populate(target)
    with Store(target / backup.DB_NAME) as store:
        store.delete_extension("1003")  # differs from the archive, so a wrongful restore would show
    return target, tables(target / backup.DB_NAME), files(target)


def _refused(archive: Path, target: Path, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert plateau(["backup", "restore", str(archive), "--data-dir", str(target)]) == 2
    err = capsys.readouterr().err
    assert "nothing changed" in err and expected in err, err
    assert not list(target.glob(".restore-*"))


def test_damaged_archives_are_refused_and_change_nothing(source: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "full.tar.gz"
    _create(source, archive)
    members = _members(archive)
    target, db_before, files_before = _target_with_data(tmp_path)
    db = members[backup.DB_MEMBER]

    bad_sum = _repack({**members, backup.DB_MEMBER: db[:-1] + bytes([db[-1] ^ 1])}, tmp_path / "a.tar.gz",
                      fix_manifest=False)
    _refused(bad_sum, target, "database.sqlite: checksum does not match the manifest", capsys)

    truncated = _repack({**members, backup.DB_MEMBER: db[: len(db) // 2]}, tmp_path / "b.tar.gz")
    _refused(truncated, target, "database.sqlite:", capsys)

    newer_path = tmp_path / "newer.sqlite"
    newer_path.write_bytes(db)
    conn = sqlite3.connect(newer_path)
    with conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", (len(MIGRATIONS) + 1,))
    conn.close()
    newer = _repack({**members, backup.DB_MEMBER: newer_path.read_bytes()}, tmp_path / "c.tar.gz")
    _refused(newer, target, f"schema version {len(MIGRATIONS) + 1} is newer than this software", capsys)

    dropped_path = tmp_path / "dropped.sqlite"
    dropped_path.write_bytes(db)
    conn = sqlite3.connect(dropped_path)
    conn.execute("DROP TABLE web_users")
    conn.close()
    dropped = _repack({**members, backup.DB_MEMBER: dropped_path.read_bytes()}, tmp_path / "d.tar.gz")
    _refused(dropped, target, "tables missing for schema version", capsys)

    cut = archive.read_bytes()
    (tmp_path / "e.tar.gz").write_bytes(cut[: len(cut) * 2 // 3])
    _refused(tmp_path / "e.tar.gz", target, "not a readable tar.gz archive", capsys)

    assert tables(target / backup.DB_NAME) == db_before and files(target) == files_before


def test_restore_refused_while_the_engine_runs(source: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A real engine on the target data directory: the check reads its api.json and asks its API."""
    archive = tmp_path / "full.tar.gz"
    _create(source, archive)
    eng = Engine(tmp_path / "engine")
    eng.start()
    try:
        target = eng.data_dir
        before = tables(target / backup.DB_NAME)
        assert backup.engine_running(target)
        assert plateau(["backup", "restore", str(archive), "--data-dir", str(target)]) == 2
        err = capsys.readouterr().err
        assert "the engine is running" in err and "nothing changed" in err
        assert tables(target / backup.DB_NAME) == before
    finally:
        eng.stop()
    # Stopped (api.json removed at exit), the same restore goes through.
    assert backup.engine_running(eng.data_dir) is None
    assert plateau(["backup", "restore", str(archive), "--data-dir", str(eng.data_dir)]) == 0
    assert tables(eng.data_dir / backup.DB_NAME)["web_users"] == tables(source / backup.DB_NAME)["web_users"]


def test_stale_api_file_of_a_crashed_engine_does_not_block(source: Path, tmp_path: Path) -> None:
    archive = tmp_path / "full.tar.gz"
    _create(source, archive)
    target = tmp_path / "dst" / "data"
    target.mkdir(parents=True)
    (target / "api.json").write_text(json.dumps({"url": "http://127.0.0.1:9/", "token": "x"}))  # port 9: closed
    assert backup.engine_running(target) is None
    assert plateau(["backup", "restore", str(archive), "--data-dir", str(target)]) == 0
