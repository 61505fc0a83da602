"""Configuration backup and restore: one tar.gz with the provisioning YAML, flows, prompts, a manifest.

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
import tarfile
import time
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from appliance.ivr.flow import FlowError, load_flow
from appliance.store.config_yaml import ConfigData, export_config, import_config, parse_config
from appliance.store.db import Store
from appliance.store.errors import ConfigError

FORMAT = "plateau-backup"
FORMAT_VERSION = 1
MAX_MEMBERS = 20_000
MAX_UNPACKED = 512 * 1024 * 1024  # a gzip bomb stops here, before it fills the disk or memory
FLOW_SUFFIXES = (".yaml", ".yml", ".json")
SOUND_RATES = (8000, 16000)  # what the media engine plays (appliance/media/wavfile.py)
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_RECORDING_KEYS = ("call_id", "path", "mode", "reason", "queue", "agent", "started_at", "ended_at", "paused_s", "note")


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


def write_backup(out: IO[bytes], store: Store, data_dir: Path, version: str, *,
                 include_recordings: bool = False, now: float | None = None) -> dict[str, Any]:
    """Write a backup archive of the appliance in `data_dir` to `out`; returns its manifest."""
    now = time.time() if now is None else now
    members: dict[str, bytes] = {"config.yaml": export_config(store).encode()}
    for rel, path in _tree(data_dir / "flows", FLOW_SUFFIXES).items():
        if "/" not in rel:  # flows are flat: data/flows/<name>.yaml
            members[f"flows/{rel}"] = path.read_bytes()
    for rel, path in _tree(data_dir / "sounds", (".wav",)).items():
        members[f"sounds/{rel}"] = path.read_bytes()
    if include_recordings:
        files = _tree(data_dir / "recordings", (".wav",))
        rows = store._query(f"SELECT {', '.join(_RECORDING_KEYS)} FROM recordings WHERE ended_at IS NOT NULL"
                            " ORDER BY id")
        index = [dict(zip(_RECORDING_KEYS, r, strict=True)) for r in rows if r[1] in files]
        for rel, path in files.items():
            members[f"recordings/{rel}"] = path.read_bytes()
        members["recordings.json"] = json.dumps(index, indent=1).encode()
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": version,
        "created_at": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(), "include_recordings": include_recordings,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in members.items()},
    }
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        _add(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode(), now)
        for name, data in members.items():
            _add(tar, name, data, now)
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
    if len(parts) == 1 and name in ("manifest.json", "config.yaml", "recordings.json"):
        return name, None
    if top == "flows" and len(parts) == 2 and _PART.match(parts[1]) and parts[1].lower().endswith(FLOW_SUFFIXES):
        return name, None
    if top in ("sounds", "recordings") and len(parts) >= 2 and all(_PART.match(p) for p in parts[1:]) \
            and name.lower().endswith(".wav"):
        return name, None
    return None, f"{raw}: not part of a Plateau backup"


def _read_members(blob: IO[bytes]) -> dict[str, bytes]:
    """Every file of the archive by name; BackupError on anything unsafe or unreadable."""
    errors: list[str] = []
    files: dict[str, bytes] = {}
    total = 0
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
                if name in files:
                    errors.append(f"{name}: appears twice")
                    continue
                total += info.size
                if total > MAX_UNPACKED:
                    raise BackupError([f"the archive unpacks to more than {MAX_UNPACKED // 2**20} MiB"])
                fh = tar.extractfile(info)
                if fh is None:
                    errors.append(f"{name}: cannot be read")
                    continue
                files[name] = fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BackupError([f"not a readable tar.gz archive: {exc}"]) from None
    if errors:
        raise BackupError(errors)
    return files


def _check_manifest(files: dict[str, bytes], errors: list[str]) -> dict[str, Any]:
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
    if manifest.get("format_version") != FORMAT_VERSION:
        errors.append(f"manifest.json: format_version {manifest.get('format_version')!r} is not supported"
                      f" (expected {FORMAT_VERSION})")
        return manifest
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        errors.append("manifest.json: files: must map each file to its SHA-256")
        return manifest
    present = set(files) - {"manifest.json"}
    for name in sorted(set(listed) - present):
        errors.append(f"{name}: listed in the manifest but missing from the archive")
    for name in sorted(present - set(listed)):
        errors.append(f"{name}: in the archive but not in the manifest")
    for name in sorted(present & set(listed)):
        if hashlib.sha256(files[name]).hexdigest() != listed[name]:
            errors.append(f"{name}: checksum does not match the manifest (damaged archive)")
    return manifest


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


def check_backup(blob: IO[bytes], store: Store, data_dir: Path) -> RestorePlan:
    """Check an uploaded archive completely; BackupError lists every problem, nothing is written."""
    files = _read_members(blob)
    errors: list[str] = []
    manifest = _check_manifest(files, errors)
    config = ConfigData()
    text = ""
    if "config.yaml" not in files:
        errors.append("config.yaml: missing")
    else:
        try:
            text = files["config.yaml"].decode("utf-8")
            config = parse_config(text)
        except UnicodeDecodeError:
            errors.append("config.yaml: not UTF-8 text")
        except ConfigError as exc:
            errors.append(f"config.yaml: {exc}")
    flows: dict[str, bytes] = {}
    sounds: dict[str, bytes] = {}
    recordings: dict[str, bytes] = {}
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
        elif top in ("sounds", "recordings"):
            problem = _check_wav(name, data, prompt=top == "sounds")
            if problem:
                errors.append(problem)
            (sounds if top == "sounds" else recordings)[rel] = data
    rows = _check_recording_rows(files, errors)
    if errors:
        raise BackupError(errors)
    current_ext = {e.number for e in store.extensions()}
    new_ext = {e.number for e in config.extensions}
    return RestorePlan(
        manifest=manifest, config_yaml=text, config=config, flows=flows, sounds=sounds, recordings=recordings,
        recording_rows=rows,
        flows_removed=sorted(set(_tree(data_dir / "flows", FLOW_SUFFIXES)) - set(flows)),
        sounds_removed=sorted(set(_tree(data_dir / "sounds", (".wav",))) - set(sounds)),
        extensions_added=sorted(new_ext - current_ext), extensions_removed=sorted(current_ext - new_ext),
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


def apply_backup(plan: RestorePlan, store: Store, data_dir: Path) -> dict[str, Any]:
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
            known = {r[0] for r in store._query("SELECT path FROM recordings")}
            for rel, data in plan.recordings.items():
                added += _write_new(data_dir / "recordings" / rel, data)
            for row in plan.recording_rows:
                if row["path"] not in known:
                    store._exec(f"INSERT INTO recordings ({', '.join(_RECORDING_KEYS)}) VALUES"
                                f" ({', '.join('?' * len(_RECORDING_KEYS))})", [row[k] for k in _RECORDING_KEYS])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"extensions": report.extensions, "trunks": report.trunks, "agents": report.agents,
            "queues": report.queues, "flows": len(plan.flows), "sounds": len(plan.sounds),
            "recordings_added": added}
