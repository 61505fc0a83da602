#!/usr/bin/env python3
"""Boot test of the Plateau disk image under QEMU (software emulation is fine, only slow).

Boots a copy of ``out/plateau-<version>.img`` with OVMF (UEFI) and systemd-boot, serial console to
a log file, the guest's SIP port 5060/udp and web port 443/tcp forwarded to free ports on
127.0.0.1, and an i6300esb watchdog. It waits until the engine answers a SIP OPTIONS sent from the
host (RFC 3261 §11: a 200 OK to OPTIONS means the UA would accept a call), prints the timings,
powers the guest off and removes every copy. QEMU is killed on every path out.

    sudo python3 image/boot_test.py [--image out/plateau-X.img] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
# Serial-console lines that mark boot stages (systemd status lines need console=ttyS0 last on the
# kernel command line, which the image's entries have).
MARKS = {
    "kernel": re.compile(r"Linux version \d"),
    "systemd": re.compile(r"systemd\[1\]: (systemd \d+ running|Detected virtualization)|Welcome to "),
    "engine_started": re.compile(r"Started .*plateau-engine"),
    "engine_failed": re.compile(r"Failed to start .*plateau-engine|plateau-engine\.service: Failed"),
}


def free_port(kind: int) -> int:
    """A port the kernel says is free on 127.0.0.1 for ``kind`` (SOCK_DGRAM or SOCK_STREAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sip_options(port: int, timeout: float = 2.0) -> tuple[str, float] | None:
    """Send one OPTIONS to 127.0.0.1:``port``; return (status line, round trip s) or None on silence.

    The request carries every header RFC 3261 §8.1.1 requires (To, From with tag, Call-ID, CSeq,
    Max-Forwards, Via with a z9hG4bK branch); ``rport`` (RFC 3581) asks for the reply to go back
    to the address and port the request really came from, which behind QEMU's NAT is not ours.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        lport = s.getsockname()[1]
        branch = "z9hG4bK" + secrets.token_hex(8)
        call_id = secrets.token_hex(8) + "@boot-test"
        msg = (
            f"OPTIONS sip:plateau@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{lport};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:boot-test@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:plateau@127.0.0.1:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:boot-test@127.0.0.1:{lport}>\r\n"
            "Accept: application/sdp\r\n"
            "User-Agent: plateau-boot-test\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        t0 = time.monotonic()
        s.sendto(msg.encode(), ("127.0.0.1", port))
        deadline = t0 + timeout
        while True:
            try:
                data, _ = s.recvfrom(65535)
            except (TimeoutError, ConnectionRefusedError):
                return None
            text = data.decode("utf-8", "replace")
            # Match the answer to our transaction (RFC 3261 §17.1.3: branch + CSeq method).
            if branch in text and call_id in text:
                status = text.split("\r\n", 1)[0]
                if not status.startswith("SIP/2.0 1"):  # skip provisional responses
                    return status, time.monotonic() - t0
            if time.monotonic() > deadline:
                return None


@dataclass
class Vm:
    """One QEMU guest booted from a copy of the image; ``close()`` always kills it."""

    image: Path
    workdir: Path
    extra_drives: list[Path] = field(default_factory=list)
    # Read-only raw disks the guest finds as /dev/disk/by-id/virtio-<name> (image/update_test.py).
    named_drives: dict[str, Path] = field(default_factory=dict)
    memory_mib: int = 1536
    sip_port: int = 0
    web_port: int = 0
    proc: subprocess.Popen | None = None
    started: float = 0.0
    marks: dict[str, float] = field(default_factory=dict)
    _log_pos: int = 0

    @property
    def serial_log(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def disk(self) -> Path:
        return self.workdir / "disk.img"

    def prepare(self) -> None:
        """Copy the image (sparse) and the OVMF variable store: the test never touches the originals."""
        subprocess.run(["cp", "--sparse=always", str(self.image), str(self.disk)], check=True)
        shutil.copyfile(OVMF_VARS, self.workdir / "OVMF_VARS.fd")

    def add_kernel_args(self, extra: str) -> None:
        """Append ``extra`` to the options line of every loader entry on the copy's ESP (mtools, no mount).

        The test asks journald to copy the journal to the console (ttyS0): systemd stops printing its
        own status lines once a getty owns the console, and the engine's start has to be seen.
        """
        table = json.loads(subprocess.run(["sfdisk", "-J", str(self.disk)], check=True,
                                          capture_output=True, text=True).stdout)["partitiontable"]
        esp = next(p for p in table["partitions"] if p.get("name") == "plateau-esp")
        target = f"{self.disk}@@{esp['start'] * table.get('sectorsize', 512)}"
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        names = subprocess.run(["mdir", "-b", "-i", target, "::/loader/entries"], check=True,
                               capture_output=True, text=True, env=env).stdout.split()
        for name in names:
            if not name.endswith(".conf"):
                continue
            entry = name.rsplit("/", 1)[-1]
            text = subprocess.run(["mtype", "-i", target, f"::/loader/entries/{entry}"], check=True,
                                  capture_output=True, text=True, env=env).stdout
            text = re.sub(r"^(options .*)$", lambda m: m.group(1) + " " + extra, text, flags=re.M)
            local = self.workdir / entry
            local.write_text(text)
            subprocess.run(["mcopy", "-o", "-i", target, str(local), f"::/loader/entries/{entry}"],
                           check=True, env=env)
            local.unlink()

    def start(self) -> None:
        self.sip_port = free_port(socket.SOCK_DGRAM)
        self.web_port = free_port(socket.SOCK_STREAM)
        self.serial_log.write_bytes(b"")
        self._log_pos = 0
        accel = "kvm" if _kvm_usable() else "tcg"
        cmd = [
            "qemu-system-x86_64", "-machine", f"q35,accel={accel}", "-cpu", "max" if accel == "tcg" else "host",
            "-smp", "2", "-m", str(self.memory_mib),
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={self.workdir / 'OVMF_VARS.fd'}",
            "-drive", f"if=virtio,format=raw,file={self.disk}",
            "-netdev", (f"user,id=n0,hostfwd=udp:127.0.0.1:{self.sip_port}-:5060,"
                        f"hostfwd=tcp:127.0.0.1:{self.web_port}-:443"),
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "i6300esb", "-action", "watchdog=reset",
            "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
            "-serial", f"file:{self.serial_log}", "-display", "none", "-monitor", "none",
            "-qmp", f"unix:{self.workdir / 'qmp.sock'},server=on,wait=off",
        ]
        for extra in self.extra_drives:
            cmd += ["-drive", f"if=virtio,format=raw,readonly=on,file={extra}"]
        for i, (name, path) in enumerate(self.named_drives.items()):
            cmd += ["-drive", f"if=none,id=named{i},format=raw,readonly=on,file={path}",
                    "-device", f"virtio-blk-pci,drive=named{i},serial={name}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        self.marks = {}

    def poll_log(self) -> str:
        """New serial output since the last call; records the first time each boot mark appears."""
        with self.serial_log.open("rb") as f:
            f.seek(self._log_pos)
            chunk = f.read()
        self._log_pos += len(chunk)
        text = chunk.decode("utf-8", "replace")
        now = time.monotonic() - self.started
        for name, pattern in MARKS.items():
            if name not in self.marks and pattern.search(text):
                self.marks[name] = now
        return text

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float) -> tuple[float, str, float] | None:
        """Poll OPTIONS until a final answer; return (seconds since start, status, rtt) or None."""
        deadline = self.started + timeout
        while time.monotonic() < deadline and self.alive():
            self.poll_log()
            if "engine_failed" in self.marks:
                return None
            answer = sip_options(self.sip_port, timeout=1.0)
            if answer is not None:
                return time.monotonic() - self.started, answer[0], answer[1]
            time.sleep(1.0)
        self.poll_log()
        return None

    def qmp(self, command: str) -> None:
        """Send one QMP command (best effort: the guest may already be gone)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(self.workdir / "qmp.sock"))
                s.recv(4096)
                s.sendall(b'{"execute": "qmp_capabilities"}\n')
                s.recv(4096)
                s.sendall(json.dumps({"execute": command}).encode() + b"\n")
                s.recv(4096)
        except OSError:
            pass

    def power_off(self, grace: float = 90.0) -> float | None:
        """ACPI power button, then wait for QEMU to exit; return the seconds it took or None."""
        if not self.alive():
            return None
        t0 = time.monotonic()
        self.qmp("system_powerdown")
        try:
            self.proc.wait(timeout=grace)
            return time.monotonic() - t0
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Kill QEMU if it still runs (every path out of the test comes here)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)


