"""The headset's HID call controls (hw/headset_hid.py): descriptor parsing, report decoding, hidraw I/O.

The report descriptor is a real one: the Jabra Link 380c USB-C receiver (a Jabra Evolve2
headset's dongle), as Chromium's WebHID tests carry it (chromium/chromium
services/device/public/cpp/test/test_report_descriptors.cc, `TestReportDescriptors::JabraLink380c`).
It is a good test: its Hook Switch is flagged Constant (Jabra's quirk, data all the same), its
Phone Mute is relative (a toggle), and a vendor collection (0xFF30) reuses usage IDs 0x20/0x2F.
The Push/Pop test uses the Digitizer descriptor of the USB-IF HID Descriptor Tool as Chromium
carries it (same file, `TestReportDescriptors::Digitizer`).

No /dev/uhid here: a pty (raw mode) stands in for /dev/hidrawN, with the descriptor in a file.
"""
from __future__ import annotations

import dataclasses
import os
import queue
import select
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.polling import wait_until
from hw.headset_hid import (
    DescriptorError,
    HidrawReader,
    HidStatus,
    HookOff,
    HookOn,
    MuteToggled,
    NoHookSwitch,
    TelephonyDecoder,
    alsa_card_index,
    descriptor_path,
    field_value,
    find_hidraw,
    hidraw_for_card,
    led_reports,
    parse_report_descriptor,
    split_reports,
    telephony_controls,
)

