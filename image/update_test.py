#!/usr/bin/env python3
"""A/B update test of the Plateau image under QEMU: update, trial boot, blessing, rollback.

One guest, four boots, from three test builds (image/build --extra-units image/test-units/...,
into out/test/; the product image never has the hook):

  base    plateau-<v>-t0.img   slot a, with the test hook
  update  plateau-<v>-t1.update  a newer good version, with the test hook
  broken  plateau-<v>-t2.update  newer still, its plateau-engine runs /bin/false

The disk copy is 1 GiB larger than the image, so the first boot also shows the data partition
grown to the disk's end (systemd-repart + x-systemd.growfs). Both bundles are attached as raw
read-only virtio disks (serials ``update`` and ``broken``); a third one (serial ``testhook``)
holds the shell script that plateau-testhook.service runs on every boot. The script counts
boots on the data partition and:

  boot 1 (slot a)  reports, runs ``plateau update /dev/disk/by-id/virtio-update --yes``, reboots
  boot 2 (slot b)  trial boot of plateau-b+0-1.conf: health passes, systemd-bless-boot renames
                   the entry to plateau-b.conf, plateau-update-confirm records "confirmed";
                   then writes the broken bundle to slot a and reboots
  boot 3 (slot a)  trial boot: the engine never becomes READY, plateau-health fails after its
                   --wait (30 s in test builds), FailureAction=reboot
  boot 4 (slot b)  plateau-a+0-1.conf has no tries left and sorts last: slot b boots,
                   plateau-update-check records "rolled-back"

The host checks a SIP OPTIONS 200 in boots 1, 2 and 4 and reads the rest from the serial log.
QEMU is killed and the disk copy removed on every path out.

    sudo python3 image/update_test.py [--build] [--timeout 2400] [--keep-log out/test/update-test.log]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from boot_test import OVMF_CODE, REPO, Vm, _kvm_usable, sip_options

TEST_OUT = REPO / "out" / "test"
TEST_UNITS = REPO / "image" / "test-units"
BUILDS = {  # name: (version suffix, extra unit dirs)
    "base": ("-t0", ["hook"]),
    "update": ("-t1", ["hook"]),
    "broken": ("-t2", ["hook", "broken-engine"]),
}
GROW_BYTES = 1 << 30
DATA_IMAGE_BYTES = 256 << 20

# Runs as root in the guest (plateau-testhook.service), once per boot; every line it prints
# starts with TESTHOOK so the host can pick them out of the serial console.
HOOK = r"""#!/bin/sh
say() { printf 'TESTHOOK %s\n' "$*"; }
prefix() { sed "s/^/TESTHOOK $1 /"; }
mkdir -p /var/lib/plateau/testhook
n=$(( $(cat /var/lib/plateau/testhook/boots 2>/dev/null || echo 0) + 1 ))
echo $n > /var/lib/plateau/testhook/boots
slot=$(sed -n 's/.*plateau\.slot=\([ab]\).*/\1/p' /proc/cmdline)
say "boot $n slot=$slot"
say "cmdline $(cat /proc/cmdline)"
cnt=/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
# efivarfs: 4 bytes of attributes, then the entry's path in UTF-16LE.
utf16='import sys; print(open(sys.argv[1], "rb").read()[4:].decode("utf-16-le").rstrip("\0"))'
if [ -e $cnt ]; then
    say "LoaderBootCountPath $(python3 -c "$utf16" $cnt)"
    say "systemd-bless-boot status: $(/lib/systemd/systemd-bless-boot status 2>&1)"
else say "LoaderBootCountPath none (not a trial boot)"; fi
for u in plateau-update-check plateau-engine plateau-health systemd-bless-boot plateau-update-confirm; do
    say "unit $u $(systemctl show -p ActiveState -p Result --value $u.service | xargs)"
done
journalctl -b -o short-monotonic --no-pager -u plateau-update-check -u plateau-health \
    -u systemd-bless-boot -u plateau-update-confirm | grep -v '^-- ' | prefix journal
say "entries $(ls /boot/efi/loader/entries | xargs)"
plateau update --status | prefix status
if [ -f /var/lib/plateau/update/state.json ]; then
    say "state $(python3 -c 'import json; print(json.dumps(json.load(open("/var/lib/plateau/update/state.json"))))')"
