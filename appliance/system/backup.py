"""Backup and restore: one tar.gz with the provisioning YAML, flows, prompts, a manifest, and
optionally the whole database (`plateau backup`) and the recordings.

A restore is checked completely before anything is written (manifest and checksums, the YAML
through parse_config, every flow through load_flow, every WAV with the wave module, every tar
member for path escapes, links and devices), so a bad archive changes nothing. Applying it then
stages flows and prompts beside the data directory, imports the configuration in one database
transaction and swaps the staged directories in by rename.

Archive layout::

    manifest.json       format, format_version, version, created_at, files: {path: sha256}
    config.yaml         appliance.store.config_yaml.export_config
    flows/<name>.yaml   data/flows (published flows and their kept versions)
    sounds/**.wav       data/sounds (prompts, music on hold)
    recordings/**.wav   data/recordings, only when asked for
    recordings.json     the index rows of those recordings
    database.sqlite     the whole database (format_version 2), copied with SQLite's online backup
                        API so it is consistent while the engine writes (WAL); with it, voicemail/**.wav

A database is checked before it is restored (it opens, ``PRAGMA integrity_check`` says ok, its
schema version is not newer than this software's, the tables of that version are all there)
and restored only while the engine is stopped: written beside the live file, renamed over it,
stale -wal/-shm removed. The web UI restores the configuration part only, live.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import tarfile
import time
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from appliance.ivr.flow import FlowError, load_flow
from appliance.store.config_yaml import ConfigData, export_config, import_config, parse_config, removal_errors
from appliance.store import recordings
from appliance.store.db import Store
from appliance.store.dbfile import (
    DatabaseFileError,
    expected_tables,
    inspect_database,
    relocate_voicemail,
    snapshot_database,
)
from appliance.store.migrations import MIGRATIONS
from appliance.store.errors import ConfigError

FORMAT = "plateau-backup"
FORMAT_VERSION = 1  # configuration only
FORMAT_VERSION_DB = 2  # with database.sqlite: older software refuses it rather than half-restoring it
SUPPORTED_VERSIONS = (FORMAT_VERSION, FORMAT_VERSION_DB)
DB_MEMBER = "database.sqlite"
DB_NAME = "plateau.db"  # the live database in the data directory (appliance/cli.py, engine.py)
MAX_DATABASE = 16 * 1024**3
_COPY = 1 << 20
MAX_MEMBERS = 20_000
MAX_UNPACKED = 512 * 1024 * 1024  # a gzip bomb stops here, before it fills the disk or memory
# A member may unpack to at most MAX_RATIO times the whole upload (with a floor for small
# archives): real databases and recordings compress a few times, a bomb of zeros about 1000x,
# so a 600 MiB member of a 1 MiB upload is refused from its header, before a byte is written.
MAX_RATIO = 50
RATIO_FLOOR = 64 * 1024 * 1024
DISK_RESERVE = 256 * 1024 * 1024  # left free on the data disk after spooling a database
FLOW_SUFFIXES = (".yaml", ".yml", ".json")
SOUND_RATES = (8000, 16000)  # what the media engine plays (appliance/media/wavfile.py)
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RECORDING_KEYS = recordings.ARCHIVE_COLUMNS


class BackupError(ValueError):
    """An archive that cannot be restored; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


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


# -- backup -----------------------------------------------------------------------------------
def _tree(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Regular files under `root` with one of `suffixes`, by POSIX path relative to it (no links)."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        rel = path.relative_to(root).as_posix()
        if all(_PART.match(part) for part in rel.split("/")):
            found[rel] = path
    return found


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
    tar.addfile(info, io.BytesIO(data))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_COPY):
            digest.update(chunk)
    return digest.hexdigest()


