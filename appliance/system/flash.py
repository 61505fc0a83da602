"""`plateau-flash IMAGE DEVICE`: write a Plateau disk image to a disk, then read it back and verify it.

Every check comes before the first byte is written: the image against its ``.sha256``
sidecar, then the device against what the running system uses. The refusals are pure
functions of a snapshot of the block-device topology (/sys/class/block), the mount table
(/proc/self/mountinfo) and /proc/swaps, so tests drive them with real or made-up data.

A device is refused when it is not a whole disk, is read-only or smaller than the image,
when it or one of its partitions is mounted or used as swap or held by another block device
(device-mapper, RAID), and when it is, or sits under, the disk holding /, /boot or
/boot/efi (following partitions, dm/md slaves and the backing file of a loop device).
The kernel gets the last word: the device is opened with ``O_EXCL``, which fails with
EBUSY while anything holds it.

After writing, the device is fsynced and its page cache dropped (``BLKFLSBUF`` and
``posix_fadvise(DONTNEED)``), so the read-back sees the medium, not the cache.
Exit codes: 0 written and verified, 1 write or verify failure, 2 refused (nothing written).
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import io
import gzip
import lzma
import os
import stat
import sys
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

BLOCK = 4 << 20
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr")
BLKFLSBUF = 0x1261  # linux/fs.h: _IO(0x12, 97), flush and invalidate the buffer cache

DevNum = tuple[int, int]


class FlashError(Exception):
    """A refusal (code 2) or a failure (code 1), with a message for the technician."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


# -- snapshot of the system: data ---------------------------------------------------------------
@dataclass(frozen=True)
class BlockNode:
    """One entry of /sys/class/block."""

    name: str
    dev: DevNum
    size: int  # bytes
    read_only: bool = False
    partition_of: str | None = None  # the whole disk, for a partition
    slaves: tuple[str, ...] = ()  # what a dm/md device is built on
    holders: tuple[str, ...] = ()  # dm/md devices built on this one
    backing_dev: DevNum | None = None  # st_dev of a loop device's backing file
    backing_file: str | None = None
    model: str = ""
    removable: bool = False


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo: the device number and the /dev name of its source."""

    dev: DevNum
    mount_point: str
    fstype: str
    source: str  # basename of the resolved /dev path, "" when the source is not a device


Topology = Mapping[str, BlockNode]


@dataclass(frozen=True)
class Target:
    """What DEVICE is: a block device (`node` names it in the topology) or a regular file."""

    path: Path
    kind: str  # "block", "file", "new" (no such file yet) or "other"
    node: str | None = None
    size: int = 0
    file_id: DevNum | None = None  # (st_dev, st_ino) of a regular file


# -- pure decisions -----------------------------------------------------------------------------
def parse_mountinfo(text: str, resolve: Callable[[str], str] = lambda s: s) -> list[Mount]:
    """Mounts from /proc/self/mountinfo text (proc(5)); `resolve` maps a /dev source to its name."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        major, _, minor = fields[2].partition(":")
        # Mount points escape blanks as octal (\040); decode so "/media/my disk" reads true.
        point = fields[4].encode().decode("unicode_escape")
        source = resolve(tail[1]) if tail[1].startswith("/dev/") else ""
        mounts.append(Mount((int(major), int(minor)), point, tail[0], source))
    return mounts


def parse_swaps(text: str) -> list[str]:
    """The file names in /proc/swaps (first column, header skipped)."""
    return [line.split()[0].encode().decode("unicode_escape") for line in text.splitlines()[1:] if line.split()]


def _by_dev(topo: Topology) -> dict[DevNum, str]:
    return {node.dev: name for name, node in topo.items()}


def lower_devices(name: str, topo: Topology) -> set[str]:
    """`name` and every device it is built on: its disk, dm/md slaves, a loop's backing disk."""
    by_dev = _by_dev(topo)
    seen: set[str] = set()
    todo = [name]
    while todo:
        cur = todo.pop()
        if cur in seen or cur not in topo:
            continue
        seen.add(cur)
        node = topo[cur]
        if node.partition_of:
            todo.append(node.partition_of)
        todo.extend(node.slaves)
        if node.backing_dev is not None and node.backing_dev in by_dev:
            todo.append(by_dev[node.backing_dev])
    return seen