def _kvm_usable() -> bool:
    """KVM only when the CPU really has it (here /dev/kvm exists without vmx: TCG)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    flags = Path("/proc/cpuinfo").read_text()
    return bool(re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M))


def newest_image() -> Path:
    images = sorted((REPO / "out").glob("plateau-*.img"), key=lambda p: p.stat().st_mtime)
    if not images:
        raise SystemExit("no out/plateau-*.img: run `make image` first")
    return images[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds from power-on to READY (TCG is slow)")
    ap.add_argument("--keep-log", type=Path, default=None, help="copy the serial log here")
    args = ap.parse_args()
    image = args.image or newest_image()
    if not OVMF_CODE.exists():
        raise SystemExit(f"{OVMF_CODE} missing: apt-get install ovmf")
    workdir = Path(tempfile.mkdtemp(prefix="plateau-boot-test."))
    vm = Vm(image=image, workdir=workdir)
    ok = False
    try:
        t0 = time.monotonic()
        vm.prepare()
        vm.add_kernel_args("systemd.journald.forward_to_console=1")
        print(f"image          {image.name} ({image.stat().st_size / 2**20:.0f} MiB, copied in "
              f"{time.monotonic() - t0:.1f} s)")
        vm.start()
        accel = "kvm" if _kvm_usable() else "tcg (software emulation)"
        print(f"qemu           pid {vm.proc.pid}, {accel}, SIP udp 127.0.0.1:{vm.sip_port}, "
              f"web tcp 127.0.0.1:{vm.web_port}")
        ready = vm.wait_ready(args.timeout)
        for name in ("kernel", "systemd", "engine_started"):
            if name in vm.marks:
                print(f"  {name:<13}{vm.marks[name]:7.1f} s after power-on (serial console)")
        if ready is None:
            why = "engine failed" if "engine_failed" in vm.marks else (
                "qemu exited" if not vm.alive() else f"no answer within {args.timeout:.0f} s")
            print(f"FAIL           {why}; last serial lines:")
            print("\n".join("    " + line for line in vm.serial_log.read_text("utf-8", "replace").splitlines()[-40:]))
        else:
            at, status, rtt = ready
            print(f"boot to READY  {at:.1f} s (first answered OPTIONS)")
            print(f"OPTIONS        {status!r}, round trip {rtt * 1000:.1f} ms")
            rtts = [r[1] for r in (sip_options(vm.sip_port) for _ in range(5)) if r is not None]
            if rtts:
                print(f"OPTIONS x5     median round trip {sorted(rtts)[len(rtts) // 2] * 1000:.1f} ms")
            ok = status.startswith("SIP/2.0 200")
            if not ok:
                print("FAIL           the answer is not 200 OK")
        off = vm.power_off()
        print(f"power off      {f'{off:.1f} s (ACPI power button)' if off is not None else 'no clean exit: killed'}")
    finally:
        vm.close()
        if args.keep_log is not None and vm.serial_log.exists():
            shutil.copyfile(vm.serial_log, args.keep_log)
        shutil.rmtree(workdir, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