def write_backup(out: IO[bytes], store: Store, data_dir: Path, version: str, *,
                 include_recordings: bool = False, include_database: bool = False,
                 now: float | None = None, files_dir: Path | None = None) -> dict[str, Any]:
    """Write a backup archive of the appliance in `data_dir` to `out`; returns its manifest.

    `include_database` adds the whole database and the voicemail messages (format_version 2).
    `files_dir`: where recordings/ and voicemail/ live (`plateau run --shared-dir`), default `data_dir`."""
    now = time.time() if now is None else now
    files_dir = data_dir if files_dir is None else files_dir
    members: dict[str, bytes] = {"config.yaml": export_config(store).encode()}
    for rel, path in _tree(data_dir / "flows", FLOW_SUFFIXES).items():
        if "/" not in rel:  # flows are flat: data/flows/<name>.yaml
            members[f"flows/{rel}"] = path.read_bytes()
    for rel, path in _tree(data_dir / "sounds", (".wav",)).items():
        members[f"sounds/{rel}"] = path.read_bytes()
    if include_recordings:
        files = _tree(files_dir / "recordings", (".wav",))
        index = [{k: getattr(r, k) for k in _RECORDING_KEYS} for r in recordings.closed(store) if r.path in files]
        for rel, path in files.items():
            members[f"recordings/{rel}"] = path.read_bytes()
        members["recordings.json"] = json.dumps(index, indent=1).encode()
    with tempfile.TemporaryDirectory(prefix="plateau-backup-") as scratch:
        db_copy = Path(scratch) / DB_MEMBER
        checksums = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
        if include_database:
            for rel, path in _tree(files_dir / "voicemail", (".wav",)).items():
                members[f"voicemail/{rel}"] = path.read_bytes()
                checksums[f"voicemail/{rel}"] = hashlib.sha256(members[f"voicemail/{rel}"]).hexdigest()
            if store.path is None:  # the snapshot is SQLite's file copy (store/dbfile.py)
                raise ConfigError(f"{store.location}: a PostgreSQL database is backed up with pg_dump, "
                                  "not in the archive")
            snapshot_database(store.path, db_copy)
            checksums[DB_MEMBER] = _file_sha256(db_copy)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION_DB if include_database else FORMAT_VERSION,
            "version": version,
            "created_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
            "hostname": socket.gethostname(), "include_recordings": include_recordings,
            "files": checksums,
        }
        if include_database:
            manifest["schema_version"] = store.schema_version()
            manifest["data_dir"] = str(Path(data_dir).resolve())  # voicemail rows hold absolute paths
        with tarfile.open(fileobj=out, mode="w:gz") as tar:
            _add(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode(), now)
            for name, data in members.items():
                _add(tar, name, data, now)
            if include_database:
                info = tar.gettarinfo(str(db_copy), DB_MEMBER)
                info.mtime, info.mode, info.uid, info.gid, info.uname, info.gname = int(now), 0o600, 0, 0, "", ""
                with open(db_copy, "rb") as fh:
                    tar.addfile(info, fh)
    return manifest


# -- restore: check ---------------------------------------------------------------------------
def _member_name(info: tarfile.TarInfo) -> tuple[str | None, str | None]:
    """(normalised name, None) for an acceptable member, (None, why) for one that is refused."""
    raw = info.name
    if info.issym() or info.islnk():
        return None, f"{raw}: links are not allowed in a backup"
    if not (info.isreg() or info.isdir()):
        return None, f"{raw}: only regular files may be in a backup"
    if raw.startswith("/") or "\\" in raw or "\0" in raw:
        return None, f"{raw}: absolute or odd path"
    parts = [p for p in PurePosixPath(raw).parts if p != "."]
    if any(p == ".." for p in parts):
        return None, f"{raw}: path escapes the archive"
    if not parts:
        return None, f"{raw}: empty path"
    if info.isdir():
        return None, None  # directories are implied by their files
    name = "/".join(parts)
    top = parts[0]
    if len(parts) == 1 and name in ("manifest.json", "config.yaml", "recordings.json", DB_MEMBER):
        return name, None
    if top == "flows" and len(parts) == 2 and _PART.match(parts[1]) and parts[1].lower().endswith(FLOW_SUFFIXES):
        return name, None
    if top in ("sounds", "recordings", "voicemail") and len(parts) >= 2 and all(_PART.match(p) for p in parts[1:]) \
            and name.lower().endswith(".wav"):
        return name, None
    return None, f"{raw}: not part of a Plateau backup"


@dataclass
class _Spooled:
    """The database member, copied to a file while its checksum is computed."""

    path: Path
    sha256: str
    size: int


def _spool(fh: IO[bytes], dest: Path) -> _Spooled:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds secrets
    with os.fdopen(fd, "wb") as out:
        while chunk := fh.read(_COPY):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return _Spooled(dest, digest.hexdigest(), size)


def _upload_size(blob: IO[bytes]) -> int:
    """The size of a seekable upload (its position kept), or -1."""
    try:
        here = blob.tell()
        end = blob.seek(0, os.SEEK_END)
        blob.seek(here)
    except (OSError, AttributeError, ValueError):
        return -1
    return int(end) - int(here)


def _member_bound(blob: IO[bytes]) -> int | None:
    """The most any member (and the non-database members together) may unpack to."""
    size = _upload_size(blob)
    return None if size < 0 else max(RATIO_FLOOR, MAX_RATIO * size)


def _check_room(name: str, size: int, directory: Path) -> None:
    """Refuse a member the data disk cannot hold with DISK_RESERVE to spare (before writing it)."""
    free = shutil.disk_usage(directory).free
    if size + DISK_RESERVE > free:
        raise BackupError([f"{name}: {size // 2**20} MiB does not fit on the data disk ({free // 2**20} MiB free)"])