def system_devices(mounts: Sequence[Mount], topo: Topology,
                   points: Collection[str] = SYSTEM_MOUNTS) -> tuple[set[str], list[str]]:
    """Devices the running system stands on, and the system mount points that name none.

    A mount is matched by device number, else by its /dev source (btrfs and overlay report
    anonymous 0:N numbers)."""
    by_dev = _by_dev(topo)
    found: set[str] = set()
    unknown: list[str] = []
    for m in mounts:
        if m.mount_point not in points:
            continue
        name = by_dev.get(m.dev) or (m.source if m.source in topo else None)
        if name is None:
            unknown.append(f"{m.mount_point} ({m.fstype})")
            continue
        found |= lower_devices(name, topo)
    return found, unknown


def family(name: str, topo: Topology) -> list[str]:
    """A disk, its partitions and everything held on them (recursively), disk first."""
    out: list[str] = []
    todo = [name] + sorted(n for n, node in topo.items() if node.partition_of == name)
    while todo:
        cur = todo.pop(0)
        if cur in out or cur not in topo:
            continue
        out.append(cur)
        todo.extend(topo[cur].holders)
    return out


def refusals(target: Target, image_size: int | None, topo: Topology, mounts: Sequence[Mount],
             swaps: Collection[str], *, allow_file: bool = False, image_id: DevNum | None = None) -> list[str]:
    """Why writing an image of `image_size` bytes (None: not known yet) to `target` must not happen.

    `swaps` holds device names (or file paths) from /proc/swaps; `image_id` is the image
    file's (st_dev, st_ino), so the image is never written over itself."""
    why: list[str] = []
    if target.kind == "new":
        return [] if allow_file else [f"{target.path}: no such device"]
    if target.kind == "file":
        if not allow_file:
            return [f"{target.path} is a regular file, not a block device (use --allow-file for a VM disk file)"]
        if image_id is not None and target.file_id == image_id:
            why.append(f"{target.path} is the image itself")
        for name, node in sorted(topo.items()):
            if node.backing_file and target.file_id is not None and node.backing_file == str(target.path):
                why.append(f"{target.path} is attached to /dev/{name} (losetup -d it first)")
        return why
    if target.kind != "block" or target.node is None or target.node not in topo:
        return [f"{target.path} is not a block device"]
    node = topo[target.node]
    if node.partition_of:
        return [f"{target.path} is a partition of /dev/{node.partition_of}; give the whole disk"]
    if node.size == 0:
        why.append(f"{target.path} has no medium (size 0)")
    if node.read_only:
        why.append(f"{target.path} is read-only")
    if image_size is not None and 0 < node.size < image_size:
        why.append(f"{target.path} is too small: {_human(node.size)} for an image of {_human(image_size)}")
    system, unknown = system_devices(mounts, topo)
    if target.node in system:
        why.append(f"{target.path} holds the running system (/, /boot or /boot/efi): refusing to overwrite it")
    elif unknown and not target.node.startswith("loop"):
        why.append(f"cannot tell which disk holds the running system ({', '.join(unknown)}); "
                   "only loop devices and files can be written here")
    by_dev = {m.dev: m for m in mounts}
    by_source = {m.source: m for m in mounts if m.source}
    for name in family(target.node, topo):
        member = topo[name]
        m = by_dev.get(member.dev) or by_source.get(name)
        if m is not None:
            why.append(f"/dev/{name} is mounted at {m.mount_point}: unmount it first")
        if name in swaps or f"/dev/{name}" in swaps:
            why.append(f"/dev/{name} is in use as swap (swapoff it first)")
        if name != target.node and member.slaves:
            why.append(f"/dev/{name} is built on this disk (device-mapper or RAID): stop it first")
    return why


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_progress(done: int, total: int, elapsed: float, width: int = 30) -> str:
    """One progress line: bar, percent, MiB/s, ETA (h:mm:ss)."""
    frac = min(1.0, done / total) if total else 1.0
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    bar = f"[{'#' * int(frac * width):<{width}}] " if width else ""
    h, rest = divmod(int(eta + 0.5), 3600)
    return (f"{bar}{frac * 100:5.1f}%  {done / 2**20:8.1f}/{total / 2**20:.1f} MiB  "
            f"{rate / 2**20:6.1f} MiB/s  ETA {h}:{rest // 60:02d}:{rest % 60:02d}")


