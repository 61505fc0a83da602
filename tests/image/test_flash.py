"""`plateau-flash`: refusals and verification, on plain files and on real loop devices.

Loop devices are real block devices (losetup on a tmp file), always detached in a finally;
the system-disk test feeds the refusal function this machine's own /sys and /proc data and
writes nothing.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import lzma
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from appliance.system import flash
from appliance.system.flash import BlockNode, Mount, Target

IMAGE_SIZE = 6 << 20 | 12345  # not a multiple of the 4 MiB block: the tail must be written and verified


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(IMAGE_SIZE)
    path = tmp_path / "plateau-1.0.img"
    path.write_bytes(data)
    (tmp_path / "plateau-1.0.img.sha256").write_text(f"{_sha(data)}  plateau-1.0.img\n")
    return path, data


@contextlib.contextmanager
def loop_device(backing: Path, *extra: str) -> Iterator[Path]:
    dev = subprocess.run(["losetup", "-f", "--show", *extra, str(backing)], check=True,
                         capture_output=True, text=True).stdout.strip()
    try:
        yield Path(dev)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def _run(*argv: str, answer: str | None = None, **kw: object) -> tuple[int, str]:
    out = io.StringIO()

    def ask(prompt: str) -> str:
        out.write(prompt)
        if answer is None:
            raise EOFError
        return answer

    code = flash.run(list(argv), out=out, ask=ask, **kw)  # type: ignore[arg-type]
    return code, out.getvalue()


def _read(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


# -- pure decisions on made-up systems -------------------------------------------------------------
def _topo(*nodes: BlockNode) -> dict[str, BlockNode]:
    return {n.name: n for n in nodes}


LVM_BOX = _topo(
    BlockNode("sda", (8, 0), 500 << 30, model="ATA SSD"),
    BlockNode("sda1", (8, 1), 1 << 30, partition_of="sda"),
    BlockNode("sda2", (8, 2), 400 << 30, partition_of="sda", holders=("dm-0",)),
    BlockNode("dm-0", (253, 0), 400 << 30, slaves=("sda2",)),
    BlockNode("sdb", (8, 16), 16 << 30, removable=True),
    BlockNode("sdb1", (8, 17), 16 << 30, partition_of="sdb"),
    BlockNode("sdc", (8, 32), 2 << 30, read_only=True),
)
LVM_MOUNTS = [Mount((253, 0), "/", "ext4", "dm-0"), Mount((8, 1), "/boot", "ext4", "sda1")]


def test_system_disk_found_through_lvm_and_partitions() -> None:
    system, unknown = flash.system_devices(LVM_MOUNTS, LVM_BOX)
    assert system == {"dm-0", "sda2", "sda", "sda1"} and unknown == []
    why = flash.refusals(Target(Path("/dev/sda"), "block", "sda"), 1 << 30, LVM_BOX, LVM_MOUNTS, set())
    assert any("holds the running system" in w for w in why)
    assert any("/dev/sda1 is mounted at /boot" in w for w in why)
    assert any("/dev/dm-0 is built on this disk" in w for w in why)


def test_removable_disk_accepted_and_each_refusal_named() -> None:
    sdb = Target(Path("/dev/sdb"), "block", "sdb")
    assert flash.refusals(sdb, 4 << 30, LVM_BOX, LVM_MOUNTS, set()) == []
    assert flash.refusals(sdb, 32 << 30, LVM_BOX, LVM_MOUNTS, set()) == [
        "/dev/sdb is too small: 16.0 GiB for an image of 32.0 GiB"]
    assert flash.refusals(sdb, None, LVM_BOX, [*LVM_MOUNTS, Mount((8, 17), "/media/usb key", "vfat", "sdb1")],
                          set()) == ["/dev/sdb1 is mounted at /media/usb key: unmount it first"]
    assert flash.refusals(sdb, None, LVM_BOX, LVM_MOUNTS, {"sdb1"}) == [
        "/dev/sdb1 is in use as swap (swapoff it first)"]
    assert flash.refusals(Target(Path("/dev/sdb1"), "block", "sdb1"), None, LVM_BOX, LVM_MOUNTS, set()) == [
        "/dev/sdb1 is a partition of /dev/sdb; give the whole disk"]
    assert flash.refusals(Target(Path("/dev/sdc"), "block", "sdc"), None, LVM_BOX, LVM_MOUNTS, set()) == [
        "/dev/sdc is read-only"]
    assert "not a block device" in flash.refusals(Target(Path("/dev/tty"), "other"), None, LVM_BOX, [], set())[0]


def test_root_on_a_loop_file_makes_its_disk_the_system_disk() -> None:
    # A live system: / is a loop device whose backing file lives on the USB stick's partition.
    topo = _topo(BlockNode("sdb", (8, 16), 8 << 30), BlockNode("sdb1", (8, 17), 8 << 30, partition_of="sdb"),
                 BlockNode("loop0", (7, 0), 2 << 30, backing_dev=(8, 17), backing_file="/run/live/fs.squashfs"),
                 BlockNode("sdc", (8, 32), 8 << 30))
    mounts = [Mount((7, 0), "/", "squashfs", "loop0"), Mount((8, 17), "/run/live/medium", "vfat", "sdb1")]
    assert flash.system_devices(mounts, topo)[0] == {"loop0", "sdb1", "sdb"}
    assert any("running system" in w for w in flash.refusals(
        Target(Path("/dev/sdb"), "block", "sdb"), None, topo, mounts, set()))
    assert flash.refusals(Target(Path("/dev/sdc"), "block", "sdc"), None, topo, mounts, set()) == []


def test_unknown_root_refuses_real_disks_but_not_loops() -> None:
    topo = _topo(BlockNode("sda", (8, 0), 8 << 30), BlockNode("loop3", (7, 3), 8 << 30))
    mounts = [Mount((0, 44), "/", "overlay", "")]
    assert "cannot tell which disk" in flash.refusals(Target(Path("/dev/sda"), "block", "sda"), None, topo,
                                                      mounts, set())[0]
    assert flash.refusals(Target(Path("/dev/loop3"), "block", "loop3"), None, topo, mounts, set()) == []


def test_mountinfo_and_swaps_parsing() -> None:
    text = ("27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
            "40 27 8:17 / /media/my\\040key rw - vfat /dev/sdb1 rw\n"
            "22 27 0:21 / /proc rw,relatime - proc proc rw\n")
    mounts = flash.parse_mountinfo(text, lambda s: s.removeprefix("/dev/"))
    assert mounts == [Mount((254, 0), "/", "ext4", "vda"), Mount((8, 17), "/media/my key", "vfat", "sdb1"),
                      Mount((0, 21), "/proc", "proc", "")]
    assert flash.parse_swaps("Filename Type Size Used Priority\n/dev/zram0 partition 1 0 100\n") == ["/dev/zram0"]


def test_progress_line_and_sidecar_format() -> None:
    line = flash.format_progress(50 << 20, 200 << 20, 2.0)
    assert "25.0%" in line and "25.0 MiB/s" in line and "ETA 0:00:06" in line and line.startswith("[#######")
    assert flash.parse_sidecar("AB" * 32 + "  x.img\n") == "ab" * 32
    with pytest.raises(flash.FlashError):
        flash.parse_sidecar("not a checksum")


# -- this machine's real disk of / ---------------------------------------------------------------------
def test_real_system_disk_is_identified_and_refused() -> None:
    topo, mounts, swaps = flash.read_topology(), flash.read_mounts(), flash.read_swaps()
    root = next(m for m in reversed(mounts) if m.mount_point == "/")
    system, _ = flash.system_devices(mounts, topo)
    st_dev = os.stat("/").st_dev
    by_dev = {n.dev: n.name for n in topo.values()}
    root_node = by_dev.get((os.major(st_dev), os.minor(st_dev))) or root.source
    assert root_node in system, f"/ is on {root_node}, system devices {system}"
    disks = [n for n in system if topo[n].partition_of is None and not topo[n].slaves]
    assert disks, system
    for disk in disks:
        target = flash.describe_target(Path(f"/dev/{disk}"), topo)
        assert target.node == disk
        why = flash.refusals(target, 1 << 20, topo, mounts, swaps)
        assert any("holds the running system" in w for w in why), why


# -- plain files -----------------------------------------------------------------------------------
def test_file_target_needs_allow_file_and_round_trips(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, data = image
    disk = tmp_path / "vm.raw"
    disk.write_bytes(b"\xff" * (8 << 20))
    code, out = _run(str(path), str(disk), "--yes")
    assert code == 2 and "--allow-file" in out and disk.read_bytes() == b"\xff" * (8 << 20)
    code, out = _run(str(path), str(disk), "--yes", "--allow-file")
    assert code == 0, out
    assert _read(disk, IMAGE_SIZE) == data and "verified" in out
    assert _run(str(path), str(path), "--yes", "--allow-file")[1].count("is the image itself") == 1


def test_gzip_image_and_sidecar_of_the_uncompressed_image(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, data = image
    import gzip
    gz = tmp_path / "plateau-1.0.img.gz"
    gz.write_bytes(gzip.compress(data, compresslevel=1))
    disk = tmp_path / "vm.raw"
    code, out = _run(str(gz), str(disk), "--yes", "--allow-file")
    assert code == 0 and "checksum matches plateau-1.0.img.sha256" in out, out  # the raw image's sidecar
    assert disk.read_bytes() == data


def test_damaged_compressed_image_refused(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    _, data = image
    xz = tmp_path / "other.img.xz"
    blob = bytearray(lzma.compress(data[: 1 << 20], preset=0))
    blob[len(blob) // 2] ^= 0xFF
    xz.write_bytes(bytes(blob))
    disk = tmp_path / "vm.raw"
    code, out = _run(str(xz), str(disk), "--yes", "--allow-file")
    assert code == 2 and "damaged xz image" in out and not disk.exists()


def test_verify_detects_a_file_changed_after_writing(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, data = image
    disk = tmp_path / "vm.raw"

    def damage() -> None:
        with open(disk, "r+b") as fh:
            fh.seek(IMAGE_SIZE - 1)
            fh.write(bytes([data[-1] ^ 1]))

    code, out = _run(str(path), str(disk), "--yes", "--allow-file", after_write=damage)
    assert code == 1, out
    assert "verification failed" in out, out
    assert "does NOT hold a good image" in out, out


# -- loop devices ------------------------------------------------------------------------------------
def test_loop_device_happy_path_img_and_xz(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, data = image
    backing = tmp_path / "disk"
    backing.write_bytes(b"\0" * (8 << 20))
    xz = tmp_path / "plateau-1.0.img.xz"
    xz.write_bytes(lzma.compress(data, preset=0))
    (tmp_path / "plateau-1.0.img.xz.sha256").write_text(_sha(xz.read_bytes()) + "\n")
    with loop_device(backing) as dev:
        code, out = _run(str(path), str(dev), answer=dev.name)  # typing "loop7" is enough
        assert code == 0, out
        assert "loop device on" in out and "checksum matches plateau-1.0.img.sha256" in out
        assert _read(dev, IMAGE_SIZE) == data
        with open(dev, "r+b") as fh:  # wipe, then write the compressed one
            fh.write(b"\0" * IMAGE_SIZE)
        code, out = _run(str(xz), str(dev), answer=str(dev))
        assert code == 0 and "checksum matches plateau-1.0.img.xz.sha256" in out, out
        assert _read(dev, IMAGE_SIZE) == data
    assert backing.read_bytes()[:IMAGE_SIZE] == data


def test_sidecar_mismatch_refused_before_writing(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    (tmp_path / "plateau-1.0.img.sha256").write_text("0" * 64 + "  plateau-1.0.img\n")
    backing = tmp_path / "disk"
    backing.write_bytes(b"\x5a" * (8 << 20))
    with loop_device(backing) as dev:
        code, out = _run(str(path), str(dev), "--yes")
        assert code == 2 and "checksum does not match plateau-1.0.img.sha256" in out
        assert _read(dev, 8 << 20) == b"\x5a" * (8 << 20)


def test_not_confirmed_writes_nothing(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    backing = tmp_path / "disk"
    backing.write_bytes(b"\x5a" * (8 << 20))
    with loop_device(backing) as dev:
        for answer in (None, "yes", "/dev/sda"):
            code, out = _run(str(path), str(dev), answer=answer)
            assert code == 2 and "not confirmed: nothing written" in out and "(no partitions)" in out
        assert _read(dev, 8 << 20) == b"\x5a" * (8 << 20)


def test_too_small_and_read_only_loop_devices_refused(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    small = tmp_path / "small"
    small.write_bytes(b"\x5a" * (4 << 20))
    with loop_device(small) as dev:
        code, out = _run(str(path), str(dev), "--yes")
        assert code == 2 and "is too small: 4.0 MiB for an image of 6.0 MiB" in out
    assert small.read_bytes() == b"\x5a" * (4 << 20)
    big = tmp_path / "big"
    big.write_bytes(b"\x5a" * (8 << 20))
    with loop_device(big, "--read-only") as dev:
        code, out = _run(str(path), str(dev), "--yes")
        assert code == 2 and f"{dev} is read-only" in out
    with loop_device(big) as dev:  # the backing file of an attached loop is refused as a target too
        code, out = _run(str(path), str(big), "--yes", "--allow-file")
        assert code == 2 and f"attached to {dev}" in out
    assert big.read_bytes() == b"\x5a" * (8 << 20)


def _wait_partition(dev: Path) -> Path:
    part = Path(f"{dev}p1")
    deadline = time.monotonic() + 5
    while not Path(f"/sys/class/block/{part.name}").exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{part} did not appear")
        subprocess.run(["partx", "-a", str(dev)], check=False, capture_output=True)
        time.sleep(0.05)
    return part


def test_mounted_partition_of_a_loop_device_refused(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    path, _ = image
    backing = tmp_path / "disk"
    backing.write_bytes(b"\0" * (24 << 20))
    subprocess.run(["sfdisk", "-q", str(backing)], input="label: gpt\n,,L\n", text=True, check=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with loop_device(backing, "-P") as dev:
        part = _wait_partition(dev)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(part)], check=True)
        subprocess.run(["mount", str(part), str(mnt)], check=True)
        try:
            (mnt / "keep.txt").write_text("precious")
            before = _read(dev, 24 << 20)
            code, out = _run(str(path), str(dev), "--yes")
            assert code == 2 and f"/dev/{part.name} is mounted at {mnt}: unmount it first" in out, out
            assert _read(dev, 24 << 20) == before
        finally:
            subprocess.run(["umount", str(mnt)], check=True)
        # Unmounted, the same disk is accepted: the refusal was the mount, nothing else.
        code, out = _run(str(path), str(dev), "--yes")
        assert code == 0, out
        assert f"/dev/{part.name}" in out  # the partitions were shown before writing


def test_verify_reads_the_medium_not_the_page_cache(tmp_path: Path, image: tuple[Path, bytes]) -> None:
    """The medium changes under the loop device after the fsync (its backing file is written
    directly): only a read-back that dropped the device's page cache can notice."""
    path, data = image
    backing = tmp_path / "disk"
    backing.write_bytes(b"\0" * (8 << 20))

    def damage() -> None:
        fd = os.open(backing, os.O_WRONLY)
        try:
            os.pwrite(fd, bytes([data[4096] ^ 0x80]), 4096)
            os.fsync(fd)
        finally:
            os.close(fd)

    with loop_device(backing) as dev:
        # An open descriptor keeps the kernel from dropping the device's cache at the last close,
        # as a desktop's disk monitor would; the read-back must drop it itself.
        keeper = os.open(dev, os.O_RDONLY)
        try:
            code, out = _run(str(path), str(dev), "--yes", after_write=damage)
        finally:
            os.close(keeper)
        assert code == 1 and "verification failed: read-back SHA-256" in out, out
