"""`plateau update`: check an update bundle, write the inactive slot, decide after boot.

The decisions (which slot, what entry, what a boot means) are in slots.py; this module
reads and writes: the bundle (an uncompressed tar, notes/image_design.md), the slot's
block device, the ESP (kernels and loader entries), the database snapshot and
``<data>/update/state.json``.

Order of a write, so that a failure at any point leaves a box that boots the running
slot: every check first (nothing written); then the target slot's old entries are
removed (its filesystem is about to be overwritten), the root filesystem is written,
fsynced and read back, the kernel and initrd are copied (tmp + rename), the database is
snapshotted, state.json records the pending update, and the new entry is written last.
Until that last rename systemd-boot has no entry pointing at the new slot.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from appliance.store.dbfile import restore_snapshot, schema_version_of
from appliance.system import slots
from appliance.store.dbfile import snapshot_database
from appliance.system.backup_archive import fsync_dir
from appliance.system.slots import AfterBoot, BootEntry, Outcome, Pending, Slot

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "plateau-update"
BUNDLE_FORMAT_VERSION = 1
PAYLOAD = ("rootfs.ext4", "vmlinuz", "initrd.img")
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
ESP_FILES = {"vmlinuz": "vmlinuz", "initrd.img": "initrd.img"}

DEFAULT_ESP = Path("/boot/efi")
DEFAULT_DATA_DIR = Path("/var/lib/plateau")
DEFAULT_SLOT_DEVICE = "/dev/disk/by-partlabel/plateau-root-{slot}"
DEFAULT_CMDLINE = Path("/proc/cmdline")
SYSTEM_KEY = Path("/etc/plateau/update-key.pub")
DB_NAME = "plateau.db"
HISTORY_LIMIT = 100
_CHUNK = 1 << 20
_VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~^+-]{0,63}")


class UpdateError(Exception):
    """A bad bundle or a refused update; the message is for the admin (CLI exit code 2)."""


def default_key_paths(data_dir: Path) -> tuple[Path, ...]:
    """Where a configured update key lives: the image's /etc and the data partition."""
    return (SYSTEM_KEY, data_dir / "update-key.pub")


# -- the bundle ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PayloadFile:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    created_at: str
    schema_version: int
    files: dict[str, PayloadFile]


@dataclass(frozen=True)
class Bundle:
    """A bundle whose members, checksums and signature (when a key is set) were checked."""

    path: Path
    manifest: Manifest
    signed_with: Path | None  # the key that verified it, None when no key is configured