fi
part=$(basename "$(readlink -f /dev/disk/by-partlabel/plateau-data)")
fs=$(df -B1 --output=size /var/lib/plateau | tail -1 | xargs)
say "data partition $part $(( $(cat /sys/class/block/$part/size) * 512 )) bytes; filesystem $fs bytes"
journalctl -b -o cat --no-pager -u systemd-repart -u 'systemd-growfs@*' | grep -v '^-- ' | prefix growjournal
case $n in
    1) bundle=/dev/disk/by-id/virtio-update ;;
    2) bundle=/dev/disk/by-id/virtio-broken ;;
    *) say "end"; exit 0 ;;
esac
say "update from $bundle ($(readlink -f $bundle))"
plateau update $bundle --yes > /run/plateau-testhook-update.log 2>&1
rc=$?
prefix update < /run/plateau-testhook-update.log
say "update rc=$rc"
if [ $rc != 0 ]; then say "abort"; exit 1; fi
# Like image/boot_test.py does for slot a's entry: journald copies the journal to ttyS0, so the
# next boot's unit messages reach the serial log the host reads.
for f in /boot/efi/loader/entries/plateau-[ab]+1.conf; do
    [ -f "$f" ] && sed -i '/^options /s/$/ systemd.journald.forward_to_console=1/' "$f"
done
say "entries $(ls /boot/efi/loader/entries | xargs)"
sleep 5
say "rebooting"
systemctl reboot
"""

SERIAL = {
    "kernel": re.compile(r"Linux version \d"),
    "slot": re.compile(r"Command line: .*plateau\.slot=([ab])"),
    "health_failed": re.compile(r"plateau-health\.service: Failed|Failed to start .*Plateau health"),
    "reboot": re.compile(r"reboot: Restarting system"),
}
# Serial lines worth quoting as evidence (besides the hook's own).
EVIDENCE = re.compile(r"plateau-health|bless|boot-complete|plateau health:|update check:|"
                      r"Restarting system|Growing existing partition|Successfully resized")
# The hook's copy of the repart/growfs journal: only the lines that say what happened.
GROW_SUMMARY = re.compile(r"Growing existing|No changes|All done|Successfully resized")
# The console copy of a service's output comes through journald: "[time] sh[pid]: TESTHOOK ...".
HOOK_LINE = re.compile(r"(?:^|: )TESTHOOK (.*)$")


@dataclass
class Boot:
    """What the serial console and the host saw of one boot (times in s since power-on)."""

    number: int
    kernel_at: float
    slot: str | None = None
    hook: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    options_at: float | None = None
    options_status: str | None = None
    hook_end_at: float | None = None
    health_failed_at: float | None = None
    reboot_at: float | None = None

    def hooked(self, prefix: str) -> list[str]:
        return [line[len(prefix):].strip() for line in self.hook if line.startswith(prefix)]

    def state(self) -> dict | None:
        found = self.hooked("state ")
        return json.loads(found[-1]) if found else None


def build_all() -> None:
    """Build the three test images into out/test/<name>/ (image/build, ~2.5 min each)."""
    for name, (suffix, units) in BUILDS.items():
        out = TEST_OUT / name
        shutil.rmtree(out, ignore_errors=True)
        cmd = [str(REPO / "image" / "build"), "--out", str(out), "--version-suffix", suffix]
        for unit_dir in units:
            cmd += ["--extra-units", str(TEST_UNITS / unit_dir)]
        t0 = time.monotonic()
        subprocess.run(cmd, check=True)
        print(f"build {name:<7} {time.monotonic() - t0:.0f} s")


def newest(name: str, pattern: str) -> Path:
    found = sorted((TEST_OUT / name).glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no {TEST_OUT / name / pattern}: run with --build (make image-test-update)")
    return found[-1]


def hook_disk(path: Path) -> None:
    """The hook script padded with newlines to whole 64 KiB (a raw disk of whole sectors)."""
    data = HOOK.encode()
    path.write_bytes(data + b"\n" * (-len(data) % 65536))


def run(vm: Vm, timeout: float) -> list[Boot]:
    """Follow the serial log and poll OPTIONS until boot 4's hook ends (or time runs out)."""
    boots: list[Boot] = []
    partial = ""
    deadline = vm.started + timeout
    while time.monotonic() < deadline and vm.alive():
        partial += vm.poll_log()
        *lines, partial = partial.split("\n")
        now = time.monotonic() - vm.started
        for raw in lines:
            line = raw.replace("\r", "").rstrip()
            if SERIAL["kernel"].search(line):
                boots.append(Boot(len(boots) + 1, now))
                print(f"  boot {len(boots)}: kernel at {now:7.1f} s")
            if not boots:
                continue
            boot = boots[-1]
            if (m := SERIAL["slot"].search(line)) and boot.slot is None:
                boot.slot = m.group(1)
            if SERIAL["health_failed"].search(line) and boot.health_failed_at is None:
                boot.health_failed_at = now
            if SERIAL["reboot"].search(line):
                boot.reboot_at = now
            if m := HOOK_LINE.search(line):
                boot.hook.append(m.group(1))
                if m.group(1) == "end":
                    boot.hook_end_at = now
            elif EVIDENCE.search(line):
                boot.evidence.append(line.strip())
        if boots and boots[-1].hook_end_at is not None and boots[-1].number >= 4:
            break
        if boots and "abort" in boots[-1].hook:
            print(f"FAIL           boot {boots[-1].number}: the hook gave up (plateau update failed)")
            break
        if len(boots) > 5:
            print("FAIL           more than 5 boots: a boot loop")
            break
        if boots and boots[-1].options_at is None:
            answer = sip_options(vm.sip_port, timeout=1.0)
            if answer is not None:
                boots[-1].options_at = time.monotonic() - vm.started
                boots[-1].options_status = answer[0]
                print(f"  boot {boots[-1].number}: OPTIONS {answer[0]!r} at {boots[-1].options_at:7.1f} s "
                      f"(rtt {answer[1] * 1000:.1f} ms)")
                continue
        time.sleep(1.0)
    partial += vm.poll_log()
    return boots


