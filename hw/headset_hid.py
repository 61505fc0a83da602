"""A USB headset's call buttons: the HID Telephony page read from Linux hidraw.

A telephony headset (Jabra, Poly, EPOS...) is a USB composite device: an audio function (the
ALSA card hw/headset.py plays through) and a HID function whose report descriptor declares a
Telephony (0x0B) application collection. Its Hook Switch (0x0B:0x20) is the answer/hang-up
button and Phone Mute (0x0B:0x2F) the mute button; the LED page (0x08) outputs Off-Hook (0x17),
Ring (0x18) and Mute (0x09) let the host show the call state on the headset (USB HID Usage
Tables 1.3, sections 14 and 11).

Linux exposes the HID function as /dev/hidrawN: each read(2) is one input report (prefixed
by its Report ID when the descriptor declares any), each write(2) one output report. The
report descriptor is a plain sysfs file (/sys/class/hidraw/hidrawN/device/report_descriptor),
so no ioctl is needed: `parse_report_descriptor` is a pure function over its bytes (HID 1.11
section 6.2.2), `telephony_controls` finds the fields that matter, `TelephonyDecoder` turns
input reports into `HookOff`/`HookOn`/`MuteToggled`, and `HidrawReader` does the I/O on its
own thread.

Hook switches come in two kinds, told apart by bit 2 of their Input item (HID 1.11 6.2.2.5):
absolute (the bit *is* the hook state; an edge is an event) and relative (a 1 is a press
that flips the state, which the host keeps, `TelephonyDecoder.sync` included).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from appliance.system.liveness import Heartbeat, PartHealth

log = logging.getLogger("plateau.headset_hid")

TELEPHONY_PAGE = 0x0B
HOOK_SWITCH = 0x20
PHONE_MUTE = 0x2F
LED_PAGE = 0x08
LED_MUTE = 0x09
LED_OFF_HOOK = 0x17
LED_RING = 0x18
MAX_REPORT = 4096  # hidraw's HID_MAX_BUFFER_SIZE: no report is longer
REOPEN_DELAY = 2.0  # an unplugged headset is looked for again this often
SYSFS = Path("/sys")

# Main item flag bits (HID 1.11 6.2.2.5).
_CONSTANT, _VARIABLE, _RELATIVE = 0x01, 0x02, 0x04


class HidError(Exception):
    """Base of this module's errors."""


class DescriptorError(HidError, ValueError):
    """A report descriptor that cannot be parsed (the message says where)."""


class NoHookSwitch(HidError):
    """The device declares no Telephony Hook Switch input: it is not a headset's call control."""


# -- report descriptor (pure) -----------------------------------------------------------------------
@dataclass(frozen=True)
class ReportField:
    """One usage's place in a report.

    `bit_offset` counts from the first data bit, after the Report ID byte. A Variable item
    gives each usage its own `bit_size` bits; an Array item (`array_value` set) holds
    `count` slots of `bit_size` bits from `bit_offset`, and the usage is active when any slot
    holds `array_value`.
    """

    usage_page: int
    usage: int
    kind: str  # "input", "output" or "feature"
    report_id: int  # 0: the device uses no Report IDs
    bit_offset: int
    bit_size: int
    relative: bool
    constant: bool
    logical_min: int
    logical_max: int
    array_value: int | None = None
    count: int = 1


@dataclass
class _Globals:
    usage_page: int = 0
    logical_min: int = 0
    logical_max: int = 0
    report_size: int = 0
    report_count: int = 0
    report_id: int = 0


_MAIN_KINDS = {0x8: "input", 0x9: "output", 0xB: "feature"}


def _unsigned(data: bytes) -> int:
    return int.from_bytes(data, "little") if data else 0


def _signed(data: bytes) -> int:
    return int.from_bytes(data, "little", signed=True) if data else 0