def parse_manifest(raw: bytes) -> Manifest:
    """Validate manifest.json (format, version, schema, three payload files)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UpdateError(f"{MANIFEST} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UpdateError(f"{MANIFEST} is not a JSON object")
    if data.get("format") != BUNDLE_FORMAT:
        raise UpdateError(f"{MANIFEST}: format is {data.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    if data.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise UpdateError(f"{MANIFEST}: format_version {data.get('format_version')!r} is not supported "
                          f"(this software reads {BUNDLE_FORMAT_VERSION})")
    version = data.get("version")
    if not isinstance(version, str) or not _VERSION_RE.fullmatch(version):
        raise UpdateError(f"{MANIFEST}: version {version!r} is not a version string")
    schema = data.get("schema_version")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 0:
        raise UpdateError(f"{MANIFEST}: schema_version {schema!r} is not a non-negative integer")
    files = data.get("files")
    if not isinstance(files, dict) or set(files) != set(PAYLOAD):
        names = sorted(files) if isinstance(files, dict) else files
        raise UpdateError(f"{MANIFEST}: files must list exactly {', '.join(PAYLOAD)} (got {names})")
    parsed: dict[str, PayloadFile] = {}
    for name, info in files.items():
        sha, size = (info.get("sha256"), info.get("size")) if isinstance(info, dict) else (None, None)
        if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise UpdateError(f"{MANIFEST}: files.{name}.sha256 is not 64 lower-case hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise UpdateError(f"{MANIFEST}: files.{name}.size is not a non-negative integer")
        parsed[name] = PayloadFile(sha, size)
    return Manifest(version, str(data.get("created_at", "")), schema, parsed)


def _members(tar: tarfile.TarFile) -> dict[str, tarfile.TarInfo]:
    """The bundle's members, checked: regular files, no duplicates, exactly the design's set."""
    found: dict[str, tarfile.TarInfo] = {}
    for m in tar.getmembers():
        if m.name in found:
            raise UpdateError(f"bundle has {m.name} twice")
        if not m.isreg():
            raise UpdateError(f"bundle member {m.name} is not a regular file")
        found[m.name] = m
    expected = {MANIFEST, *PAYLOAD}
    missing = sorted(expected - set(found))
    if missing:
        raise UpdateError(f"bundle lacks {', '.join(missing)}")
    extra = sorted(set(found) - expected - {SIGNATURE})
    if extra:
        raise UpdateError(f"bundle has unexpected members: {', '.join(extra)}")
    return found


@contextmanager
def _open_tar(path: Path) -> Iterator[tuple[tarfile.TarFile, dict[str, tarfile.TarInfo]]]:
    try:
        tar = tarfile.open(path, mode="r:")
    except FileNotFoundError as exc:
        raise UpdateError(f"{path}: no such file") from exc
    except (tarfile.TarError, OSError) as exc:
        raise UpdateError(f"{path} is not an update bundle (not an uncompressed tar: {exc})") from exc
    with tar:
        try:
            members = _members(tar)
        except tarfile.TarError as exc:
            raise UpdateError(f"{path}: damaged tar: {exc}") from exc
        yield tar, members


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, limit: int = 1 << 20) -> bytes:
    if member.size > limit:
        raise UpdateError(f"bundle member {member.name} is too large ({member.size} bytes)")
    f = tar.extractfile(member)
    if f is None:
        raise UpdateError(f"bundle member {member.name} cannot be read")
    return f.read()


def _stream(tar: tarfile.TarFile, member: tarfile.TarInfo, expected: PayloadFile,
            sink: Callable[[bytes], object] | None = None) -> None:
    """Read a member in chunks (optionally passing them on); raise unless size and sha256 match."""
    if member.size != expected.size:
        raise UpdateError(f"{member.name}: size {member.size} differs from the manifest's {expected.size}")
    f = tar.extractfile(member)
    if f is None:
        raise UpdateError(f"bundle member {member.name} cannot be read")
    digest = hashlib.sha256()
    try:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            if sink is not None:
                sink(chunk)
    except (tarfile.TarError, EOFError) as exc:
        raise UpdateError(f"{member.name}: truncated bundle ({exc})") from exc
    if digest.hexdigest() != expected.sha256:
        raise UpdateError(f"{member.name}: checksum mismatch (sha256 {digest.hexdigest()}, "
                          f"manifest says {expected.sha256})")


def verify_signature(manifest: bytes, signature: bytes, key: Path) -> None:
    """Check an ed25519 signature of manifest.json with ``openssl pkeyutl -verify -rawin``."""
    with tempfile.TemporaryDirectory(prefix="plateau-sig-") as tmp:
        m, s = Path(tmp) / MANIFEST, Path(tmp) / SIGNATURE
        m.write_bytes(manifest)
        s.write_bytes(signature)
        try:
            proc = subprocess.run(
                ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(key), "-rawin",
                 "-in", str(m), "-sigfile", str(s)],
                capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise UpdateError(f"cannot run openssl to check the signature: {exc}") from exc
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        raise UpdateError(f"bad signature: manifest.json does not verify with {key} "
                          f"({detail[0] if detail else 'openssl exit ' + str(proc.returncode)})")


def check_bundle(path: Path, key_paths: Sequence[Path], *, require_signature: bool = False,
                 db_schema: int | None = None) -> Bundle:
    """Open and check a bundle: members, manifest, signature, every file's size and sha256.

    A signature is required when any of ``key_paths`` exists (the first existing key is
    used) or when ``require_signature`` is set. ``db_schema`` is the current database's
    schema version: a bundle whose software knows fewer migrations could not open it.
    """
    path = Path(path)
    with _open_tar(path) as (tar, members):
        raw = _read_member(tar, members[MANIFEST])
        manifest = parse_manifest(raw)
        key = next((k for k in key_paths if k.exists()), None)
        signed_with: Path | None = None
        if key is not None:
            if SIGNATURE not in members:
                raise UpdateError(f"bundle is not signed, and an update key is configured ({key})")
            verify_signature(raw, _read_member(tar, members[SIGNATURE], 4096), key)
            signed_with = key
        elif require_signature:
            raise UpdateError("a signed bundle is required but no update key exists at "
                              + " or ".join(str(k) for k in key_paths))
        if db_schema is not None and manifest.schema_version < db_schema:
            raise UpdateError(f"version {manifest.version} knows database schema {manifest.schema_version}, "
                              f"the database is at {db_schema}: it could not open it")
        for name in PAYLOAD:
            _stream(tar, members[name], manifest.files[name])
    return Bundle(path, manifest, signed_with)


# -- files on the ESP and the data partition ------------------------------------------------

def _atomic_write(path: Path, fill: bytes | Callable[[Callable[[bytes], object]], None]) -> None:
    """Write ``path`` via a hidden tmp file, fsync, rename, fsync the directory; ``fill`` is the
    bytes, or a function that writes them through the write function it is given (streaming)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            if isinstance(fill, bytes):
                f.write(fill)
            else:
                fill(f.write)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def entries_dir(esp: Path) -> Path:
    return esp / "loader" / "entries"