def parse_sidecar(text: str) -> str:
    """The SHA-256 of a `sha256sum` line ("<hex>  <name>") or a bare hex digest."""
    token = text.strip().split()[0].lower() if text.strip() else ""
    if token.startswith("\\"):  # sha256sum escapes names with backslashes by prefixing the line
        token = token[1:]
    if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
        raise FlashError(f"not a SHA-256 checksum file: {text[:80]!r}")
    return token


# -- snapshot of the system: reading ------------------------------------------------------------
def _read(path: Path, default: str = "") -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return default


def read_topology(sys_block: Path = Path("/sys/class/block")) -> dict[str, BlockNode]:
    """Every block device the kernel knows, from sysfs."""
    topo: dict[str, BlockNode] = {}
    for entry in sorted(sys_block.iterdir()):
        name = entry.name
        major, _, minor = _read(entry / "dev", "0:0").partition(":")
        is_part = (entry / "partition").exists()
        backing_file = _read(entry / "loop" / "backing_file") or None
        backing_dev = None
        if backing_file:
            with contextlib.suppress(OSError):
                backing_dev = _devnum(os.stat(backing_file).st_dev)
        dev_dir = entry / "device"
        model = " ".join(filter(None, (_read(dev_dir / "vendor"), _read(dev_dir / "model"))))
        topo[name] = BlockNode(
            name=name, dev=(int(major), int(minor)), size=int(_read(entry / "size", "0")) * 512,
            read_only=_read(entry / "ro") == "1",
            partition_of=entry.resolve().parent.name if is_part else None,
            slaves=tuple(sorted(p.name for p in (entry / "slaves").glob("*"))),
            holders=tuple(sorted(p.name for p in (entry / "holders").glob("*"))),
            backing_dev=backing_dev, backing_file=backing_file, model=model,
            removable=_read(entry / "removable") == "1")
    return topo


def _devnum(rdev: int) -> DevNum:
    return os.major(rdev), os.minor(rdev)


def _resolve_dev(source: str) -> str:
    return os.path.basename(os.path.realpath(source))


def read_mounts(path: Path = Path("/proc/self/mountinfo")) -> list[Mount]:
    """The mount table of this process's namespace."""
    return parse_mountinfo(path.read_text(), _resolve_dev)


def read_swaps(path: Path = Path("/proc/swaps")) -> set[str]:
    """Device names (and file paths) in use as swap."""
    try:
        names = parse_swaps(path.read_text())
    except OSError:
        return set()
    return {(_resolve_dev(n) if n.startswith("/dev/") else n) for n in names}


