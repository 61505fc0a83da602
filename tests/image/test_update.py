"""`plateau update`: bundles, slot writes, refusals, signatures and the after-boot decisions.

The partitions are plain files, the ESP a directory, /proc/cmdline a string; the bundle is
a real tar holding a real ext4 image made with ``mkfs.ext4 -d``, and the databases are real
SQLite files written through appliance.store.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.cli import main as plateau
from appliance.store.db import Store
from appliance.store.migrations import MIGRATIONS
from appliance.store.models import Extension
from appliance.system import slots, update
from appliance.system.slots import Assessment, Outcome, Pending, Slot

SLOT_SIZE = 8 << 20


# -- fixtures: a box made of files ------------------------------------------------------------

@dataclass
class Box:
    root: Path
    esp: Path
    data: Path
    etc_key: Path
    data_key: Path

    def slot_file(self, slot: str) -> Path:
        return self.root / f"slot-{slot}.img"

    def paths(self) -> update.UpdatePaths:
        return update.UpdatePaths(esp=self.esp, data_dir=self.data,
                                  slot_device=str(self.root / "slot-{slot}.img"),
                                  key_paths=(self.etc_key, self.data_key), mounts=self.root / "mounts")

    def cli(self, *args: str, cmdline: str = "BOOT_IMAGE=/plateau/a/vmlinuz ro plateau.slot=a") -> int:
        return plateau(["update", *args, "--esp", str(self.esp), "--data-dir", str(self.data),
                        "--cmdline", cmdline, "--slot-device", str(self.root / "slot-{slot}.img"),
                        "--key", str(self.etc_key), "--key", str(self.data_key)])

    def entries(self) -> list[str]:
        return sorted(p.name for p in update.entries_dir(self.esp).iterdir())

    def boots_next(self) -> str:
        return slots.boot_order(update.read_entries(self.esp))[0].file_name

    def bless(self, slot: str) -> None:
        """What systemd-bless-boot does once boot-complete.target is reached."""
        d = update.entries_dir(self.esp)
        (old,) = [p for p in d.iterdir() if p.name.startswith(f"plateau-{slot}+")]
        old.rename(d / f"plateau-{slot}.conf")

    def boot_tried(self, slot: str) -> None:
        """What systemd-boot does when it boots an entry with a counter: +1 -> +0-1."""
        d = update.entries_dir(self.esp)
        (old,) = [p for p in d.iterdir() if p.name.startswith(f"plateau-{slot}+")]
        left, _, done = old.name[len(f"plateau-{slot}+"):-len(".conf")].partition("-")
        old.rename(d / f"plateau-{slot}+{int(left) - 1}-{int(done or 0) + 1}.conf")


@pytest.fixture
def box(tmp_path: Path) -> Box:
    root = tmp_path / "box"
    esp, data = root / "esp", root / "data"
    update.entries_dir(esp).mkdir(parents=True)
    (esp / "plateau" / "a").mkdir(parents=True)
    (esp / "plateau" / "a" / "vmlinuz").write_bytes(b"old kernel a")
    (esp / "plateau" / "a" / "initrd.img").write_bytes(b"old initrd a")
    (update.entries_dir(esp) / "plateau-a.conf").write_text(slots.entry_text(Slot.A, "1.0"))
    data.mkdir()
    (root / "mounts").write_text("/dev/sda2 / ext4 ro 0 0\n")
    for s in "ab":
        with open(root / f"slot-{s}.img", "wb") as f:
            f.truncate(SLOT_SIZE)
    return Box(root, esp, data, root / "etc-update-key.pub", data / "update-key.pub")


@pytest.fixture
def db(box: Box) -> Path:
    """A populated appliance database at the current schema."""
    path = box.data / "plateau.db"
    with Store(path) as store:
        store.put_extension(Extension(number="1001", name="Alice", secret="s3cret-alice"))
        store.put_extension(Extension(number="1002", name="Bob", secret="s3cret-bob"))
        cdr = store.cdr_open("call-1", "1001", "Alice", "1002", "internal", time.time() - 60)
        store.cdr_answer(cdr, time.time() - 50)
        store.cdr_close(cdr, time.time(), "ANSWERED", None)
    return path


def make_rootfs(work: Path, version: str) -> bytes:
    src = work / f"rootfs-{version}"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "plateau-release").write_text(f"VERSION={version}\n")
    (src / "opt" / "plateau").mkdir(parents=True)
    (src / "opt" / "plateau" / "payload.bin").write_bytes(os.urandom(100_000))
    img = work / f"rootfs-{version}.ext4"
    with open(img, "wb") as f:
        f.truncate(2 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(img)], check=True, capture_output=True)
    return img.read_bytes()


def manifest_for(version: str, files: dict[str, bytes], schema: int = len(MIGRATIONS)) -> dict:
    return {"format": "plateau-update", "format_version": 1, "version": version,
            "created_at": "2025-06-01T00:00:00Z", "schema_version": schema,
            "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in files.items()}}


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(payload))
    return path


def sign(key: Path, data: bytes, work: Path) -> bytes:
    msg, sig = work / "to-sign", work / "sig"
    msg.write_bytes(data)
    subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in", str(msg),
                    "-out", str(sig)], check=True, capture_output=True)
    return sig.read_bytes()


@functools.cache
def _payload(work: str, version: str) -> dict[str, bytes]:
    return {"rootfs.ext4": make_rootfs(Path(work), version),
            "vmlinuz": os.urandom(300_000), "initrd.img": os.urandom(500_000)}


def make_bundle(work: Path, version: str = "2.0", *, key: Path | None = None,
                manifest: dict | None = None, drop: str | None = None,
                extra: dict[str, bytes] | None = None, tamper: str | None = None) -> tuple[Path, dict[str, bytes]]:
    """A bundle as the image build makes it; keyword arguments break it in one way."""
    work.mkdir(parents=True, exist_ok=True)
    files = dict(_payload(str(work), version))
    raw = json.dumps(manifest if manifest is not None else manifest_for(version, files)).encode()
    members = {"manifest.json": raw, **files}
    if key is not None:
        members["manifest.json.sig"] = sign(key, raw, work)
    if tamper is not None:
        members[tamper] = bytes([members[tamper][0] ^ 1]) + members[tamper][1:]
    if drop is not None:
        del members[drop]
    members.update(extra or {})
    return write_tar(work / f"plateau-{version}.update", members), files


def keypair(work: Path, name: str) -> tuple[Path, Path]:
    priv, pub = work / f"{name}.pem", work / f"{name}.pub"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(priv)], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(priv), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    return priv, pub


def disk(box: Box) -> dict[str, str]:
    """Every file of the box (ESP, data, slots) and its sha256: to prove nothing changed."""
    out = {}
    for p in sorted(box.root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(box.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# -- happy path -------------------------------------------------------------------------------

def test_update_writes_inactive_slot_entry_last_and_pending_state(box: Box, db: Path, tmp_path: Path) -> None:
    bundle, files = make_bundle(tmp_path / "b")
    slot_a_before = box.slot_file("a").read_bytes()

    assert box.cli(str(bundle), "--yes") == 0

    assert box.entries() == ["plateau-a.conf", "plateau-b+1.conf"]
    assert box.boots_next() == "plateau-b+1.conf"
    rootfs = files["rootfs.ext4"]
    slot_b = box.slot_file("b").read_bytes()
    assert slot_b[:len(rootfs)] == rootfs and len(slot_b) == SLOT_SIZE
    assert box.slot_file("a").read_bytes() == slot_a_before
    assert (box.esp / "plateau" / "b" / "vmlinuz").read_bytes() == files["vmlinuz"]
    assert (box.esp / "plateau" / "b" / "initrd.img").read_bytes() == files["initrd.img"]
    entry = (update.entries_dir(box.esp) / "plateau-b+1.conf").read_text()
    assert "options root=PARTLABEL=plateau-root-b ro plateau.slot=b" in entry
    assert "version 2.0" in entry and "linux /plateau/b/vmlinuz" in entry

    state = json.loads(update.state_path(box.data).read_text())
    pending = state["pending"]
    assert (pending["slot"], pending["version"], pending["from_slot"], pending["from_version"]) == \
        ("b", "2.0", "a", "1.0")
    assert state["history"][-1]["event"] == "written"
    snapshot = Path(pending["db_snapshot"])
    assert snapshot == box.data / "update" / "pre-2.0.sqlite"
    with Store(snapshot) as snap:
        assert [e.number for e in snap.extensions()] == ["1001", "1002"]
        assert len(snap.cdrs()) == 1
    leftovers = [p for p in box.root.rglob(".*.tmp")]
    assert leftovers == []


def test_bundle_made_by_gnu_tar_like_image_build(box: Box, tmp_path: Path) -> None:
    """image/build packs the bundle with GNU tar (--format=gnu, root owner, fixed mtime)."""
    work = tmp_path / "gnu"
    work.mkdir()
    files = _payload(str(work), "2.0")
    members = {"manifest.json": json.dumps(manifest_for("2.0", files), indent=2).encode(), **files}
    for name, payload in members.items():
        (work / name).write_bytes(payload)
    bundle = work / "plateau-2.0.update"
    subprocess.run(["tar", "-C", str(work), "--format=gnu", "--owner=0", "--group=0", "--numeric-owner",
                    "--mtime=@1700000000", "-cf", str(bundle), *members], check=True)
    assert box.cli(str(bundle), "--yes") == 0
    assert box.boots_next() == "plateau-b+1.conf"
    assert box.slot_file("b").read_bytes()[:len(files["rootfs.ext4"])] == files["rootfs.ext4"]


def test_update_asks_before_writing(box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle, _ = make_bundle(tmp_path / "b")
    before = disk(box)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert box.cli(str(bundle)) == 1
    assert disk(box) == before
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert box.cli(str(bundle)) == 0
    assert box.entries() == ["plateau-a.conf", "plateau-b+1.conf"]


# -- refusals: exit 2, nothing written --------------------------------------------------------

def _not_a_tar(box: Box, work: Path) -> tuple[Path, str]:
    p = work / "junk.update"
    p.write_bytes(b"this is not a tar archive" * 100)
    return p, "not an uncompressed tar"


def _gzip_tar(box: Box, work: Path) -> tuple[Path, str]:
    bundle, _ = make_bundle(work)
    gz = work / "compressed.update"
    with tarfile.open(bundle) as src, tarfile.open(gz, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
    return gz, "not an uncompressed tar"


def _missing_member(box: Box, work: Path) -> tuple[Path, str]:
    return make_bundle(work, drop="initrd.img")[0], "lacks initrd.img"


def _extra_member(box: Box, work: Path) -> tuple[Path, str]:
    return make_bundle(work, extra={"evil.sh": b"rm -rf /"})[0], "unexpected members: evil.sh"


def _checksum_mismatch(box: Box, work: Path) -> tuple[Path, str]:
    return make_bundle(work, tamper="rootfs.ext4")[0], "rootfs.ext4: checksum mismatch"


def _size_mismatch(box: Box, work: Path) -> tuple[Path, str]:
    work.mkdir(parents=True, exist_ok=True)
    m = manifest_for("2.0", _payload(str(work), "2.0"))
    m["files"]["vmlinuz"]["size"] += 1
    return make_bundle(work, manifest=m)[0], "vmlinuz: size"


def _bad_format_version(box: Box, work: Path) -> tuple[Path, str]:
    work.mkdir(parents=True, exist_ok=True)
    m = manifest_for("2.0", _payload(str(work), "2.0"))
    m["format_version"] = 2
    return make_bundle(work, manifest=m)[0], "format_version 2 is not supported"


def _bad_format(box: Box, work: Path) -> tuple[Path, str]:
    work.mkdir(parents=True, exist_ok=True)
    m = manifest_for("2.0", _payload(str(work), "2.0"))
    m["format"] = "something-else"
    return make_bundle(work, manifest=m)[0], "format is 'something-else'"


def _manifest_not_json(box: Box, work: Path) -> tuple[Path, str]:
    work.mkdir(parents=True, exist_ok=True)
    files = _payload(str(work), "2.0")
    return write_tar(work / "x.update", {"manifest.json": b"{not json", **files}), "manifest.json is not JSON"


def _bad_signature(box: Box, work: Path) -> tuple[Path, str]:
    work.mkdir(parents=True, exist_ok=True)
    _, pub = keypair(work, "trusted")
    other, _ = keypair(work, "attacker")
    box.data_key.write_bytes(pub.read_bytes())
    return make_bundle(work, key=other)[0], "bad signature"


def _unsigned_with_key(box: Box, work: Path) -> tuple[Path, str]:
    work.mkdir(parents=True, exist_ok=True)
    _, pub = keypair(work, "trusted")
    box.etc_key.write_bytes(pub.read_bytes())
    return make_bundle(work)[0], "not signed, and an update key is configured"


def _rootfs_too_big(box: Box, work: Path) -> tuple[Path, str]:
    with open(box.slot_file("b"), "r+b") as f:
        f.truncate(1 << 20)
    return make_bundle(work)[0], "does not fit slot b"


def _slot_device_missing(box: Box, work: Path) -> tuple[Path, str]:
    box.slot_file("b").unlink()
    return make_bundle(work)[0], "device"


def _pending_unconfirmed(box: Box, work: Path) -> tuple[Path, str]:
    state = update.UpdateState(Pending(Slot.B, "1.5", Slot.A, "1.0", None, "2025-01-01T00:00:00Z"))
    update.save_state(box.data, state)
    return make_bundle(work)[0], "still pending"


def _not_newer(box: Box, work: Path) -> tuple[Path, str]:
    return make_bundle(work, version="0.9")[0], "would not boot version 0.9"


def _schema_older_than_db(box: Box, work: Path) -> tuple[Path, str]:
    with Store(box.data / "plateau.db"):
        pass
    work.mkdir(parents=True, exist_ok=True)
    m = manifest_for("2.0", _payload(str(work), "2.0"), schema=len(MIGRATIONS) - 1)
    return make_bundle(work, manifest=m)[0], f"the database is at {len(MIGRATIONS)}"


REFUSALS = [_not_a_tar, _gzip_tar, _missing_member, _extra_member, _checksum_mismatch, _size_mismatch,
            _bad_format_version, _bad_format, _manifest_not_json, _bad_signature, _unsigned_with_key,
            _rootfs_too_big, _slot_device_missing, _pending_unconfirmed, _not_newer,
            _schema_older_than_db]


@pytest.mark.parametrize("case", REFUSALS, ids=[f.__name__.strip("_") for f in REFUSALS])
def test_bad_input_is_refused_and_nothing_changes(case, box: Box, db: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "work").mkdir()
    bundle, message = case(box, tmp_path / "work")
    before = disk(box)
    assert box.cli(str(bundle), "--yes") == 2
    err = capsys.readouterr().err
    assert message in err and "nothing written" in err, err
    assert disk(box) == before


def test_unknown_running_slot_is_refused(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, _ = make_bundle(tmp_path / "b")
    before = disk(box)
    assert box.cli(str(bundle), "--yes", cmdline="BOOT_IMAGE=/vmlinuz root=/dev/sda2 ro") == 2
    assert "running slot is unknown" in capsys.readouterr().err
    assert disk(box) == before


def test_missing_bundle_and_missing_esp(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert box.cli(str(tmp_path / "nope.update"), "--yes") == 2
    assert "no such file" in capsys.readouterr().err
    bundle, _ = make_bundle(tmp_path / "b")
    update.entries_dir(box.esp).rename(box.root / "elsewhere")
    assert box.cli(str(bundle), "--yes") == 2
    assert "is the ESP mounted" in capsys.readouterr().err


def test_mounted_slot_device_is_refused(box: Box, tmp_path: Path) -> None:
    (box.root / "mounts").write_text(f"{box.slot_file('b')} /mnt ext4 rw 0 0\n")
    bundle, _ = make_bundle(tmp_path / "b")
    before = disk(box)
    with pytest.raises(update.UpdateError, match="is mounted"):
        update.prepare(bundle, "ro plateau.slot=a", box.paths())
    assert disk(box) == before


def test_require_signature_without_any_key(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, _ = make_bundle(tmp_path / "b")
    before = disk(box)
    assert box.cli(str(bundle), "--yes", "--require-signature") == 2
    assert "no update key exists" in capsys.readouterr().err
    assert disk(box) == before


# -- signatures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["etc", "data"])
def test_signed_bundle_is_accepted_with_the_configured_key(where: str, box: Box, tmp_path: Path) -> None:
    priv, pub = keypair(tmp_path, "release")
    (box.etc_key if where == "etc" else box.data_key).write_bytes(pub.read_bytes())
    bundle, _ = make_bundle(tmp_path / "b", key=priv)
    assert box.cli(str(bundle), "--yes") == 0
    state = update.load_state(box.data)
    assert state.pending is not None and state.pending.slot is Slot.B
    assert "signed" in state.history[-1]["detail"] and "unsigned" not in state.history[-1]["detail"]


def test_manifest_signature_covers_the_payload(box: Box, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid signature does not make a swapped payload acceptable: the manifest pins its sha256."""
    priv, pub = keypair(tmp_path, "release")
    box.data_key.write_bytes(pub.read_bytes())
    bundle, _ = make_bundle(tmp_path / "b", key=priv, tamper="vmlinuz")
    before = disk(box)
    assert box.cli(str(bundle), "--yes") == 2
    assert "vmlinuz: checksum mismatch" in capsys.readouterr().err
    assert disk(box) == before