def _read_members(blob: IO[bytes], spool_to: Path | None = None) -> tuple[dict[str, bytes], _Spooled | None]:
    """Every file of the archive by name (the database spooled to `spool_to`, never held in memory);
    BackupError on anything unsafe or unreadable."""
    errors: list[str] = []
    files: dict[str, bytes] = {}
    database: _Spooled | None = None
    total = 0
    bound = _member_bound(blob)
    try:
        with tarfile.open(fileobj=blob, mode="r:gz") as tar:
            for count, info in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise BackupError([f"more than {MAX_MEMBERS} files in the archive"])
                name, why = _member_name(info)
                if why:
                    errors.append(why)
                    continue
                if name is None:
                    continue
                if name in files or (name == DB_MEMBER and database is not None):
                    errors.append(f"{name}: appears twice")
                    continue
                if name == DB_MEMBER:
                    if info.size > MAX_DATABASE:
                        raise BackupError([f"{name}: larger than {MAX_DATABASE // 2**30} GiB"])
                    if spool_to is not None:
                        _check_room(name, info.size, spool_to.parent)
                else:
                    total += info.size
                if total > MAX_UNPACKED:
                    raise BackupError([f"the archive unpacks to more than {MAX_UNPACKED // 2**20} MiB"])
                if bound is not None and max(info.size, total) > bound:
                    raise BackupError([f"{name}: unpacks to {max(info.size, total) // 2**20} MiB, more than"
                                       f" {MAX_RATIO} times the {_upload_size(blob) // 1024} KiB upload"
                                       " (a compression bomb?)"])
                fh = tar.extractfile(info)
                if fh is None:
                    errors.append(f"{name}: cannot be read")
                    continue
                if name == DB_MEMBER:
                    if spool_to is None:
                        errors.append(f"{name}: a database is not accepted here")
                        continue
                    database = _spool(fh, spool_to)
                else:
                    files[name] = fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if spool_to is not None:
            spool_to.unlink(missing_ok=True)  # also a copy cut short by the damage
        raise BackupError([f"not a readable tar.gz archive: {exc}"]) from None
    except BaseException:
        if spool_to is not None:
            spool_to.unlink(missing_ok=True)
        raise
    if errors:
        if spool_to is not None:
            spool_to.unlink(missing_ok=True)
        raise BackupError(errors)
    return files, database


def _check_manifest(files: dict[str, bytes], errors: list[str], database: _Spooled | None = None) -> dict[str, Any]:
    raw = files.get("manifest.json")
    if raw is None:
        errors.append("manifest.json: missing (this is not a Plateau backup)")
        return {}
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        errors.append(f"manifest.json: not valid JSON: {exc}")
        return {}
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        errors.append(f"manifest.json: format is not {FORMAT!r}")
        return {}
    if manifest.get("format_version") not in SUPPORTED_VERSIONS:
        errors.append(f"manifest.json: format_version {manifest.get('format_version')!r} is not supported"
                      f" (expected one of {', '.join(map(str, SUPPORTED_VERSIONS))})")
        return manifest
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        errors.append("manifest.json: files: must map each file to its SHA-256")
        return manifest
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in files.items() if name != "manifest.json"}
    if database is not None:
        hashes[DB_MEMBER] = database.sha256
    for name in sorted(set(listed) - set(hashes)):
        errors.append(f"{name}: listed in the manifest but missing from the archive")
    for name in sorted(set(hashes) - set(listed)):
        errors.append(f"{name}: in the archive but not in the manifest")
    for name in sorted(set(hashes) & set(listed)):
        if hashes[name] != listed[name]:
            errors.append(f"{name}: checksum does not match the manifest (damaged archive)")
    return manifest


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
        if not isinstance(row, dict) or set(row) != set(_RECORDING_KEYS):
            errors.append(f"recordings.json[{i}]: needs exactly {', '.join(_RECORDING_KEYS)}")
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
    files, database = _read_members(blob, _staged_db_path(data_dir))
    try:
        return _check_files(files, database, store, data_dir, keep_database)
    except BaseException:
        if database is not None:
            database.path.unlink(missing_ok=True)
        raise


def _check_files(files: dict[str, bytes], database: _Spooled | None, store: Store | None, data_dir: Path,
                 keep_database: bool) -> RestorePlan:
    errors: list[str] = []
    manifest = _check_manifest(files, errors, database)
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
    if database is not None and not keep_database:
        database.path.unlink(missing_ok=True)
        database = None
    current_ext = {e.number for e in store.extensions()} if store is not None else set()
    new_ext = {e.number for e in config.extensions}
    return RestorePlan(
        manifest=manifest, config_yaml=text, config=config, flows=flows, sounds=sounds, recordings=recordings,
        recording_rows=rows,
        flows_removed=sorted(set(_tree(data_dir / "flows", FLOW_SUFFIXES)) - set(flows)),
        sounds_removed=sorted(set(_tree(data_dir / "sounds", (".wav",))) - set(sounds)),
        extensions_added=sorted(new_ext - current_ext), extensions_removed=sorted(current_ext - new_ext),
        database=database.path if database is not None else None, database_schema=schema, voicemail=voicemail,
    )


# -- restore: apply ---------------------------------------------------------------------------
def _write_tree(root: Path, files: dict[str, bytes]) -> None:
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
        _write_tree(staging / "flows", plan.flows)
        _write_tree(staging / "sounds", plan.sounds)
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


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        _write_tree(staging / "flows", plan.flows)
        _write_tree(staging / "sounds", plan.sounds)
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
