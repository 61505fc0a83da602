"""Restore: check a backup archive completely, then apply it (the format is backup_archive.py).

A restore is checked completely before anything is written (manifest and checksums, the YAML
through parse_config, every flow through load_flow, every WAV with the wave module, every tar
member for path escapes, links and devices), so a bad archive changes nothing. Applying it then
stages flows and prompts beside the data directory, imports the configuration in one database
transaction and swaps the staged directories in by rename. What a restore would change, row by
row, is appliance/system/restore_diff.py.

A database is checked before it is restored (it opens, ``PRAGMA integrity_check`` says ok, its
schema version is not newer than this software's, the tables of that version are all there)
and restored only while the engine is stopped: written beside the live file, renamed over it,
stale -wal/-shm removed. The web UI restores the configuration part only, live.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from appliance.ivr.flow import FlowError, load_flow
from appliance.store.config_yaml import ConfigData, import_config, parse_config, removal_errors
from appliance.store import recordings
from appliance.store.db import Store
from appliance.store.backups import DATA_TABLES
from appliance.store.dbfile import (
    DatabaseFileError,
    expected_tables,
    inspect_database,
    relocate_voicemail,
    table_counts,
)
from appliance.store.migrations import MIGRATIONS
from appliance.store.errors import ConfigError
from appliance.system.backup_archive import (
    DB_MEMBER,
    DB_NAME,
    FLOW_SUFFIXES,
    FORMAT_VERSION_DB,
    RECORDING_KEYS,
    SOUND_RATES,
    BackupError,
    Spooled,
    check_manifest,
    create_archive,
    fsync_dir,
    read_members,
    tree,
    write_backup,
)

# Re-exported: callers (the CLI, the web UI, update.py) name them from here.
__all__ = ["DB_MEMBER", "DB_NAME", "BackupError", "RestorePlan", "apply_backup", "check_backup", "check_database",
           "create_archive", "engine_running", "fsync_dir", "restore_database", "write_backup"]

@dataclass
class RestorePlan:
    """A fully checked archive, ready to apply, and what applying it would change."""

    manifest: dict[str, Any]
    config_yaml: str
    config: ConfigData
    flows: dict[str, bytes]
    sounds: dict[str, bytes]
    recordings: dict[str, bytes] = field(default_factory=dict)
    recording_rows: list[dict[str, Any]] = field(default_factory=list)
    flows_removed: list[str] = field(default_factory=list)
    sounds_removed: list[str] = field(default_factory=list)
    extensions_added: list[str] = field(default_factory=list)
    extensions_removed: list[str] = field(default_factory=list)
    database: Path | None = None  # the checked database, staged in the data directory (keep_database)
    database_schema: int | None = None
    voicemail: dict[str, bytes] = field(default_factory=dict)
    database_counts: dict[str, int | None] | None = None  # rows of store/backups.py DATA_TABLES in its database

    def discard(self) -> None:
        """Remove the staged database of a plan that will not be applied."""
        if self.database is not None:
            self.database.unlink(missing_ok=True)
            self.database = None

    def summary(self) -> dict[str, Any]:
        """What the restore brings, for the report page and the audit log."""
        c = self.config
        return {
            "created_at": self.manifest.get("created_at"), "version": self.manifest.get("version"),
            "hostname": self.manifest.get("hostname"),
            "extensions": len(c.extensions), "trunks": len(c.trunks), "inbound_routes": len(c.inbound_routes),
            "outbound_routes": len(c.outbound_routes), "agents": len(c.agents), "queues": len(c.queues),
            "settings": len(c.settings), "flows": sorted(self.flows), "sounds": sorted(self.sounds),
            "recordings": len(self.recordings), "flows_removed": self.flows_removed,
            "sounds_removed": self.sounds_removed, "extensions_added": self.extensions_added,
            "extensions_removed": self.extensions_removed,
            "database_schema": self.database_schema, "voicemail": len(self.voicemail),
        }


def check_database(path: Path) -> tuple[int | None, list[str]]:
    """(schema version, problems) of a database file about to be restored; it is opened, not changed
    (an archived database is a single file in rollback-journal mode)."""
    name = DB_MEMBER
    try:
        version, tables = inspect_database(path)
    except DatabaseFileError as exc:
        return None, [f"{name}: {exc}"]
    if version > len(MIGRATIONS):
        return version, [f"{name}: schema version {version} is newer than this software ({len(MIGRATIONS)});"
                         " restore it with the version of Plateau that made it"]
    missing = sorted(expected_tables(version) - tables)
    if missing:
        return version, [f"{name}: tables missing for schema version {version}: {', '.join(missing)}"]
    return version, []


def _check_wav(name: str, data: bytes, prompt: bool) -> str | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            channels, width, rate, frames = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
    except (wave.Error, EOFError) as exc:
        return f"{name}: not a readable WAV file: {exc}"
    if width != 2:
        return f"{name}: need 16-bit PCM, got {8 * width}-bit"
    if prompt and (channels != 1 or rate not in SOUND_RATES):
        return f"{name}: a prompt must be mono at 8 or 16 kHz, got {channels} channel(s) at {rate} Hz"
    if frames == 0:
        return f"{name}: no audio"
    return None


def _check_recording_rows(files: dict[str, bytes], errors: list[str]) -> list[dict[str, Any]]:
    raw = files.get("recordings.json")
    if raw is None:
        return []
    try:
        rows = json.loads(raw)
    except ValueError as exc:
        errors.append(f"recordings.json: not valid JSON: {exc}")
        return []
    if not isinstance(rows, list):
        errors.append("recordings.json: must be a list")
        return []
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or set(row) != set(RECORDING_KEYS):
            errors.append(f"recordings.json[{i}]: needs exactly {', '.join(RECORDING_KEYS)}")
        elif f"recordings/{row['path']}" not in files:
            errors.append(f"recordings.json[{i}].path: {row['path']!r} is not in the archive")
        elif row["mode"] not in ("mixed", "stereo"):
            errors.append(f"recordings.json[{i}].mode: {row['mode']!r} is not mixed or stereo")
        else:
            out.append(row)
    return out


def _staged_db_path(data_dir: Path) -> Path:
    return data_dir / f".restore-{os.getpid()}-{time.monotonic_ns()}.sqlite"


def check_backup(blob: IO[bytes], store: Store | None, data_dir: Path, *, keep_database: bool = False) -> RestorePlan:
    """Check an archive completely; BackupError lists every problem and nothing is changed.

    A database in the archive is always checked (spooled beside the live one, then removed);
    with `keep_database` it stays staged for `restore_database` (`plan.discard()` drops it).
    `store` (the current database, None when there is none) only feeds the report of changes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    files, database = read_members(blob, _staged_db_path(data_dir))
    try:
        return _check_files(files, database, store, data_dir, keep_database)
    except BaseException:
        if database is not None:
            database.path.unlink(missing_ok=True)
        raise