# Jabra Link 380c (USB 0b0e:24c9), from Chromium's test_report_descriptors.cc (see the docstring).
JABRA_LINK_380C = bytes.fromhex("".join([
    "050b",      # Usage Page (Telephony)
    "0905",      # Usage (Headset)
    "a101",      # Collection (Application)
    "8502",      #   Report ID (2)
    "050b",      #   Usage Page (Telephony)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "0920",      #   Usage (Hook Switch)
    "0997",      #   Usage (Line Busy Tone)
    "092a",      #   Usage (Line)
    "7501",      #   Report Size (1)
    "9503",      #   Report Count (3)
    "8123",      #   Input (Const,Var,Abs,No Wrap,Linear,No Preferred
    "092f",      #   Usage (Phone Mute)
    "0921",      #   Usage (Flash)
    "0924",      #   Usage (Redial)
    "0950",      #   Usage (Speed Dial)
    "7501",      #   Report Size (1)
    "9504",      #   Report Count (4)
    "8107",      #   Input (Const,Var,Rel,No Wrap,Linear,Preferred
    "0906",      #   Usage (Telephony Key Pad)
    "a102",      #   Collection (Logical)
    "19b0",      #     Usage Minimum (Phone Key 0)
    "29bb",      #     Usage Maximum (Phone Key Pound)
    "1500",      #     Logical Minimum (0)
    "250c",      #     Logical Maximum (12)
    "7504",      #     Report Size (4)
    "9501",      #     Report Count (1)
    "8140",      #     Input (Data,Array,Abs,No Wrap,Linear,Preferred
    "c0",        #   End Collection
    "0907",      #   Usage (Programmable Button)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "0509",      #   Usage Page (Button)
    "7501",      #   Report Size (1)
    "9501",      #   Report Count (1)
    "8102",      #   Input (Data,Var,Abs,No Wrap,Linear,Preferred
    "7501",      #   Report Size (1)
    "9504",      #   Report Count (4)
    "8101",      #   Input (Const,Array,Abs,No Wrap,Linear,Preferred
    "0508",      #   Usage Page (LEDs)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "0917",      #   Usage (Off-Hook)
    "091e",      #   Usage (Speaker)
    "0909",      #   Usage (Mute)
    "0918",      #   Usage (Ring)
    "0920",      #   Usage (Hold)
    "0921",      #   Usage (Microphone)
    "092a",      #   Usage (On-Line)
    "7501",      #   Report Size (1)
    "9507",      #   Report Count (7)
    "9122",      #   Output (Data,Var,Abs,No Wrap,Linear,No Preferred
    "050b",      #   Usage Page (Telephony)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "099e",      #   Usage (Ringer)
    "7501",      #   Report Size (1)
    "9501",      #   Report Count (1)
    "9122",      #   Output (Data,Var,Abs,No Wrap,Linear,No Preferred
    "7501",      #   Report Size (1)
    "9508",      #   Report Count (8)
    "9101",      #   Output (Const,Array,Abs,No Wrap,Linear,Preferred
    "c0",        # End Collection
    "0600ff",    # Usage Page (Vendor Defined 0xFF00)
    "0901",      # Usage (0x01)
    "a101",      # Collection (Application)
    "8505",      #   Report ID (5)
    "0901",      #   Usage (0x01)
    "1500",      #   Logical Minimum (0)
    "26ff00",    #   Logical Maximum (255)
    "7508",      #   Report Size (8)
    "953e",      #   Report Count (62)
    "920201",    #   Output (Data,Var,Abs,No Wrap,Linear,Preferred
    "0901",      #   Usage (0x01)
    "1500",      #   Logical Minimum (0)
    "26ff00",    #   Logical Maximum (255)
    "7508",      #   Report Size (8)
    "953e",      #   Report Count (62)
    "820201",    #   Input (Data,Var,Abs,No Wrap,Linear,Preferred
    "8504",      #   Report ID (4)
    "0630ff",    #   Usage Page (Vendor Defined 0xFF30)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "0920",      #   Usage (0x20)
    "0afbff",    #   Usage (0xFFFB)
    "0997",      #   Usage (0x97)
    "092a",      #   Usage (0x2A)
    "7501",      #   Report Size (1)
    "9504",      #   Report Count (4)
    "8123",      #   Input (Const,Var,Abs,No Wrap,Linear,No Preferred
    "092f",      #   Usage (0x2F)
    "0921",      #   Usage (0x21)
    "0924",      #   Usage (0x24)
    "0afdff",    #   Usage (0xFFFD)
    "0950",      #   Usage (0x50)
    "7501",      #   Report Size (1)
    "9505",      #   Report Count (5)
    "8107",      #   Input (Const,Var,Rel,No Wrap,Linear,Preferred
    "0906",      #   Usage (0x06)
    "a102",      #   Collection (Logical)
    "19b0",      #     Usage Minimum (0xB0)
    "29bb",      #     Usage Maximum (0xBB)
    "1500",      #     Logical Minimum (0)
    "250c",      #     Logical Maximum (12)
    "7504",      #     Report Size (4)
    "9501",      #     Report Count (1)
    "8140",      #     Input (Data,Array,Abs,No Wrap,Linear,Preferred
    "c0",        #   End Collection
    "0afcff",    #   Usage (0xFFFC)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "7501",      #   Report Size (1)
    "9501",      #   Report Count (1)
    "8123",      #   Input (Const,Var,Abs,No Wrap,Linear,No Preferred
    "7501",      #   Report Size (1)
    "9502",      #   Report Count (2)
    "8101",      #   Input (Const,Array,Abs,No Wrap,Linear,Preferred
    "0640ff",    #   Usage Page (Vendor Defined 0xFF40)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "0917",      #   Usage (0x17)
    "0afbff",    #   Usage (0xFFFB)
    "0909",      #   Usage (0x09)
    "0918",      #   Usage (0x18)
    "0920",      #   Usage (0x20)
    "0921",      #   Usage (0x21)
    "092a",      #   Usage (0x2A)
    "7501",      #   Report Size (1)
    "9507",      #   Report Count (7)
    "9122",      #   Output (Data,Var,Abs,No Wrap,Linear,No Preferred
    "0630ff",    #   Usage Page (Vendor Defined 0xFF30)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "099e",      #   Usage (0x9E)
    "7501",      #   Report Size (1)
    "9501",      #   Report Count (1)
    "9122",      #   Output (Data,Var,Abs,No Wrap,Linear,No Preferred
    "7501",      #   Report Size (1)
    "9508",      #   Report Count (8)
    "9101",      #   Output (Const,Array,Abs,No Wrap,Linear,Preferred
    "0affff",    #   Usage (0xFFFF)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "7501",      #   Report Size (1)
    "9501",      #   Report Count (1)
    "b122",      #   Feature (Data,Var,Abs,No Wrap,Linear,No Preferred
    "7501",      #   Report Size (1)
    "9507",      #   Report Count (7)
    "b101",      #   Feature (Const,Array,Abs,No Wrap,Linear,Preferred
    "c0",        # End Collection
    "050c",      # Usage Page (Consumer)
    "0901",      # Usage (Consumer Control)
    "a101",      # Collection (Application)
    "8501",      #   Report ID (1)
    "050c",      #   Usage Page (Consumer)
    "1500",      #   Logical Minimum (0)
    "2501",      #   Logical Maximum (1)
    "09ea",      #   Usage (Volume Decrement)
    "09e9",      #   Usage (Volume Increment)
    "09e2",      #   Usage (Mute)
    "09cd",      #   Usage (Play/Pause)
    "09b7",      #   Usage (Stop)
    "09b5",      #   Usage (Scan Next Track)
    "09b6",      #   Usage (Scan Previous Track)
    "09b3",      #   Usage (Fast Forward)
    "09b4",      #   Usage (Rewind)
    "7501",      #   Report Size (1)
    "9509",      #   Report Count (9)
    "8102",      #   Input (Data,Var,Abs,No Wrap,Linear,Preferred
    "7501",      #   Report Size (1)
    "9507",      #   Report Count (7)
    "8101",      #   Input (Const,Array,Abs,No Wrap,Linear,Preferred
    "c0",        # End Collection
]))