def report(boots: list[Boot], versions: dict[str, str]) -> list[str]:
    """Print each boot's evidence and timings; return the failed checks."""
    failures: list[str] = []

    def check(ok: bool, what: str) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    for b in boots:
        print(f"\n== boot {b.number}: slot {b.slot}")
        prev_reboot = boots[b.number - 2].reboot_at if b.number > 1 else None
        timing = [f"kernel at {b.kernel_at:.1f} s"]
        if prev_reboot is not None:
            timing.append(f"{b.kernel_at - prev_reboot:.1f} s after the reboot (firmware + systemd-boot)")
        if b.options_at is not None:
            timing.append(f"OPTIONS 200 {b.options_at - b.kernel_at:.1f} s after the kernel")
        if b.health_failed_at is not None:
            timing.append(f"health failed {b.health_failed_at - b.kernel_at:.1f} s after the kernel")
        if b.reboot_at is not None:
            timing.append(f"rebooted {b.reboot_at - b.kernel_at:.1f} s after the kernel")
        print("   timing: " + "; ".join(timing))
        for line in b.hook:
            if line.startswith("growjournal ") and not GROW_SUMMARY.search(line):
                continue
            if not line.startswith("state "):
                print(f"   hook| {line}")
        st = b.state()
        if st is not None:
            print(f"   hook| state.json: pending {st.get('pending')}")
            for h in st.get("history", [])[-3:]:
                print(f"   hook|   history {h}")
        for line in b.evidence:
            print(f"   tty | {line}")

    print("\n== checks")
    by = {b.number: b for b in boots}
    b1, b2, b3, b4 = (by.get(i) for i in (1, 2, 3, 4))
    check(b1 is not None and b1.slot == "a", "boot 1 runs slot a")
    if b1 is not None:
        check(bool(b1.options_status and b1.options_status.startswith("SIP/2.0 200")), "boot 1: OPTIONS 200")
        check("rc=0" in b1.hooked("update "), f"boot 1: plateau update wrote {versions['update']} (rc=0)")
        sizes = [re.search(r"data partition \S+ (\d+) bytes; filesystem (\d+) bytes", x) for x in b1.hook]
        sizes = [m for m in sizes if m]
        grown = bool(sizes) and int(sizes[0].group(1)) >= DATA_IMAGE_BYTES + GROW_BYTES - (2 << 20) \
            and int(sizes[0].group(2)) > DATA_IMAGE_BYTES + GROW_BYTES // 2
        check(grown, "boot 1: data partition and filesystem grown to the disk's end "
                     f"({sizes[0].group(1) if sizes else '?'} / {sizes[0].group(2) if sizes else '?'} bytes)")
    check(b2 is not None and b2.slot == "b", "boot 2 runs slot b")
    if b2 is not None:
        trial = " ".join(b2.hooked("LoaderBootCountPath"))
        check("plateau-b+0-1.conf" in trial, f"boot 2 is a trial boot ({trial})")
        check(any(x.startswith("unit plateau-health ") and {"active", "success"} <= set(x.split()[2:])
                  for x in b2.hook),
              "boot 2: plateau-health succeeded")
        entries = (b2.hooked("entries ") or [""])[0].split()
        check("plateau-b.conf" in entries, f"boot 2: entry blessed to plateau-b.conf ({' '.join(entries)})")
        st = b2.state() or {}
        events = [(h.get("event"), h.get("version")) for h in st.get("history", [])]
        check(("confirmed", versions["update"]) in events and st.get("pending") is None,
              f"boot 2: state.json records {versions['update']} confirmed")
        check(bool(b2.options_status and b2.options_status.startswith("SIP/2.0 200")), "boot 2: OPTIONS 200")
        check("rc=0" in b2.hooked("update "), f"boot 2: plateau update wrote {versions['broken']} to slot a (rc=0)")
    check(b3 is not None and b3.slot == "a", "boot 3 runs slot a (the broken update)")
    if b3 is not None:
        check(b3.options_at is None, "boot 3: no OPTIONS answer (engine never READY)")
        check(b3.health_failed_at is not None and b3.reboot_at is not None,
              "boot 3: plateau-health failed and the box rebooted (FailureAction=reboot)")
    check(b4 is not None and b4.slot == "b", "boot 4 falls back to slot b")
    if b4 is not None:
        trial = " ".join(b4.hooked("LoaderBootCountPath"))
        check("none" in trial, f"boot 4 is not a trial boot ({trial})")
        entries = (b4.hooked("entries ") or [""])[0].split()
        check("plateau-a+0-1.conf" in entries and "plateau-b.conf" in entries,
              f"boot 4: entries {' '.join(entries)}")
        st = b4.state() or {}
        last = (st.get("history") or [{}])[-1]
        check(last.get("event") == "rolled-back" and last.get("version") == versions["broken"]
              and st.get("pending") is None, f"boot 4: state.json history ends with {last}")
        check(bool(b4.options_status and b4.options_status.startswith("SIP/2.0 200")), "boot 4: OPTIONS 200")
    return failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--build", action="store_true", help="build the three test images into out/test/ first")
    ap.add_argument("--timeout", type=float, default=2400.0, help="seconds for all four boots")
    ap.add_argument("--keep-log", type=Path, default=TEST_OUT / "update-test-serial.log",
                    help="copy the serial log here (default %(default)s)")
    args = ap.parse_args()
    if not OVMF_CODE.exists():
        raise SystemExit(f"{OVMF_CODE} missing: apt-get install ovmf")
    if args.build:
        build_all()
    image = newest("base", "plateau-*.img")
    bundles = {name: newest(name, "plateau-*.update") for name in ("update", "broken")}
    versions = {name: newest(name, "plateau-*.version").read_text().strip() for name in BUILDS}
    for name, v in versions.items():
        print(f"{name:<8}{v}")
    workdir = Path(tempfile.mkdtemp(prefix="plateau-update-test."))
    hook_disk(workdir / "hook.img")
    vm = Vm(image=image, workdir=workdir, named_drives={
        "update": bundles["update"], "broken": bundles["broken"], "testhook": workdir / "hook.img"})
    failures = ["did not run"]
    try:
        t0 = time.monotonic()
        vm.prepare()
        vm.add_kernel_args("systemd.journald.forward_to_console=1")
        # A disk larger than the image, as when flashing onto a bigger disk.
        subprocess.run(["truncate", "-s", f"+{GROW_BYTES}", str(vm.disk)], check=True)
        print(f"disk copy      {vm.disk.stat().st_size / 2**20:.0f} MiB ({GROW_BYTES >> 20} MiB more than the "
              f"image), prepared in {time.monotonic() - t0:.1f} s")
        vm.start()
        accel = "kvm" if _kvm_usable() else "tcg (software emulation)"
        print(f"qemu           pid {vm.proc.pid}, {accel}, SIP udp 127.0.0.1:{vm.sip_port}")
        boots = run(vm, args.timeout)
        print(f"scenario       {time.monotonic() - vm.started:.1f} s from power-on to boot 4's report")
        failures = report(boots, versions)
        off = vm.power_off()
        print(f"power off      {f'{off:.1f} s (ACPI power button)' if off is not None else 'no clean exit: killed'}")
    finally:
        vm.close()
        if args.keep_log is not None and vm.serial_log.exists():
            args.keep_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(vm.serial_log, args.keep_log)
            print(f"serial log     {args.keep_log}")
        shutil.rmtree(workdir, ignore_errors=True)
    print("PASS" if not failures else f"FAIL ({len(failures)} checks)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