def parse_report_descriptor(desc: bytes) -> tuple[list[ReportField], dict[tuple[str, int], int]]:
    """Every usage field of `desc`, and each (kind, report id)'s data length in bits.

    Handles short and long items, Push/Pop, Report ID, extended (32-bit) usages and Usage
    Minimum/Maximum; Collections only nest (the fields do not need them).
    """
    fields: list[ReportField] = []
    sizes: dict[tuple[str, int], int] = {}
    g = _Globals()
    stack: list[_Globals] = []
    usages: list[tuple[int | None, int]] = []  # (page if the item gave one, usage)
    usage_min: tuple[int | None, int] | None = None
    depth = 0
    i = 0
    while i < len(desc):
        prefix = desc[i]
        if prefix == 0xFE:  # long item (HID 1.11 6.2.2.3): no defined tags, skipped
            if i + 2 >= len(desc):
                raise DescriptorError(f"byte {i}: truncated long item")
            i += 3 + desc[i + 1]
            continue
        size = (0, 1, 2, 4)[prefix & 0x03]
        kind, tag = (prefix >> 2) & 0x03, prefix >> 4
        data = desc[i + 1:i + 1 + size]
        if len(data) != size:
            raise DescriptorError(f"byte {i}: item 0x{prefix:02x} needs {size} data bytes")
        i += 1 + size
        if kind == 0:  # Main
            if tag in _MAIN_KINDS:
                name = _MAIN_KINDS[tag]
                flags = _unsigned(data)
                key = (name, g.report_id)
                start = sizes.get(key, 0)
                resolved = [(page if page is not None else g.usage_page, u) for page, u in usages]
                width = g.report_size * g.report_count
                if resolved and flags & _VARIABLE:
                    for n in range(g.report_count):
                        page, u = resolved[min(n, len(resolved) - 1)]  # the last usage repeats (6.2.2.8)
                        fields.append(ReportField(page, u, name, g.report_id, start + n * g.report_size,
                                                  g.report_size, bool(flags & _RELATIVE), bool(flags & _CONSTANT),
                                                  g.logical_min, g.logical_max))
                elif resolved:
                    for n, (page, u) in enumerate(resolved):
                        fields.append(ReportField(page, u, name, g.report_id, start, g.report_size,
                                                  bool(flags & _RELATIVE), bool(flags & _CONSTANT),
                                                  g.logical_min, g.logical_max, g.logical_min + n, g.report_count))
                sizes[key] = start + width
            elif tag == 0xA:
                depth += 1
            elif tag == 0xC:
                if depth == 0:
                    raise DescriptorError(f"byte {i - 1 - size}: End Collection without Collection")
                depth -= 1
            else:
                raise DescriptorError(f"byte {i - 1 - size}: unknown main item 0x{prefix:02x}")
            usages, usage_min = [], None  # local items end with each main item (6.2.2.8)
        elif kind == 1:  # Global
            if tag == 0x0:
                g.usage_page = _unsigned(data)
            elif tag == 0x1:
                g.logical_min = _signed(data)
            elif tag == 0x2:
                # Logical Maximum is unsigned when the minimum is not negative (a 0..255 byte is 26 FF 00 or 25 FF).
                g.logical_max = _signed(data) if g.logical_min < 0 else _unsigned(data)
            elif tag == 0x7:
                g.report_size = _unsigned(data)
            elif tag == 0x8:
                g.report_id = _unsigned(data)
                if not 1 <= g.report_id <= 255:
                    raise DescriptorError(f"byte {i - 1 - size}: Report ID {g.report_id} (1..255)")
            elif tag == 0x9:
                g.report_count = _unsigned(data)
            elif tag == 0xA:
                stack.append(_Globals(**vars(g)))
            elif tag == 0xB:
                if not stack:
                    raise DescriptorError(f"byte {i - 1 - size}: Pop without Push")
                g = stack.pop()
        elif kind == 2:  # Local
            value = _unsigned(data)
            ext = (value >> 16, value & 0xFFFF) if size == 4 else (None, value)
            if tag == 0x0:
                usages.append(ext)
            elif tag == 0x1:
                usage_min = ext
            elif tag == 0x2 and usage_min is not None:
                range_page = usage_min[0] if usage_min[0] is not None else ext[0]
                if ext[1] - usage_min[1] > 0xFFFF:
                    raise DescriptorError(f"byte {i - 1 - size}: usage range too large")
                usages.extend((range_page, u) for u in range(usage_min[1], ext[1] + 1))
                usage_min = None
    if depth:
        raise DescriptorError("a Collection is not closed")
    return fields, sizes


@dataclass(frozen=True)
class TelephonyControls:
    """Where a headset's call controls are in its reports."""

    hook: ReportField
    mute: ReportField | None = None
    led_off_hook: ReportField | None = None
    led_ring: ReportField | None = None
    led_mute: ReportField | None = None
    numbered: bool = False  # reports start with a Report ID byte
    input_bytes: dict[int, int] = field(default_factory=dict)  # report id -> data bytes
    output_bytes: dict[int, int] = field(default_factory=dict)


