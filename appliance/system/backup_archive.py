"""The backup archive's format: what one holds, writing it, and reading one back safely.

One tar.gz with the provisioning YAML, flows, prompts, a manifest, and optionally the whole
database and the recordings (appliance/system/backup.py checks and restores one). The CLI
(`plateau backup create`), the web UI's download and the scheduled backups
(appliance/system/backup_schedule.py) all write it with `create_archive`, so there is one
archive and one way to make it.

Archive layout::

    manifest.json       format, format_version, version, created_at, files: {path: sha256}
    config.yaml         appliance.store.config_yaml.export_config
    flows/<name>.yaml   data/flows (published flows and their kept versions)
    sounds/**.wav       data/sounds (prompts, music on hold)
    recordings/**.wav   data/recordings, only when asked for
    recordings.json     the index rows of those recordings
    database.sqlite     the whole database (format_version 2), copied with SQLite's online backup
                        API so it is consistent while the engine writes (WAL); with it, voicemail/**.wav

On PostgreSQL (`--db`) the archive holds the configuration, flows, prompts and recordings
(format_version 1): the database itself is the server's, dumped with pg_dump.

Reading is bounded: member names are checked for escapes, links and devices, counts and sizes
for compression bombs, and the database member is spooled to disk, never held in memory.
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
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from appliance.store import recordings
from appliance.store.config_yaml import export_config
from appliance.store.db import Store
from appliance.store.dbfile import snapshot_database
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
PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RECORDING_KEYS = recordings.ARCHIVE_COLUMNS


class BackupError(ValueError):
    """An archive that cannot be restored; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)



def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



# -- backup -----------------------------------------------------------------------------------
def tree(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Regular files under `root` with one of `suffixes`, by POSIX path relative to it (no links)."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        rel = path.relative_to(root).as_posix()
        if all(PART.match(part) for part in rel.split("/")):
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
    for rel, path in tree(data_dir / "flows", FLOW_SUFFIXES).items():
        if "/" not in rel:  # flows are flat: data/flows/<name>.yaml
            members[f"flows/{rel}"] = path.read_bytes()
    for rel, path in tree(data_dir / "sounds", (".wav",)).items():
        members[f"sounds/{rel}"] = path.read_bytes()
    if include_recordings:
        files = tree(files_dir / "recordings", (".wav",))
        index = [{k: getattr(r, k) for k in RECORDING_KEYS} for r in recordings.closed(store) if r.path in files]
        for rel, path in files.items():
            members[f"recordings/{rel}"] = path.read_bytes()
        members["recordings.json"] = json.dumps(index, indent=1).encode()
    with tempfile.TemporaryDirectory(prefix="plateau-backup-") as scratch:
        db_copy = Path(scratch) / DB_MEMBER
        checksums = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
        if include_database:
            for rel, path in tree(files_dir / "voicemail", (".wav",)).items():
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


def create_archive(dest: Path, store: Store, data_dir: Path, version: str, *, include_recordings: bool = False,
                   files_dir: Path | None = None, now: float | None = None) -> dict[str, Any]:
    """Write a whole backup to the file `dest`; returns its manifest.

    The one way an archive is made (CLI, web download, schedule): on SQLite it holds the
    database (format_version 2), on PostgreSQL the configuration, flows, prompts and recordings.
    It is written under a temporary name beside `dest`, fsynced and renamed, so a run cut short
    (a full disk, a share that went away) never leaves a file that looks like a good backup."""
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with open(tmp, "wb") as out:
            manifest = write_backup(out, store, data_dir, version, include_recordings=include_recordings,
                                    include_database=store.path is not None, now=now, files_dir=files_dir)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
    if top == "flows" and len(parts) == 2 and PART.match(parts[1]) and parts[1].lower().endswith(FLOW_SUFFIXES):
        return name, None
    if top in ("sounds", "recordings", "voicemail") and len(parts) >= 2 and all(PART.match(p) for p in parts[1:]) \
            and name.lower().endswith(".wav"):
        return name, None
    return None, f"{raw}: not part of a Plateau backup"


@dataclass
class Spooled:
    """The database member, copied to a file while its checksum is computed."""

    path: Path
    sha256: str
    size: int


def _spool(fh: IO[bytes], dest: Path) -> Spooled:
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
    return Spooled(dest, digest.hexdigest(), size)


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


def read_members(blob: IO[bytes], spool_to: Path | None = None) -> tuple[dict[str, bytes], Spooled | None]:
    """Every file of the archive by name (the database spooled to `spool_to`, never held in memory);
    BackupError on anything unsafe or unreadable."""
    errors: list[str] = []
    files: dict[str, bytes] = {}
    database: Spooled | None = None
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


def check_manifest(files: dict[str, bytes], errors: list[str], database: Spooled | None = None) -> dict[str, Any]:
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