# Digitizer from the USB-IF HID Descriptor Tool (dt2_4), from Chromium's test_report_descriptors.cc.
DIGITIZER = bytes.fromhex(
    "050d0901a10185010921a10005010930093175109502150026e02e3500450c65135500a48102050d0932094409421500"
    "2501350045017501950365008102950175058103c085020920a100b4a4093009318102050d0932150025013500450165"
    "007501810205091900291025107505814075028101c08503050d0920a100b4093009318102050d093209447501150025"
    "0135004501650081029506810309301500257f3500452d6711e100005504750895018112c0c0"
)

# The Keyboard of the same tool: no Telephony page at all.
KEYBOARD = bytes.fromhex(
    "05010906a101050719e029e715002501750195088102950175088103950575010508190129059102950175039103"
    "95067508150025650507190029658100c0")

HOOK_OFF = b"\x02\x01\x00"  # report 2, Hook Switch (bit 0) set
HOOK_ON = b"\x02\x00\x00"
MUTE_PRESS = b"\x02\x08\x00"  # Phone Mute is bit 3 (after Hook Switch, Line Busy Tone, Line)
MUTE_PRESS_OFF_HOOK = b"\x02\x09\x00"  # each report carries every control: the hook stays off


@pytest.fixture
def jabra():
    return telephony_controls(JABRA_LINK_380C)


# -- descriptor ------------------------------------------------------------------------------------
def test_jabra_descriptor_gives_hook_mute_and_leds_of_report_2(jabra) -> None:
    hook, mute = jabra.hook, jabra.mute
    assert (hook.usage_page, hook.usage, hook.report_id, hook.bit_offset, hook.bit_size) == (0x0B, 0x20, 2, 0, 1)
    assert not hook.relative and hook.constant  # Jabra flags it Constant; the data is there all the same
    assert mute is not None and (mute.report_id, mute.bit_offset, mute.relative) == (2, 3, True)
    assert jabra.numbered
    # Report 2 input: 3 + 4 bits, a 4-bit keypad array, 1 button, 4 padding = 16 bits.
    assert jabra.input_bytes == {2: 2, 5: 62, 4: 2, 1: 2}
    assert jabra.output_bytes == {2: 2, 5: 62, 4: 2}
    leds = [(f.report_id, f.bit_offset) for f in (jabra.led_off_hook, jabra.led_mute, jabra.led_ring) if f]
    assert leds == [(2, 0), (2, 2), (2, 3)]