def test_unsigned_bundle_is_accepted_when_no_key_is_configured(box: Box, tmp_path: Path) -> None:
    bundle = update.check_bundle(make_bundle(tmp_path / "b")[0], (box.etc_key, box.data_key))
    assert bundle.signed_with is None and bundle.manifest.version == "2.0"


# -- a failed write leaves a bootable box ---------------------------------------------------------

def test_failed_write_keeps_the_running_slot_bootable(box: Box, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Slot b holds an older, blessed install; the ESP cannot take slot b's kernel (a file is
    # in the way of its directory), so the write fails after the rootfs went to slot b.
    (update.entries_dir(box.esp) / "plateau-b.conf").write_text(slots.entry_text(Slot.B, "0.5"))
    (box.esp / "plateau" / "b").write_bytes(b"in the way")
    bundle, _ = make_bundle(tmp_path / "b")
    assert box.cli(str(bundle), "--yes") == 2
    assert "write failed" in capsys.readouterr().err
    # The running slot's entry is intact and boots next; no entry points at the half-written slot.
    assert box.entries() == ["plateau-a.conf"]
    assert box.boots_next() == "plateau-a.conf"
    assert update.load_state(box.data).pending is None
    assert [p for p in box.root.rglob(".*.tmp")] == []


# -- after boot: the decision table, on real files ---------------------------------------------------

def _updated(box: Box, tmp_path: Path, version: str = "2.0") -> None:
    bundle, _ = make_bundle(tmp_path / f"b-{version}", version=version)
    assert box.cli(str(bundle), "--yes") == 0


def test_after_boot_confirmed(box: Box, db: Path, tmp_path: Path) -> None:
    _updated(box, tmp_path)
    box.boot_tried("b")
    box.bless("b")
    assert box.cli("--after-boot", cmdline="ro plateau.slot=b") == 0
    state = update.load_state(box.data)
    assert state.pending is None
    assert state.history[-1]["event"] == "confirmed" and state.history[-1]["version"] == "2.0"
    assert box.boots_next() == "plateau-b.conf"


def test_after_boot_in_progress_changes_nothing(box: Box, db: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _updated(box, tmp_path)
    box.boot_tried("b")  # plateau-b+0-1.conf: booting it now, health not passed yet
    before = disk(box)
    assert box.cli("--after-boot", cmdline="ro plateau.slot=b") == 0
    assert "in-progress" in capsys.readouterr().out
    assert disk(box) == before
    assert update.load_state(box.data).pending is not None


def test_after_boot_rolled_back_restores_a_newer_schema(box: Box, db: Path, tmp_path: Path) -> None:
    _updated(box, tmp_path)
    box.boot_tried("b")
    # Slot b's engine migrated the database one step beyond this software, changed data, then
    # never became healthy: the next boot fell back to slot a (b's entry has no tries left).
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE future_feature (x INTEGER)")
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                     (len(MIGRATIONS) + 1, time.time()))
        conn.execute("DELETE FROM extensions WHERE number = '1002'")
    conn.close()
    with pytest.raises(Exception, match="newer than this software"):
        Store(db)
    assert box.boots_next() == "plateau-a.conf"
    # The engine's user owns the data directory; the check runs as root (its unit) and must not
    # leave the restored database or its WAL files owned by root.
    os.chown(db.parent, 4242, 4242)
    for path in db.parent.glob(db.name + "*"):
        os.chown(path, 4242, 4242)

    assert box.cli("--after-boot", cmdline="ro plateau.slot=a") == 0

    owners = {p.name: (p.stat().st_uid, p.stat().st_gid) for p in db.parent.glob(db.name + "*")}
    assert set(owners.values()) == {(4242, 4242)}, owners
    with Store(db) as store:  # opens again: the pre-update snapshot is back
        assert store.schema_version() == len(MIGRATIONS)
        assert [e.number for e in store.extensions()] == ["1001", "1002"]
        bob = store.get_extension("1002")
        assert bob is not None and bob.secret == "s3cret-bob"
        assert len(store.cdrs()) == 1
    state = update.load_state(box.data)
    assert state.pending is None
    assert state.history[-1]["event"] == "rolled-back"
    assert "database restored" in state.history[-1]["detail"]


def test_after_boot_rolled_back_keeps_data_when_schema_is_unchanged(box: Box, db: Path, tmp_path: Path) -> None:
    _updated(box, tmp_path)
    box.boot_tried("b")
    with Store(db) as store:  # written during the failed boot, same schema: must survive
        store.put_extension(Extension(number="1003", name="Carol", secret="s3cret-carol"))
    assert box.cli("--after-boot", cmdline="ro plateau.slot=a") == 0
    with Store(db) as store:
        assert [e.number for e in store.extensions()] == ["1001", "1002", "1003"]
    state = update.load_state(box.data)
    assert state.pending is None and state.history[-1]["event"] == "rolled-back"
    assert "restored" not in state.history[-1]["detail"]


def test_after_boot_rollback_with_missing_snapshot_keeps_pending(box: Box, db: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _updated(box, tmp_path)
    box.boot_tried("b")
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                     (len(MIGRATIONS) + 1, time.time()))
    conn.close()
    pending = update.load_state(box.data).pending
    assert pending is not None and pending.db_snapshot
    Path(pending.db_snapshot).unlink()
    assert box.cli("--after-boot", cmdline="ro plateau.slot=a") == 1
    assert "snapshot" in capsys.readouterr().err
    state = update.load_state(box.data)
    assert state.pending is not None and state.history[-1]["event"] == "restore-failed"


def test_after_boot_nothing(box: Box, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert box.cli("--after-boot") == 0
    assert "nothing" in capsys.readouterr().out
    assert not update.state_path(box.data).exists()
    # Written but the box has not restarted into it yet: still pending, nothing decided.
    _updated(box, tmp_path)
    before = disk(box)
    assert box.cli("--after-boot", cmdline="ro plateau.slot=a") == 0
    assert disk(box) == before


def test_second_update_after_confirmed_targets_the_other_slot(box: Box, db: Path, tmp_path: Path) -> None:
    _updated(box, tmp_path, "2.0")
    box.boot_tried("b")
    box.bless("b")
    assert box.cli("--after-boot", cmdline="ro plateau.slot=b") == 0

    bundle, files = make_bundle(tmp_path / "b-3.0", version="3.0")
    assert box.cli(str(bundle), "--yes", cmdline="ro plateau.slot=b") == 0
    assert box.entries() == ["plateau-a+1.conf", "plateau-b.conf"]  # stale plateau-a.conf replaced
    assert box.boots_next() == "plateau-a+1.conf"
    assert box.slot_file("a").read_bytes()[:len(files["rootfs.ext4"])] == files["rootfs.ext4"]
    pending = update.load_state(box.data).pending
    assert pending is not None
    assert (pending.slot, pending.from_slot, pending.from_version) == (Slot.A, Slot.B, "2.0")
    assert sorted(p.name for p in (box.data / "update").glob("pre-*.sqlite")) == ["pre-3.0.sqlite"]


def test_status_reports_slots_entries_and_pending(box: Box, db: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _updated(box, tmp_path)
    capsys.readouterr()
    assert box.cli("--status", "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["running"] == "a"
    assert [e["file"] for e in st["entries"]] == ["plateau-b+1.conf", "plateau-a.conf"]
    assert st["pending"]["version"] == "2.0" and st["outcome"]["outcome"] == "nothing"
    assert box.cli("--status") == 0
    out = capsys.readouterr().out
    assert "running slot: a" in out and "pending: 2.0 on slot b" in out


def test_update_while_pending_points_at_after_boot(box: Box, db: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Blessed during this boot but not yet recorded: the refusal says what to run."""
    _updated(box, tmp_path, "2.0")
    box.boot_tried("b")
    box.bless("b")
    bundle, _ = make_bundle(tmp_path / "b-3.0", version="3.0")
    assert box.cli(str(bundle), "--yes", cmdline="ro plateau.slot=b") == 2
    assert "confirmed: run `plateau update --after-boot` first" in capsys.readouterr().err
    assert box.cli("--after-boot", cmdline="ro plateau.slot=b") == 0
    assert box.cli(str(bundle), "--yes", cmdline="ro plateau.slot=b") == 0


def test_update_needs_exactly_one_mode(box: Box, capsys: pytest.CaptureFixture[str]) -> None:
    assert box.cli() == 2
    assert box.cli("--status", "--after-boot") == 2


# -- slots.py: pure decisions --------------------------------------------------------------------------

def entry(name: str, version: str | None = None, sort_key: str | None = slots.SORT_KEY) -> slots.BootEntry:
    return slots.BootEntry(slots.parse_entry_name(name), version=version, sort_key=sort_key)


@pytest.mark.parametrize("name, slot, left, done, assessment", [
    ("plateau-a.conf", Slot.A, None, None, Assessment.GOOD),
    ("plateau-b+1.conf", Slot.B, 1, 0, Assessment.INDETERMINATE),
    ("plateau-b+0-1.conf", Slot.B, 0, 1, Assessment.BAD),
    ("plateau-a+3-2.conf", Slot.A, 3, 2, Assessment.INDETERMINATE),
    ("plateau-c.conf", None, None, None, Assessment.GOOD),
    ("debian-6.1.conf", None, None, None, Assessment.GOOD),
    ("plateau-b+1x.conf", None, None, None, Assessment.GOOD),  # not a counter: id "plateau-b+1x"
    ("plateau-b+1-.conf", None, None, None, Assessment.GOOD),
])
def test_entry_names_follow_the_boot_counting_grammar(name, slot, left, done, assessment) -> None:
    parsed = slots.parse_entry_name(name)
    assert (parsed.slot, parsed.tries_left, parsed.tries_done, parsed.assessment) == (slot, left, done, assessment)


def test_entry_name_must_be_conf() -> None:
    with pytest.raises(ValueError):
        slots.parse_entry_name("plateau-a.efi")


@pytest.mark.parametrize("cmdline, slot", [
    ("BOOT_IMAGE=/plateau/a/vmlinuz root=PARTLABEL=plateau-root-a ro plateau.slot=a panic=10", Slot.A),
    ("ro plateau.slot=b\n", Slot.B),
    ("ro plateau.slot=a plateau.slot=b", Slot.B),
    ("ro plateau.slot=c", None),
    ("ro plateau.slot", None),
    ("ro xplateau.slot=a", None),
    ("", None),
])
def test_running_slot_from_cmdline(cmdline: str, slot: Slot | None) -> None:
    assert slots.running_slot(cmdline) is slot


def test_strverscmp_matches_systemds_documented_order() -> None:
    ordered = ["122.1", "123~rc1-1", "123", "123-a", "123-a.1", "123-1", "123-1.1", "123^post1",
               "123.a-1", "123.1-1", "123a-1", "124-1"]
    got = sorted(reversed(ordered), key=functools.cmp_to_key(slots.strverscmp_improved))
    assert got == ordered
    assert slots.strverscmp_improved("1.10", "1.9") == 1
    assert slots.strverscmp_improved("00123", "123") == 0
    assert slots.strverscmp_improved(None, "1") == -1


def test_boot_order_bad_entries_last_and_newest_good_version_first() -> None:
    a, b_new = entry("plateau-a.conf", "1.0"), entry("plateau-b+1.conf", "2.0")
    b_bad = entry("plateau-b+0-1.conf", "2.0")
    assert [e.file_name for e in slots.boot_order([a, b_new])] == ["plateau-b+1.conf", "plateau-a.conf"]
    assert [e.file_name for e in slots.boot_order([b_bad, a])] == ["plateau-a.conf", "plateau-b+0-1.conf"]
    # Version, not slot letter, decides among entries with a sort key: a newer "a" beats "b".
    assert slots.boot_order([entry("plateau-b.conf", "2.0"), entry("plateau-a+1.conf", "3.0")])[0].slot is Slot.A
    # Without sort keys systemd-boot 252 orders by file name only (b before a whatever the
    # versions): the reason our entries carry "sort-key plateau".
    plain = [entry("plateau-b.conf", "2.0", None), entry("plateau-a+1.conf", "3.0", None)]
    assert slots.boot_order(plain)[0].slot is Slot.B
    # An entry with a sort key comes before one without (a first image's entry may lack it).
    assert slots.boot_order([entry("plateau-a.conf", "9.0", None), entry("plateau-b+1.conf", "2.0")])[0].slot is Slot.B
    # Only bad entries: the least bad is still booted (first in order).
    assert slots.boot_order([entry("plateau-b+0-1.conf", "2.0")])[0].file_name == "plateau-b+0-1.conf"


def test_parse_entry_reads_sort_keys() -> None:
    e = slots.parse_entry("plateau-b+1.conf", slots.entry_text(Slot.B, "2.0") + "# comment\n")
    assert (e.version, e.sort_key, e.slot, e.title) == ("2.0", "plateau", Slot.B, "Plateau 2.0 (slot b)")


def _pending(slot: Slot = Slot.B) -> Pending:
    return Pending(slot, "2.0", slot.other, "1.0", "/x/pre-2.0.sqlite", "2025-06-01T00:00:00Z")


@pytest.mark.parametrize("pending, running, names, db_schema, outcome, restore", [
    (None, Slot.A, ["plateau-a.conf"], 5, Outcome.NOTHING, False),
    (_pending(), None, ["plateau-a.conf", "plateau-b.conf"], 5, Outcome.NOTHING, False),
    (_pending(), Slot.B, ["plateau-a.conf", "plateau-b.conf"], 6, Outcome.CONFIRMED, False),
    (_pending(), Slot.B, ["plateau-a.conf", "plateau-b+0-1.conf"], 6, Outcome.IN_PROGRESS, False),
    (_pending(), Slot.B, ["plateau-a.conf"], 6, Outcome.IN_PROGRESS, False),
    (_pending(), Slot.A, ["plateau-a.conf", "plateau-b+0-1.conf"], 6, Outcome.ROLLED_BACK, True),
    (_pending(), Slot.A, ["plateau-a.conf", "plateau-b+0-1.conf"], 5, Outcome.ROLLED_BACK, False),
    (_pending(), Slot.A, ["plateau-a.conf", "plateau-b+0-1.conf"], None, Outcome.ROLLED_BACK, False),
    (_pending(), Slot.A, ["plateau-a.conf"], 6, Outcome.ROLLED_BACK, True),
    (_pending(), Slot.A, ["plateau-a.conf", "plateau-b+1.conf"], 5, Outcome.NOTHING, False),
    (_pending(), Slot.A, ["plateau-a.conf", "plateau-b.conf"], 6, Outcome.CONFIRMED, False),
    (_pending(Slot.A), Slot.A, ["plateau-a.conf", "plateau-b.conf"], 6, Outcome.CONFIRMED, False),
    (_pending(Slot.A), Slot.B, ["plateau-a+0-1.conf", "plateau-b.conf"], 6, Outcome.ROLLED_BACK, True),
])
def test_decide_after_boot_table(pending, running, names, db_schema, outcome, restore) -> None:
    entries = [entry(n, "2.0" if n.startswith(f"plateau-{pending.slot.value if pending else 'b'}") else "1.0")
               for n in names]
    got = slots.decide_after_boot(pending, running, entries, db_schema, software_schema=5)
    assert (got.outcome, got.restore_snapshot) == (outcome, restore), got.reason


def test_plan_update_refusals_and_target() -> None:
    entries = [entry("plateau-a.conf", "1.0"), entry("plateau-b+0-1.conf", "1.5")]
    plan = slots.plan_update(Slot.A, None, entries, "2.0")
    assert (plan.slot, plan.from_slot, plan.from_version) == (Slot.B, Slot.A, "1.0")
    assert plan.entry.file_name == "plateau-b+1.conf" and plan.stale_entries == ("plateau-b+0-1.conf",)
    with pytest.raises(slots.UpdateRefused, match="unknown"):
        slots.plan_update(None, None, entries, "2.0")
    with pytest.raises(slots.UpdateRefused, match="pending"):
        slots.plan_update(Slot.A, _pending(), entries, "2.0")
    with pytest.raises(slots.UpdateRefused, match="would not boot"):
        slots.plan_update(Slot.A, None, entries, "0.9")
    # Same version: systemd-boot falls back to the file name, where b sorts before a.
    assert slots.plan_update(Slot.A, None, entries, "1.0").slot is Slot.B
    with pytest.raises(slots.UpdateRefused, match="would not boot"):
        slots.plan_update(Slot.B, None, [entry("plateau-b.conf", "1.0")], "1.0")