def describe_target(path: Path, topo: Topology) -> Target:
    """Stat DEVICE and find it in the topology."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Target(Path(os.path.abspath(path)), "new")
    except OSError as exc:
        raise FlashError(f"{path}: {exc.strerror}") from None
    if stat.S_ISBLK(st.st_mode):
        by_dev = _by_dev(topo)
        name = by_dev.get(_devnum(st.st_rdev))
        return Target(path, "block", name, topo[name].size if name else 0)
    if stat.S_ISREG(st.st_mode):
        return Target(Path(os.path.realpath(path)), "file", None, st.st_size, (st.st_dev, st.st_ino))
    return Target(path, "other")


def describe_device(target: Target, topo: Topology) -> str:
    """What the technician is about to erase: model, size and partitions."""
    if target.kind in ("file", "new"):
        return f"{target.path}: regular file, {_human(target.size)}" + (" (new)" if target.kind == "new" else "")
    node = topo[target.node or ""]
    model = node.model or (f"loop device on {node.backing_file}" if node.backing_file else "unknown model")
    lines = [f"{target.path}: {model}, {_human(node.size)}"
             + (", removable" if node.removable else "")]
    parts = [n for n in family(node.name, topo)[1:]]
    for name in parts:
        p = topo[name]
        label = _udev_props(p.dev)
        extra = " ".join(f"{k.removeprefix('ID_FS_').lower()}={v}" for k, v in label.items())
        lines.append(f"  /dev/{name}  {_human(p.size)}  {extra}".rstrip())
    if not parts:
        lines.append("  (no partitions)")
    return "\n".join(lines)


def _udev_props(dev: DevNum) -> dict[str, str]:
    found = {}
    for line in _read(Path(f"/run/udev/data/b{dev[0]}:{dev[1]}")).splitlines():
        key, _, value = line.removeprefix("E:").partition("=")
        if key in ("ID_FS_TYPE", "ID_FS_LABEL", "ID_PART_ENTRY_NAME"):
            found[key] = value
    return found


# -- the image ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageInfo:
    """A checked image: its uncompressed size and SHA-256, and what the sidecar said."""

    path: Path
    size: int
    sha256: str  # of the uncompressed image: what the device must read back
    file_sha256: str  # of the file as stored (compressed or not)
    sidecars: tuple[Path, ...]  # the checksum files it matched


class _HashingReader(io.RawIOBase):
    """A read-only file that hashes everything read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest, self.count = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buf)  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buf)[:n])
            self.count += n
        return int(n or 0)


def compression(path: Path) -> str:
    """"gz", "xz" or "" from the image's name."""
    name = path.name.lower()
    return "gz" if name.endswith(".gz") else "xz" if name.endswith(".xz") else ""


@contextlib.contextmanager
def open_image(path: Path) -> Iterator[tuple[IO[bytes], _HashingReader]]:
    """The uncompressed image stream, and the reader hashing the stored file underneath."""
    with open(path, "rb", buffering=0) as fh:
        hashing = _HashingReader(fh)  # type: ignore[arg-type]
        kind = compression(path)
        buffered = io.BufferedReader(hashing, BLOCK)
        stream: IO[bytes]
        if kind == "gz":
            stream = gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[assignment]
        elif kind == "xz":
            stream = lzma.LZMAFile(buffered, "rb")
        else:
            stream = buffered
        with stream:
            yield stream, hashing


def _blocks(stream: IO[bytes]) -> Iterator[bytes]:
    """Full BLOCK-sized chunks (the last may be shorter); decompressors return short reads."""
    pending = bytearray()
    while True:
        chunk = stream.read(BLOCK - len(pending))
        if not chunk:
            break
        pending += chunk
        if len(pending) >= BLOCK:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


_BAD_IMAGE = (lzma.LZMAError, gzip.BadGzipFile, zlib.error, EOFError)


def sidecars(path: Path) -> list[tuple[Path, str]]:
    """Checksum files to look for: IMAGE.sha256 (the stored file), and for IMAGE.img.xz also
    IMAGE.img.sha256 (the uncompressed image, as image/build writes it)."""
    found = [(Path(f"{path}.sha256"), "file")]
    if compression(path):
        found.append((path.with_suffix(".sha256"), "image"))
    return [(p, what) for p, what in found if p.is_file()]