def test_vendor_pages_reusing_telephony_ids_are_not_taken_for_them() -> None:
    fields, _ = parse_report_descriptor(JABRA_LINK_380C)
    decoys = [f for f in fields if f.usage == 0x20 and f.kind == "input"]
    assert {(f.usage_page, f.report_id) for f in decoys} == {(0x0B, 2), (0xFF30, 4)}
    # The 32-bit usage 0xFFFB keeps the page in force (0xFF30), not a page of its own.
    assert any(f.usage_page == 0xFF30 and f.usage == 0xFFFB and f.report_id == 4 for f in fields)
    # Consumer report 1: Volume Increment is its second bit.
    vol_up = next(f for f in fields if (f.usage_page, f.usage) == (0x0C, 0xE9))
    assert (vol_up.report_id, vol_up.bit_offset, vol_up.kind) == (1, 1, "input")


def test_keypad_array_and_bits_across_bytes(jabra) -> None:
    fields, _ = parse_report_descriptor(JABRA_LINK_380C)
    key5 = next(f for f in fields if (f.usage_page, f.usage, f.report_id) == (0x0B, 0xB5, 2))
    assert (key5.bit_offset, key5.bit_size, key5.array_value) == (7, 4, 5)
    assert field_value(key5, (5 << 7).to_bytes(2, "little")) == 1  # bits 7..10 straddle bytes 0 and 1
    assert field_value(key5, (6 << 7).to_bytes(2, "little")) == 0


def test_push_pop_restore_the_global_state() -> None:
    fields, sizes = parse_report_descriptor(DIGITIZER)
    xs = [f for f in fields if (f.usage_page, f.usage) == (0x01, 0x30)]
    # X after each Pop has the pushed size and range, not the 1-bit 0..1 in force before it.
    assert [(f.bit_size, f.logical_max) for f in xs] == [(16, 12000)] * 3
    buttons = [f for f in fields if f.usage_page == 0x09]
    assert len(buttons) == 17 and all(f.array_value is not None and f.bit_size == 5 for f in buttons)
    pressure = next(f for f in fields if (f.usage_page, f.usage, f.bit_size) == (0x0D, 0x30, 8))
    assert pressure.logical_max == 127
    assert sizes == {("input", 1): 136}  # Pop restores Report ID 1 too: it is a global item (HID 1.11 6.2.2.7)


def test_a_device_without_a_hook_switch_and_broken_descriptors_are_named() -> None:
    with pytest.raises(NoHookSwitch):
        telephony_controls(KEYBOARD)
    with pytest.raises(DescriptorError, match="needs 2 data bytes"):
        parse_report_descriptor(JABRA_LINK_380C[:-5] + bytes([0x26, 0xFF]))
    with pytest.raises(DescriptorError, match="Pop without Push"):
        parse_report_descriptor(bytes([0xB4]))
    with pytest.raises(DescriptorError, match="not closed"):
        parse_report_descriptor(JABRA_LINK_380C[:-1])


# -- input and output reports ----------------------------------------------------------------------
def test_absolute_hook_switch_reports_edges_only(jabra) -> None:
    dec = TelephonyDecoder(jabra)
    feed = lambda rep: [ev for rid, data in split_reports(jabra, rep) for ev in dec.feed(rid, data)]  # noqa: E731
    assert feed(HOOK_OFF) == [HookOff()]
    assert feed(HOOK_OFF) == []  # the same state again (another control in the report changed)
    assert feed(b"\x01\x02\x00") == []  # Volume Increment, consumer report 1
    assert feed(HOOK_ON) == [HookOn()] and not dec.off_hook
    # Mute is relative: each press toggles, releases say nothing.
    assert feed(MUTE_PRESS) == [MuteToggled(True)]
    assert feed(HOOK_ON) == []
    assert feed(MUTE_PRESS + HOOK_ON + MUTE_PRESS) == [MuteToggled(False), MuteToggled(True)]  # one read, 3 reports
    assert feed(b"\x09\x01") == []  # an undeclared report ID is dropped