def read_entries(esp: Path) -> list[BootEntry]:
    """Parse every ``*.conf`` in the ESP's loader/entries (hidden tmp files skipped, like boot.c)."""
    d = entries_dir(esp)
    if not d.is_dir():
        raise UpdateError(f"{d} does not exist: is the ESP mounted at {esp}?")
    found = []
    for p in sorted(d.iterdir()):
        if p.name.startswith(".") or not p.name.lower().endswith(".conf") or not p.is_file():
            continue
        found.append(slots.parse_entry(p.name, p.read_text(errors="replace")))
    return found


@dataclass
class UpdateState:
    """state.json: the pending update and the history of updates on this box."""

    pending: Pending | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, event: str, slot: Slot | None, version: str | None, detail: str) -> None:
        self.history.append({"at": _now(), "event": event, "slot": slot.value if slot else None,
                             "version": version, "detail": detail})
        del self.history[:-HISTORY_LIMIT]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def state_path(data_dir: Path) -> Path:
    return data_dir / "update" / "state.json"


def load_state(data_dir: Path) -> UpdateState:
    """Read state.json (a missing file is an empty state; a damaged one is an error)."""
    path = state_path(data_dir)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return UpdateState()
    except (OSError, ValueError) as exc:
        raise UpdateError(f"{path} is unreadable ({exc}); fix or remove it") from exc
    try:
        p = data.get("pending")
        pending = None if p is None else Pending(
            Slot(p["slot"]), str(p["version"]), Slot(p["from_slot"]), p.get("from_version"),
            p.get("db_snapshot"), str(p.get("written_at", "")))
        history = list(data.get("history", []))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UpdateError(f"{path} is malformed ({exc}); fix or remove it") from exc
    return UpdateState(pending, history)


def save_state(data_dir: Path, state: UpdateState) -> None:
    """Write state.json atomically (tmp + fsync + rename)."""
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    pending = None
    if state.pending is not None:
        pending = {k: (v.value if isinstance(v, Slot) else v) for k, v in asdict(state.pending).items()}
    text = json.dumps({"pending": pending, "history": state.history}, indent=2) + "\n"
    _atomic_write(path, text.encode())


def db_schema_version(db: Path) -> int | None:
    """The database's schema version, read directly (Store would migrate or refuse it)."""
    return schema_version_of(db)


def software_schema_version() -> int:
    from appliance.store.migrations import MIGRATIONS

    return len(MIGRATIONS)