def check_image(path: Path, progress: Callable[[int], None] = lambda n: None) -> ImageInfo:
    """Read the whole image once: size and checksums, compared with its sidecar (FlashError on mismatch).

    `progress` gets the number of bytes of the stored file read so far."""
    if not path.is_file():
        raise FlashError(f"{path}: no such image file")
    size = 0
    digest = hashlib.sha256()
    try:
        with open_image(path) as (stream, hashing):
            for block in _blocks(stream):
                digest.update(block)
                size += len(block)
                progress(hashing.count)
            while hashing.read(BLOCK):  # trailing bytes the decompressor did not need
                pass
            file_sha = hashing.digest.hexdigest()
    except _BAD_IMAGE as exc:
        raise FlashError(f"{path}: damaged {compression(path)} image: {exc}") from None
    if size == 0:
        raise FlashError(f"{path}: the image is empty")
    raw_sha = digest.hexdigest()
    matched: list[Path] = []
    for side, what in sidecars(path):
        expected = parse_sidecar(side.read_text(errors="replace"))
        actual = file_sha if what == "file" else raw_sha
        if expected != actual:
            raise FlashError(f"{path}: checksum does not match {side.name} (expected {expected}, got {actual});"
                             " the image is damaged or not the one published")
        matched.append(side)
    return ImageInfo(path, size, raw_sha, file_sha, tuple(matched))