def test_relative_hook_switch_toggles_from_the_call_state(jabra) -> None:
    toggle = dataclasses.replace(jabra, hook=dataclasses.replace(jabra.hook, relative=True))
    dec = TelephonyDecoder(toggle)
    assert dec.feed(2, b"\x01\x00") == [HookOff()]  # press
    assert dec.feed(2, b"\x00\x00") == []  # release
    assert dec.feed(2, b"\x01\x00") == [HookOn()]
    dec.feed(2, b"\x00\x00")
    dec.sync(off_hook=True)  # answered from the API: the next press hangs up
    assert dec.feed(2, b"\x01\x00") == [HookOn()]


def test_led_reports(jabra) -> None:
    assert led_reports(jabra, off_hook=False, ring=True, muted=False) == [b"\x02\x08\x00"]
    assert led_reports(jabra, off_hook=True, ring=False, muted=True) == [b"\x02\x05\x00"]
    assert led_reports(jabra, off_hook=False, ring=False, muted=False) == [b"\x02\x00\x00"]


# -- sysfs --------------------------------------------------------------------------------------------
CARDS = """ 0 [PCH            ]: HDA-Intel - HDA Intel PCH
                      HDA Intel PCH at 0xf7f10000 irq 32
 1 [Link380        ]: USB-Audio - Jabra Link 380
                      GN Audio A/S Jabra Link 380 at usb-0000:00:14.0-2, full speed
"""


def fake_sysfs(root: Path) -> Path:
    """A sysfs with the headset (USB 1-2: audio interface 1-2:1.0, HID 1-2:1.3) and a keyboard (1-1)."""
    usb = root / "devices/pci0000:00/0000:00:14.0/usb1"
    (usb / "1-2/1-2:1.0/sound/card1").mkdir(parents=True)
    headset_hid = usb / "1-2/1-2:1.3/0003:0B0E:24C9.0005"
    keyboard_hid = usb / "1-1/1-1:1.0/0003:046D:C31C.0001"
    for dev, desc in ((headset_hid, JABRA_LINK_380C), (keyboard_hid, KEYBOARD)):
        dev.mkdir(parents=True)
        (dev / "report_descriptor").write_bytes(desc)
    for link, target in ((root / "class/sound/card1/device", usb / "1-2/1-2:1.0"),
                         (root / "class/hidraw/hidraw5/device", headset_hid),
                         (root / "class/hidraw/hidraw0/device", keyboard_hid)):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    return root


def test_auto_finds_the_hidraw_node_on_the_headsets_usb_device(tmp_path: Path) -> None:
    root = fake_sysfs(tmp_path / "sys")
    cards = tmp_path / "cards"
    cards.write_text(CARDS)
    assert descriptor_path("/dev/hidraw5", root).read_bytes() == JABRA_LINK_380C
    assert alsa_card_index("Jabra Link 380: USB Audio (hw:1,0)", "") == 1
    assert alsa_card_index("jabra", CARDS) == 1 and alsa_card_index("Intel", CARDS) == 0
    assert alsa_card_index("Poly", CARDS) is None
    assert hidraw_for_card(1, root) == [Path("/dev/hidraw5")]
    assert find_hidraw("Jabra", root, cards) == Path("/dev/hidraw5")
    with pytest.raises(Exception, match="no single ALSA card"):
        find_hidraw("Poly", root, cards)
    with pytest.raises(Exception, match="card 0 has no hidraw"):
        find_hidraw("HDA Intel", root, cards)