def _check_files(files: dict[str, bytes], database: Spooled | None, store: Store | None, data_dir: Path,
                 keep_database: bool) -> RestorePlan:
    errors: list[str] = []
    manifest = check_manifest(files, errors, database)
    schema: int | None = None
    if database is not None:
        if manifest.get("format_version") != FORMAT_VERSION_DB:
            errors.append(f"{DB_MEMBER}: only in format_version {FORMAT_VERSION_DB} archives")
        if not any(e.startswith(f"{DB_MEMBER}:") for e in errors):  # a damaged copy is not worth opening
            schema, problems = check_database(database.path)
            errors.extend(problems)
    config = ConfigData()
    text = ""
    if "config.yaml" not in files:
        errors.append("config.yaml: missing")
    else:
        try:
            text = files["config.yaml"].decode("utf-8")
            config = parse_config(text)
            if store is not None and not keep_database:
                # Applied into the current database: campaigns it would drop must have no leads.
                errors.extend(f"config.yaml: {e}" for e in removal_errors(store, config))
        except UnicodeDecodeError:
            errors.append("config.yaml: not UTF-8 text")
        except ConfigError as exc:
            errors.append(f"config.yaml: {exc}")
    flows: dict[str, bytes] = {}
    sounds: dict[str, bytes] = {}
    recordings: dict[str, bytes] = {}
    voicemail: dict[str, bytes] = {}
    for name, data in sorted(files.items()):
        top, _, rel = name.partition("/")
        if top == "flows":
            try:
                load_flow(data.decode("utf-8"))
            except UnicodeDecodeError:
                errors.append(f"{name}: not UTF-8 text")
            except FlowError as exc:
                errors.extend(f"{name}: {msg}" for msg in exc.errors)
            flows[rel] = data
        elif top in ("sounds", "recordings", "voicemail"):
            problem = _check_wav(name, data, prompt=top == "sounds")
            if problem:
                errors.append(problem)
            {"sounds": sounds, "recordings": recordings, "voicemail": voicemail}[top][rel] = data
    rows = _check_recording_rows(files, errors)
    if errors:
        raise BackupError(errors)
    counts: dict[str, int | None] | None = None
    if database is not None:
        try:
            counts = table_counts(database.path, list(DATA_TABLES))
        except DatabaseFileError as exc:
            raise BackupError([f"{DB_MEMBER}: {exc}"]) from None
    if database is not None and not keep_database:
        database.path.unlink(missing_ok=True)
        database = None
    current_ext = {e.number for e in store.extensions()} if store is not None else set()
    new_ext = {e.number for e in config.extensions}
    return RestorePlan(
        manifest=manifest, config_yaml=text, config=config, flows=flows, sounds=sounds, recordings=recordings,
        recording_rows=rows,
        flows_removed=sorted(set(tree(data_dir / "flows", FLOW_SUFFIXES)) - set(flows)),
        sounds_removed=sorted(set(tree(data_dir / "sounds", (".wav",))) - set(sounds)),
        extensions_added=sorted(new_ext - current_ext), extensions_removed=sorted(current_ext - new_ext),
        database=database.path if database is not None else None, database_schema=schema, voicemail=voicemail,
        database_counts=counts,
    )