# -- progress -----------------------------------------------------------------------------------
class Progress:
    """A progress bar on a terminal, a line every 10 % otherwise."""

    def __init__(self, label: str, total: int, out: IO[str] = sys.stderr,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.out, self.clock = label, total, out, clock
        self.start = clock()
        self.tty = out.isatty()
        self._last_step = -1
        self._last_draw = 0.0

    def __call__(self, done: int) -> None:
        now = self.clock()
        if self.tty:
            if now - self._last_draw >= 0.2 or done >= self.total:
                self._last_draw = now
                self.out.write(f"\r{self.label} {format_progress(done, self.total, now - self.start)}")
                self.out.flush()
            return
        step = int(10 * done / self.total) if self.total else 10
        if step != self._last_step:
            self._last_step = step
            self.out.write(f"{self.label} {format_progress(done, self.total, now - self.start, width=0)}\n")
            self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


# -- writing and verifying ----------------------------------------------------------------------
def drop_cache(fd: int, is_block: bool) -> None:
    """Make the next read come from the medium: BLKFLSBUF for a block device, then DONTNEED."""
    if is_block:
        with contextlib.suppress(OSError):  # EPERM without CAP_SYS_ADMIN: fadvise still does it
            fcntl.ioctl(fd, BLKFLSBUF, 0)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def open_for_write(target: Target) -> int:
    """Open DEVICE for writing; O_EXCL on a block device fails with EBUSY while anything holds it."""
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    if target.kind == "block":
        flags |= os.O_EXCL
    elif target.kind == "new":
        flags |= os.O_CREAT | os.O_EXCL
    try:
        return os.open(target.path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise FlashError(f"{target.path} is in use (mounted, or held by another device)") from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise FlashError(f"{target.path}: cannot open for writing: {exc.strerror}") from None
        raise FlashError(f"{target.path}: {exc.strerror}", EXIT_FAILED) from None


def write_image(image: ImageInfo, fd: int, progress: Callable[[int], None] = lambda n: None) -> None:
    """Stream the image to `fd` from offset 0 in BLOCK writes, then fsync; FlashError(1) on failure."""
    digest = hashlib.sha256()
    done = 0
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        with open_image(image.path) as (stream, _):
            for block in _blocks(stream):
                view = memoryview(block)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                digest.update(block)
                done += len(block)
                progress(done)
        os.fsync(fd)
    except OSError as exc:
        raise FlashError(f"write failed after {_human(done)}: {exc.strerror or exc}", EXIT_FAILED) from None
    except _BAD_IMAGE as exc:
        raise FlashError(f"{image.path}: became unreadable while writing: {exc}", EXIT_FAILED) from None
    if done != image.size or digest.hexdigest() != image.sha256:
        raise FlashError(f"{image.path} changed while it was being written", EXIT_FAILED)


def verify_device(path: Path, size: int, sha256: str, is_block: bool,
                  progress: Callable[[int], None] = lambda n: None) -> str | None:
    """Read back exactly `size` bytes from the medium; None when they match, else why not."""
    digest = hashlib.sha256()
    done = 0
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        drop_cache(fd, is_block)
        while done < size:
            chunk = os.read(fd, min(BLOCK, size - done))
            if not chunk:
                return f"{path} ended after {done} of {size} bytes"
            digest.update(chunk)
            done += len(chunk)
            progress(done)
    except OSError as exc:
        return f"read-back failed after {_human(done)}: {exc.strerror or exc}"
    finally:
        os.close(fd)
    got = digest.hexdigest()
    return None if got == sha256 else f"read-back SHA-256 {got} differs from the image's {sha256}"


def flash(image: ImageInfo, target: Target, *, out: IO[str] = sys.stderr,
          after_write: Callable[[], None] | None = None) -> None:
    """Write and verify (all checks already passed). `after_write` runs after the fsync and
    before the read-back: the seam through which tests damage the medium."""
    fd = open_for_write(target)
    try:
        bar = Progress("writing  ", image.size, out)
        write_image(image, fd, bar)
        bar.finish()
        drop_cache(fd, target.kind == "block")
    finally:
        os.close(fd)
    if after_write is not None:
        after_write()
    bar = Progress("verifying", image.size, out)
    problem = verify_device(target.path, image.size, image.sha256, target.kind == "block", bar)
    bar.finish()
    if problem:
        raise FlashError(f"verification failed: {problem}", EXIT_FAILED)


# -- command line -------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="plateau-flash", description="Write a Plateau image to a disk and verify it.")
    p.add_argument("image", type=Path, help="plateau-<version>.img, .img.gz or .img.xz")
    p.add_argument("device", type=Path, help="the whole disk, e.g. /dev/sdb")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--allow-file", action="store_true", help="DEVICE may be a regular file (a VM disk)")
    return p


def _confirm(target: Target, ask: Callable[[str], str]) -> bool:
    try:
        answer = ask(f"Everything on {target.path} will be erased. Type its name ({target.path}) to go on: ")
    except EOFError:
        return False
    answer = answer.strip()
    return answer in (str(target.path), target.path.name) and bool(answer)


def run(argv: Sequence[str], *, out: IO[str] = sys.stderr, ask: Callable[[str], str] = input,
        after_write: Callable[[], None] | None = None) -> int:
    """The whole command; returns its exit code."""
    args = _parser().parse_args(list(argv))
    try:
        topo = read_topology()
        target = describe_target(args.device, topo)
        mounts, swaps = read_mounts(), read_swaps()
        image_id = None
        with contextlib.suppress(OSError):
            st = os.stat(args.image)
            image_id = (st.st_dev, st.st_ino)
        stored_size = os.stat(args.image).st_size if image_id else 0
        known_size = None if compression(args.image) or not image_id else stored_size
        why = refusals(target, known_size, topo, mounts, swaps, allow_file=args.allow_file, image_id=image_id)
        if why:
            raise FlashError("\n  ".join(["refusing to write:", *why]))
        bar = Progress("checking ", stored_size, out)
        image = check_image(args.image, bar)
        bar.finish()
        checked = (f"checksum matches {' and '.join(p.name for p in image.sidecars)}" if image.sidecars
                   else "no .sha256 file beside it: checksum not checked")
        print(f"{image.path}: {_human(image.size)}, {checked}", file=out)
        why = refusals(target, image.size, topo, mounts, swaps, allow_file=args.allow_file, image_id=image_id)
        if why:
            raise FlashError("\n  ".join(["refusing to write:", *why]))
        print(describe_device(target, topo), file=out)
        if not args.yes and not _confirm(target, ask):
            raise FlashError("not confirmed: nothing written")
        started = time.monotonic()
        flash(image, target, out=out, after_write=after_write)
    except FlashError as exc:
        print(f"plateau-flash: {exc}", file=out)
        if exc.code == EXIT_FAILED:
            print("plateau-flash: the device does NOT hold a good image: do not boot from it", file=out)
        return exc.code
    print(f"plateau-flash: {_human(image.size)} written to {target.path} and verified (SHA-256 {image.sha256}) "
          f"in {time.monotonic() - started:.0f} s", file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point (`plateau-flash`)."""
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