# -- the reader, over a pty standing in for /dev/hidrawN ----------------------------------------------
@pytest.fixture
def fake_hidraw(tmp_path: Path) -> Iterator[tuple[int, str, Path]]:
    """(pty master: the "headset" side, the slave's path: the "hidraw node", the descriptor file)."""
    master, slave = os.openpty()
    tty.setraw(slave)  # bytes through as they are: no echo, no line editing
    desc = tmp_path / "report_descriptor"
    desc.write_bytes(JABRA_LINK_380C)
    try:
        yield master, os.ttyname(slave), desc
    finally:
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass  # the test closed it (unplug)


def read_report(master: int, timeout: float = 2.0) -> bytes:
    ready, _, _ = select.select([master], [], [], timeout)
    assert ready, "no output report"
    return os.read(master, 64)


def test_reader_decodes_reports_and_lights_the_leds(fake_hidraw: tuple[int, str, Path]) -> None:
    master, node, desc = fake_hidraw
    events: queue.Queue[object] = queue.Queue()
    statuses: queue.Queue[HidStatus] = queue.Queue()
    reader = HidrawReader(node, events.put, descriptor=desc, on_status=statuses.put, reopen_delay=0.1).start()
    try:
        st = statuses.get(timeout=2.0)
        assert st.connected and st.device == node and not st.off_hook
        assert read_report(master) == b"\x02\x00\x00"  # LEDs set to the idle state on open
        reader.set_call(off_hook=False, ring=True)
        assert read_report(master) == b"\x02\x08\x00"
        os.write(master, HOOK_OFF)
        assert events.get(timeout=2.0) == HookOff()
        os.write(master, MUTE_PRESS_OFF_HOOK)
        assert events.get(timeout=2.0) == MuteToggled(True)
        assert read_report(master) == b"\x02\x0c\x00"  # the Mute LED follows the button (Ring still on)
        reader.set_call(off_hook=True, ring=False)
        assert read_report(master) == b"\x02\x05\x00"
        assert reader.status().off_hook and reader.status().muted
        os.write(master, HOOK_ON)
        assert events.get(timeout=2.0) == HookOn()
        # Unplugged: the node's reads fail; the reader says so and keeps trying to reopen.
        while not statuses.empty():
            statuses.get_nowait()
        os.close(master)
        lost = statuses.get(timeout=2.0)
        assert not lost.connected and "disconnected" in lost.error
    finally:
        reader.stop()
    assert reader._thread is None


def test_reader_thread_that_dies_is_logged_and_restarted_and_reads_again(
        fake_hidraw: tuple[int, str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    master, node, desc = fake_hidraw
    events: queue.Queue[object] = queue.Queue()
    reader = HidrawReader(node, events.put, descriptor=desc, reopen_delay=0.1)
    real = reader._dispatch
    fired: list[bool] = []

    def dispatch_once_broken(chunk: bytes) -> None:
        if not fired:
            fired.append(True)
            raise RuntimeError("report decoder bug")
        real(chunk)

    monkeypatch.setattr(reader, "_dispatch", dispatch_once_broken)
    reader.start()
    try:
        read_report(master)  # LEDs set on open
        os.write(master, HOOK_OFF)  # this report kills the reader
        wait_until(lambda: reader.health().restarts >= 1, 3.0, "reader restarted")
        health = reader.health()
        assert health.alive and health.deaths == 1 and health.restarts == 1, health
        assert health.last_error == "RuntimeError: report decoder bug"
        assert "reader thread died" in caplog.text
        read_report(master)  # re-opened: the LEDs are set again
        os.write(master, HOOK_OFF)
        assert events.get(timeout=2.0) == HookOff()  # and the hook button works again
    finally:
        reader.stop()


def test_reader_reports_a_missing_device(tmp_path: Path) -> None:
    statuses: queue.Queue[HidStatus] = queue.Queue()
    desc = tmp_path / "report_descriptor"
    desc.write_bytes(JABRA_LINK_380C)
    reader = HidrawReader(tmp_path / "hidraw9", lambda ev: None, descriptor=desc, on_status=statuses.put,
                          reopen_delay=0.05).start()
    try:
        st = statuses.get(timeout=2.0)
        assert not st.connected and "No such file" in st.error
    finally:
        reader.stop()