def snapshot_db(db: Path, dest: Path) -> None:
    """A consistent copy of the live database (backup.snapshot_database), fsynced and renamed into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for old in dest.parent.glob("pre-*.sqlite"):
        if old != dest:
            old.unlink()  # keep one snapshot: the rollback target of the update being written
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    snapshot_database(db, tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def restore_db(snapshot: Path, db: Path) -> None:
    """Put a snapshot back into the live database (backup API: one transaction, WAL-safe)."""
    if not snapshot.is_file():
        raise UpdateError(f"database snapshot {snapshot} is missing")
    restore_snapshot(snapshot, db)
    # This runs as root (plateau-update-check.service) but the engine runs as the data
    # directory's owner: a -wal or -shm file SQLite created here must stay writable for it.
    owner = db.parent.stat()
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if path.exists() and (path.stat().st_uid, path.stat().st_gid) != (owner.st_uid, owner.st_gid):
            os.chown(path, owner.st_uid, owner.st_gid)


# -- the slot device ------------------------------------------------------------------------

def _device_size(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _mounted_sources(mounts_text: str) -> set[str]:
    return {os.path.realpath(line.split()[0]) for line in mounts_text.splitlines() if line.split()}


def _write_slot(tar: tarfile.TarFile, member: tarfile.TarInfo, expected: PayloadFile, device: Path) -> None:
    """Stream the rootfs onto the device, fsync, drop the cache, read back and compare sha256."""
    fd = os.open(device, os.O_WRONLY)
    try:
        def sink(chunk: bytes) -> None:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]

        _stream(tar, member, expected, sink)
        os.fsync(fd)
    finally:
        os.close(fd)
    fd = os.open(device, os.O_RDONLY)
    try:
        # Drop the pages we just wrote so the read back comes from the disk, not the cache.
        os.posix_fadvise(fd, 0, expected.size, os.POSIX_FADV_DONTNEED)
        digest, left = hashlib.sha256(), expected.size
        while left:
            chunk = os.read(fd, min(_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left or digest.hexdigest() != expected.sha256:
        raise UpdateError(f"read back of {device} does not match rootfs.ext4 (sha256 {digest.hexdigest()}); "
                          "the slot is unusable, the running slot still boots")


def _copy_to_esp(tar: tarfile.TarFile, member: tarfile.TarInfo, expected: PayloadFile, dest: Path) -> None:
    _atomic_write(dest, lambda write: _stream(tar, member, expected, write))


# -- plateau update IMAGE -----------------------------------------------------------------

@dataclass(frozen=True)
class UpdatePaths:
    """Where an update reads and writes; tests pass plain files and directories."""

    esp: Path = DEFAULT_ESP
    data_dir: Path = DEFAULT_DATA_DIR
    slot_device: str = DEFAULT_SLOT_DEVICE  # "{slot}" is replaced by a or b
    key_paths: tuple[Path, ...] | None = None  # None: default_key_paths(data_dir)
    mounts: Path = Path("/proc/self/mounts")

    def keys(self) -> tuple[Path, ...]:
        return self.key_paths if self.key_paths is not None else default_key_paths(self.data_dir)

    def device(self, slot: Slot) -> Path:
        return Path(self.slot_device.format(slot=slot.value))


@dataclass(frozen=True)
class Prepared:
    """A checked bundle and the plan for it: everything `apply` needs, nothing written yet."""

    bundle: Bundle
    plan: slots.UpdatePlan
    device: Path


def prepare(bundle_path: Path, cmdline: str, paths: UpdatePaths, *, require_signature: bool = False) -> Prepared:
    """Every check of an update, writing nothing; raise UpdateError with the reason."""
    state = load_state(paths.data_dir)
    running = slots.running_slot(cmdline)
    entries = read_entries(paths.esp)
    db_schema = db_schema_version(paths.data_dir / DB_NAME)
    bundle = check_bundle(bundle_path, paths.keys(), require_signature=require_signature, db_schema=db_schema)
    try:
        plan = slots.plan_update(running, state.pending, entries, bundle.manifest.version)
    except slots.UpdateRefused as exc:
        hint = ""
        if state.pending is not None:
            verdict = slots.decide_after_boot(state.pending, running, entries, db_schema,
                                              software_schema_version())
            if verdict.outcome in (Outcome.CONFIRMED, Outcome.ROLLED_BACK):
                hint = f" (this boot says {verdict.outcome.value}: run `plateau update --after-boot` first)"
        raise UpdateError(f"{exc}{hint}") from exc
    device = paths.device(plan.slot)
    if not device.exists():
        raise UpdateError(f"slot {plan.slot.value} device {device} does not exist")
    try:
        mounted = _mounted_sources(paths.mounts.read_text())
    except OSError:
        mounted = set()
    if os.path.realpath(device) in mounted:
        raise UpdateError(f"slot {plan.slot.value} device {device} is mounted; refusing to overwrite it")
    size = _device_size(device)
    need = bundle.manifest.files["rootfs.ext4"].size
    if need > size:
        raise UpdateError(f"rootfs.ext4 ({need} bytes) does not fit slot {plan.slot.value} ({size} bytes)")
    return Prepared(bundle, plan, device)


def apply(prepared: Prepared, paths: UpdatePaths, progress: Callable[[str], None] = log.info) -> Pending:
    """Write a prepared update to the inactive slot; the next boot tries it once."""
    plan, manifest = prepared.plan, prepared.bundle.manifest
    edir = entries_dir(paths.esp)
    for name in plan.stale_entries:
        # Its filesystem is about to be overwritten: no entry may point at it meanwhile.
        (edir / name).unlink(missing_ok=True)
    fsync_dir(edir)
    with _open_tar(prepared.bundle.path) as (tar, members):
        progress(f"writing rootfs.ext4 ({manifest.files['rootfs.ext4'].size} bytes) to {prepared.device}")
        _write_slot(tar, members["rootfs.ext4"], manifest.files["rootfs.ext4"], prepared.device)
        kdir = paths.esp / "plateau" / plan.slot.value
        kdir.mkdir(parents=True, exist_ok=True)
        for member, name in ESP_FILES.items():
            progress(f"copying {member} to {kdir / name}")
            _copy_to_esp(tar, members[member], manifest.files[member], kdir / name)
    db = paths.data_dir / DB_NAME
    snapshot: Path | None = None
    if db.exists():
        snapshot = paths.data_dir / "update" / f"pre-{manifest.version}.sqlite"
        progress(f"snapshotting the database to {snapshot}")
        snapshot_db(db, snapshot)
    state = load_state(paths.data_dir)
    before = UpdateState(state.pending, list(state.history))
    pending = Pending(plan.slot, manifest.version, plan.from_slot, plan.from_version,
                      str(snapshot) if snapshot else None, _now())
    state.pending = pending
    state.record("written", plan.slot, manifest.version,
                 f"from slot {plan.from_slot.value} ({plan.from_version}); "
                 + (f"signed ({prepared.bundle.signed_with})" if prepared.bundle.signed_with else "unsigned"))
    save_state(paths.data_dir, state)
    try:
        _atomic_write(edir / plan.entry.file_name, plan.entry.text.encode())
    except OSError:
        save_state(paths.data_dir, before)
        raise
    progress(f"slot {plan.slot.value} holds {manifest.version}; entry {plan.entry.file_name} written: "
             "it boots once at the next restart and stays only if it becomes healthy")
    return pending


# -- after boot and status -------------------------------------------------------------------

@dataclass(frozen=True)
class AfterBootReport:
    decision: AfterBoot
    pending: Pending | None
    restored_from: Path | None
    error: str | None = None


def after_boot(cmdline: str, paths: UpdatePaths) -> AfterBootReport:
    """Apply this boot's verdict on the pending update (plateau-update-check.service).

    CONFIRMED and ROLLED_BACK clear ``pending`` and add a history entry; a rollback
    restores the pre-update snapshot when the database's schema is newer than this
    software's (the engine would refuse it otherwise). IN_PROGRESS and NOTHING change
    nothing.
    """
    state = load_state(paths.data_dir)
    if state.pending is None:
        return AfterBootReport(AfterBoot(Outcome.NOTHING, False, "no update pending"), None, None)
    entries = read_entries(paths.esp)
    db = paths.data_dir / DB_NAME
    decision = slots.decide_after_boot(state.pending, slots.running_slot(cmdline), entries,
                                       db_schema_version(db), software_schema_version())
    pending = state.pending
    restored: Path | None = None
    if decision.outcome is Outcome.CONFIRMED:
        state.pending = None
        state.record("confirmed", pending.slot, pending.version, decision.reason)
    elif decision.outcome is Outcome.ROLLED_BACK:
        detail = decision.reason
        if decision.restore_snapshot:
            snap = Path(pending.db_snapshot) if pending.db_snapshot else None
            try:
                if snap is None:
                    raise UpdateError("no database snapshot was taken before the update")
                restore_db(snap, db)
                restored = snap
                detail += f"; database restored from {snap}"
            except (UpdateError, sqlite3.Error, OSError) as exc:
                # Keep `pending` so that `plateau update --after-boot` can be run again once
                # the snapshot is back; the engine refuses the newer schema meanwhile.
                error = f"database not restored: {exc}"
                state.record("restore-failed", pending.slot, pending.version, f"{detail}; {error}")
                save_state(paths.data_dir, state)
                log.error("update %s: %s", decision.outcome.value, state.history[-1]["detail"])
                return AfterBootReport(decision, pending, None, error)
        state.pending = None
        state.record("rolled-back", pending.slot, pending.version, detail)
    else:
        return AfterBootReport(decision, pending, None)
    save_state(paths.data_dir, state)
    log.info("update %s: %s", decision.outcome.value, state.history[-1]["detail"])
    return AfterBootReport(decision, pending, restored)


@dataclass(frozen=True)
class Status:
    running: Slot | None
    entries: list[dict[str, Any]]  # in systemd-boot's order, the first boots next
    pending: Pending | None
    history: list[dict[str, Any]]
    outcome: AfterBoot | None


def status(cmdline: str, paths: UpdatePaths) -> Status:
    """The slots, entries (in boot order), pending update and recent history."""
    state = load_state(paths.data_dir)
    running = slots.running_slot(cmdline)
    try:
        entries = read_entries(paths.esp)
    except UpdateError:
        entries = []
    listed = [{"file": e.file_name, "slot": e.slot.value if e.slot else None, "version": e.version,
               "assessment": e.assessment.value} for e in slots.boot_order(entries)]
    outcome = None
    if state.pending is not None:
        outcome = slots.decide_after_boot(state.pending, running, entries,
                                          db_schema_version(paths.data_dir / DB_NAME),
                                          software_schema_version())
    return Status(running, listed, state.pending, state.history[-10:], outcome)


def read_cmdline(path: Path = DEFAULT_CMDLINE) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""