# -- restore: apply ---------------------------------------------------------------------------
def _writetree(root: Path, files: dict[str, bytes]) -> None:
    root.mkdir(parents=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def _write_new(path: Path, data: bytes) -> bool:
    """Write `path` (tmp + rename) unless it exists; a restore never overwrites a recording."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.restore")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def apply_backup(plan: RestorePlan, store: Store, data_dir: Path,
                 files_dir: Path | None = None) -> dict[str, Any]:
    """Apply a checked plan: flows and prompts staged first, the configuration in one transaction,
    then the staged directories swapped in by rename; recordings are added, never replaced."""
    staging = data_dir / f".restore-{os.getpid()}-{time.monotonic_ns()}"
    try:
        _writetree(staging / "flows", plan.flows)
        _writetree(staging / "sounds", plan.sounds)
        report = import_config(store, plan.config_yaml)
        for part in ("flows", "sounds"):
            live = data_dir / part
            if live.exists():
                os.replace(live, staging / f"{part}.old")
            os.replace(staging / part, live)
        added = 0
        with store.transaction():
            known = recordings.paths(store)
            for rel, data in plan.recordings.items():
                added += _write_new((files_dir or data_dir) / "recordings" / rel, data)
            recordings.add_archived(store, [row for row in plan.recording_rows if row["path"] not in known])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"extensions": report.extensions, "trunks": report.trunks, "agents": report.agents,
            "queues": report.queues, "flows": len(plan.flows), "sounds": len(plan.sounds),
            "recordings_added": added}


# -- restore: the whole database (engine stopped) ---------------------------------------------
def engine_running(data_dir: Path, timeout: float = 2.0) -> str | None:
    """Where the engine of `data_dir` answers, or None when it does not.

    The engine writes ``api.json`` at start and removes it at exit (appliance/api/apifile.py),
    which is how `plateau status` finds it; a file left by a crashed engine whose API does not
    answer is stale, not a running engine."""
    from appliance.api.client import ControlApiClient
    from appliance.api.facade import ApiError, ApiUnavailable

    try:
        client = ControlApiClient.from_data_dir(data_dir, timeout=timeout)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"{data_dir}/api.json is unreadable ({exc}): cannot tell whether the engine runs"
    try:
        client.status()
    except ApiUnavailable:
        return None
    except ApiError as exc:  # something answers there: an engine that refused the request
        return f"{client.base_url} answered ({exc})"
    return client.base_url

def _relocate_voicemail(db: Path, old_root: str, new_root: str) -> None:
    """Voicemail rows hold absolute paths: point them at this data directory."""
    old, new = f"{old_root.rstrip('/')}/voicemail/", f"{new_root.rstrip('/')}/voicemail/"
    if old == new:
        return
    relocate_voicemail(db, old, new)


def restore_database(plan: RestorePlan, data_dir: Path) -> dict[str, Any]:
    """Restore everything a checked plan (`check_backup(..., keep_database=True)`) holds, the
    database included; refused (BackupError, nothing changed) while the engine runs.

    Flows and prompts are staged and swapped in by rename; the database, already written
    beside the live one, is renamed over it after the live -wal/-shm are removed (a stale WAL
    would be replayed into the new file); recordings and voicemail are added, never replaced."""
    if plan.database is None:
        raise BackupError(["this archive holds no database (it was made without it): restore its"
                           " configuration only"])
    running = engine_running(data_dir)
    if running:
        raise BackupError([f"the engine is running ({running}): stop it first"
                           " (systemctl stop plateau-engine), then restore"])
    live = data_dir / DB_NAME
    staging = data_dir / f".restore-{os.getpid()}-{time.monotonic_ns()}"
    try:
        _relocate_voicemail(plan.database, str(plan.manifest.get("data_dir", "")), str(data_dir.resolve()))
        fd = os.open(plan.database, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        _writetree(staging / "flows", plan.flows)
        _writetree(staging / "sounds", plan.sounds)
        for part in ("flows", "sounds"):
            current = data_dir / part
            if current.exists():
                os.replace(current, staging / f"{part}.old")
            os.replace(staging / part, current)
        for suffix in ("-wal", "-shm"):
            Path(f"{live}{suffix}").unlink(missing_ok=True)
        os.replace(plan.database, live)
        plan.database = None
        fsync_dir(data_dir)
        added = sum(_write_new(data_dir / "recordings" / rel, data) for rel, data in plan.recordings.items())
        added_vm = sum(_write_new(data_dir / "voicemail" / rel, data) for rel, data in plan.voicemail.items())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        plan.discard()
    return {"schema_version": plan.database_schema, "flows": len(plan.flows), "sounds": len(plan.sounds),
            "recordings_added": added, "voicemail_added": added_vm}