def telephony_controls(desc: bytes) -> TelephonyControls:
    """The Hook Switch, Phone Mute and LED fields of a report descriptor; raises `NoHookSwitch`."""
    fields, sizes = parse_report_descriptor(desc)

    def find(page: int, usage: int, kind: str) -> ReportField | None:
        return next((f for f in fields if (f.usage_page, f.usage, f.kind) == (page, usage, kind)), None)

    hook = find(TELEPHONY_PAGE, HOOK_SWITCH, "input")
    if hook is None:
        raise NoHookSwitch("no Telephony Hook Switch input in the report descriptor")
    numbered = any(rid for _, rid in sizes)
    return TelephonyControls(
        hook=hook, mute=find(TELEPHONY_PAGE, PHONE_MUTE, "input"),
        led_off_hook=find(LED_PAGE, LED_OFF_HOOK, "output"), led_ring=find(LED_PAGE, LED_RING, "output"),
        led_mute=find(LED_PAGE, LED_MUTE, "output"), numbered=numbered,
        input_bytes={rid: (bits + 7) // 8 for (kind, rid), bits in sizes.items() if kind == "input"},
        output_bytes={rid: (bits + 7) // 8 for (kind, rid), bits in sizes.items() if kind == "output"},
    )


# -- input reports (pure) ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HidEvent:
    """Base of what the headset's buttons say."""


@dataclass(frozen=True)
class HookOff(HidEvent):
    """The user went off hook: answer a ringing call."""


@dataclass(frozen=True)
class HookOn(HidEvent):
    """The user went on hook: end the call."""


@dataclass(frozen=True)
class MuteToggled(HidEvent):
    """The mute button changed the microphone's mute to `muted`."""

    muted: bool


def field_value(f: ReportField, data: bytes) -> int:
    """The value of `f` in a report's data (the bytes after the Report ID); 1/0 for an Array usage."""
    bits = int.from_bytes(data, "little")  # HID reports are little-endian, bit 0 first (6.2.2.4)
    mask = (1 << f.bit_size) - 1
    if f.array_value is not None:
        slots = ((bits >> (f.bit_offset + n * f.bit_size)) & mask for n in range(f.count))
        return int(any(s == f.array_value for s in slots))
    raw = (bits >> f.bit_offset) & mask
    if f.logical_min < 0 and raw >> (f.bit_size - 1):
        raw -= 1 << f.bit_size  # a signed field
    return raw


def split_reports(controls: TelephonyControls, chunk: bytes) -> list[tuple[int, bytes]]:
    """(report id, data) of each input report in one read.

    hidraw returns one report per read(2); a stream (a pty standing in for it) may carry
    several, which the declared report lengths separate. An unknown Report ID ends the chunk.
    """
    out: list[tuple[int, bytes]] = []
    while chunk:
        rid = chunk[0] if controls.numbered else 0
        head = 1 if controls.numbered else 0
        length = controls.input_bytes.get(rid)
        if length is None:
            break
        out.append((rid, bytes(chunk[head:head + length])))
        chunk = chunk[head + length:]
    return out


class TelephonyDecoder:
    """Input reports in, `HidEvent`s out; keeps the hook and mute state a relative control toggles."""

    def __init__(self, controls: TelephonyControls) -> None:
        self.controls = controls
        self.off_hook = False
        self.muted = False
        self._hook_raw = 0
        self._mute_raw = 0

    def sync(self, off_hook: bool, muted: bool | None = None) -> None:
        """The call's state as the host knows it (answered from the API, hung up by the far end)."""
        self.off_hook = off_hook
        if muted is not None:
            self.muted = muted

    def feed(self, report_id: int, data: bytes) -> list[HidEvent]:
        """The events of one input report."""
        out: list[HidEvent] = []
        hook = self.controls.hook
        if report_id == hook.report_id:
            raw = 1 if field_value(hook, data) else 0
            if raw != self._hook_raw:
                self._hook_raw = raw
                if hook.relative:
                    if raw:  # a press (its release is the 1 -> 0 edge) flips the hook
                        self.off_hook = not self.off_hook
                        out.append(HookOff() if self.off_hook else HookOn())
                else:
                    self.off_hook = bool(raw)
                    out.append(HookOff() if raw else HookOn())
        mute = self.controls.mute
        if mute is not None and report_id == mute.report_id:
            raw = 1 if field_value(mute, data) else 0
            if raw != self._mute_raw:
                self._mute_raw = raw
                if not mute.relative:
                    self.muted = bool(raw)
                    out.append(MuteToggled(self.muted))
                elif raw:
                    self.muted = not self.muted
                    out.append(MuteToggled(self.muted))
        return out


def led_reports(controls: TelephonyControls, *, off_hook: bool, ring: bool, muted: bool) -> list[bytes]:
    """The output reports (Report ID first when numbered) that set the Off-Hook, Ring and Mute LEDs."""
    by_report: dict[int, int] = {}
    for f, on in ((controls.led_off_hook, off_hook), (controls.led_ring, ring), (controls.led_mute, muted)):
        if f is None or f.array_value is not None:
            continue
        bits = by_report.setdefault(f.report_id, 0)
        by_report[f.report_id] = bits | ((1 if on else 0) << f.bit_offset)
    out = []
    for rid, bits in sorted(by_report.items()):
        body = bits.to_bytes(controls.output_bytes.get(rid, 1), "little")
        out.append((bytes([rid]) if controls.numbered else b"\x00") + body)  # hidraw: 0 = no Report ID
    return out


# -- sysfs --------------------------------------------------------------------------------------------
def descriptor_path(hidraw: str | Path, sys_root: Path = SYSFS) -> Path:
    """Where sysfs keeps the report descriptor of /dev/hidrawN."""
    return sys_root / "class" / "hidraw" / Path(hidraw).name / "device" / "report_descriptor"


def alsa_card_index(device_name: str, cards_text: str) -> int | None:
    """The ALSA card a PyAudio device name is on: its "(hw:N," part, else the /proc/asound/cards
    entry that contains the name (None when none or several do)."""
    m = re.search(r"\(hw:(\d+),", device_name)
    if m:
        return int(m.group(1))
    found = {int(m.group(1)) for m in re.finditer(r"^\s*(\d+) \[.*$", cards_text, re.M)
             if device_name.lower() in m.group(0).lower()}
    return found.pop() if len(found) == 1 else None


def hidraw_for_card(card: int, sys_root: Path = SYSFS) -> list[Path]:
    """The /dev/hidrawN nodes on the same USB device as ALSA card `card` (sysfs ancestry)."""
    try:
        iface = (sys_root / "class" / "sound" / f"card{card}" / "device").resolve(strict=True)
    except OSError:
        return []
    usb_device = iface.parent  # cardN/device is the audio interface (1-1:1.0); its parent the device (1-1)
    out = []
    base = sys_root / "class" / "hidraw"
    for node in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            real = (node / "device").resolve(strict=True)
        except OSError:
            continue
        if usb_device in real.parents:
            out.append(Path("/dev") / node.name)
    return out


def find_hidraw(device_name: str, sys_root: Path = SYSFS, proc_cards: Path = Path("/proc/asound/cards")) -> Path:
    """`hid: auto`: the hidraw node with a Hook Switch on the headset whose audio is `device_name`."""
    try:
        cards = proc_cards.read_text()
    except OSError:
        cards = ""
    card = alsa_card_index(device_name, cards)
    if card is None:
        raise HidError(f"hid: auto: no single ALSA card matches {device_name!r}")
    for node in hidraw_for_card(card, sys_root):
        try:
            telephony_controls(descriptor_path(node, sys_root).read_bytes())
        except (OSError, HidError):
            continue
        return node
    raise HidError(f"hid: auto: ALSA card {card} has no hidraw node with a Hook Switch")


# -- I/O ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HidStatus:
    """What the reader is doing: connected to `device`, or `error`."""

    device: str
    connected: bool
    off_hook: bool
    muted: bool
    error: str = ""


class HidrawReader:
    """Reads a hidraw node on its own thread and calls `on_event` with each `HidEvent` (on that thread).

    `on_status` hears of connection changes. An unplugged device (EIO/ENODEV on read) is
    reopened every `reopen_delay` seconds until `stop()`.
    """

    def __init__(self, device: str | Path, on_event: Callable[[HidEvent], None], *,
                 descriptor: str | Path | None = None, on_status: Callable[[HidStatus], None] | None = None,
                 reopen_delay: float = REOPEN_DELAY) -> None:
        self.device = str(device)
        self.descriptor = Path(descriptor) if descriptor else descriptor_path(device)
        self.on_event = on_event
        self.on_status = on_status
        self.reopen_delay = reopen_delay
        self.controls: TelephonyControls | None = None
        self.decoder: TelephonyDecoder | None = None
        self._fd: int | None = None
        self._lock = threading.Lock()  # the fd and the decoder's state: reader thread vs. set_call
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._leds = (False, False, False)
        self.error = ""
        self.beat = Heartbeat()

    def start(self) -> HidrawReader:
        self._thread = threading.Thread(target=self._run, name=f"hidraw-{Path(self.device).name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._wake_w < 0:
            return
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1

    def status(self) -> HidStatus:
        with self._lock:
            dec = self.decoder
            return HidStatus(self.device, self._fd is not None, bool(dec and dec.off_hook),
                             bool(dec and dec.muted), self.error)

    def set_call(self, *, off_hook: bool, ring: bool, muted: bool | None = None) -> None:
        """The call state changed (any thread): resync the hook and light the LEDs to match."""
        with self._lock:
            if self.decoder is not None:
                self.decoder.sync(off_hook, muted)
            mute = self.decoder.muted if self.decoder is not None else bool(muted)
            self._leds = (off_hook, ring, mute)
            self._write_leds()

    def _write_leds(self) -> None:
        """Caller holds the lock."""
        if self._fd is None or self.controls is None:
            return
        off_hook, ring, muted = self._leds
        for report in led_reports(self.controls, off_hook=off_hook, ring=ring, muted=muted):
            try:
                os.write(self._fd, report)
            except OSError as exc:  # a headset without an output endpoint, or one going away
                log.warning("hid %s: LED report not written: %s", self.device, exc)
                return

    def _open(self) -> bool:
        try:
            controls = telephony_controls(self.descriptor.read_bytes())
            # O_NOCTTY: a tty standing in for hidraw must not become our controlling terminal.
            fd = os.open(self.device, os.O_RDWR | os.O_NONBLOCK | os.O_NOCTTY)
        except (OSError, HidError) as exc:
            self._set_error(str(exc))
            return False
        with self._lock:
            self._fd, self.controls = fd, controls
            if self.decoder is None:
                self.decoder = TelephonyDecoder(controls)
            self.decoder.controls = controls
            self.error = ""
            self._write_leds()
        log.info("hid %s: hook switch in report %d bit %d (%s)%s", self.device, controls.hook.report_id,
                 controls.hook.bit_offset, "toggle" if controls.hook.relative else "absolute",
                 "; LEDs" if controls.led_off_hook else "")
        self._notify()
        return True

    def _close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _set_error(self, message: str) -> None:
        if message != self.error:
            log.error("hid %s: %s", self.device, message)
        self.error = message
        self._notify()

    def _notify(self) -> None:
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:  # a faulty listener must not stop the reader
                log.exception("hid %s: on_status raised", self.device)

    def health(self) -> PartHealth:
        thread = self._thread
        return self.beat.health(f"hidraw {self.device}", thread is not None and thread.is_alive())

    def _run(self) -> None:
        """The reader loop, run again after a death (logged, counted, reported as the HID error)
        with the device re-opened: a bug in one report must not leave the hook button dead."""
        while not self._stopping.is_set():
            try:
                self._read_loop()
                return
            except Exception as exc:  # the headset process must outlive a bad report
                self.beat.died(exc)
                log.exception("hid %s: reader thread died; re-opening the device", self.device)
                self._close()
                self._set_error(f"reader died: {type(exc).__name__}: {exc}")
            self._wait(min(self.reopen_delay, 0.2))
            self.beat.restarted()

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            self.beat.beat()
            if self._fd is None and not self._open():
                self._wait(self.reopen_delay)
                continue
            fd = self._fd
            if fd is None:
                continue
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                continue
            try:
                chunk = os.read(fd, MAX_REPORT)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno not in (errno.EIO, errno.ENODEV):
                    log.warning("hid %s: read: %s", self.device, exc)
                self._close()
                self._set_error(f"disconnected: {exc.strerror}")
                continue
            if not chunk:  # end of file: a FIFO whose writer left, or a node going away
                self._close()
                self._set_error("disconnected: end of file")
                continue
            self._dispatch(chunk)

    def _dispatch(self, chunk: bytes) -> None:
        with self._lock:
            controls, decoder = self.controls, self.decoder
            if controls is None or decoder is None:
                return
            events = [ev for rid, data in split_reports(controls, chunk) for ev in decoder.feed(rid, data)]
            if decoder.muted != self._leds[2]:  # the Mute LED shows what the button just did
                self._leds = (self._leds[0], self._leds[1], decoder.muted)
                self._write_leds()
        for ev in events:
            log.info("hid %s: %s", self.device, type(ev).__name__)
            try:
                self.on_event(ev)
            except Exception:  # a faulty listener must not stop the reader
                log.exception("hid %s: on_event(%r) raised", self.device, ev)
        if events:
            self._notify()

    def _wait(self, seconds: float) -> None:
        select.select([self._wake_r], [], [], seconds)  # stop() cuts it short
