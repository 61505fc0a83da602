#!/usr/bin/env python3
"""End-to-end check of build/vboard over its pty, speaking hw/PROTOCOL.md with an
independent (Python, stdlib-only) COBS/CRC implementation. Exit status 0 = pass.

Run: make -C firmware vboard-check   (takes ~15 s of real time)
"""
from __future__ import annotations

import math
import os
import select
import struct
import subprocess
import sys
import termios
import time
import tty
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
VBOARD = os.path.join(HERE, "..", "build", "vboard")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def cobs_encode(data: bytes) -> bytes:
    out, block = bytearray(), bytearray()
    for b in data:
        if b == 0:
            out += bytes([len(block) + 1]) + block
            block = bytearray()
        else:
            block.append(b)
            if len(block) == 254:
                out += b"\xff" + block
                block = bytearray()
    out += bytes([len(block) + 1]) + block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes | None:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > len(data):
            return None
        out += data[i:i + code - 1]
        i += code - 1
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


@dataclass
class Frame:
    type: int
    seq: int
    port: int
    payload: bytes


def ulaw_decode(u: int) -> int:
    u = ~u & 0xFF
    seg = (u >> 4) & 7
    x = (((u & 0x0F) << 3) + 0x84) << seg
    x -= 0x84
    return -x if u & 0x80 else x


def ulaw_encode(x: int) -> int:
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), 32635) + 0x84
    seg = 7
    mask = 0x4000
    while seg > 0 and not x & mask:
        seg -= 1
        mask >>= 1
    return ~(sign | (seg << 4) | ((x >> (seg + 3)) & 0x0F)) & 0xFF


class Board:
    """The vboard process: its pty (frames) and its stdin/stdout (line control)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([VBOARD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        first = self.proc.stdout.readline().split()
        assert first[0] == "PTY", first
        self.fd = os.open(first[1], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIFLUSH)
        self.seq = 0
        self.rx = bytearray()
        self.frames: list[Frame] = []
        self.reports: list[str] = []
        self.bad = 0

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=5)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.fd)

    def send(self, ftype: int, port: int, payload: bytes = b"") -> int:
        seq = self.seq
        raw = bytes([ftype, seq, port]) + payload
        raw += struct.pack(">H", crc16(raw))
        os.write(self.fd, cobs_encode(raw) + b"\x00")
        self.seq = (self.seq + 1) & 0xFF
        return seq

    def control(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.fd, self.proc.stdout], [], [], left)
            if self.fd in r:
                self.rx += os.read(self.fd, 65536)
                while b"\x00" in self.rx:
                    chunk, _, rest = bytes(self.rx).partition(b"\x00")
                    self.rx = bytearray(rest)
                    dec = cobs_decode(chunk)
                    if dec is None or len(dec) < 5 or crc16(dec[:-2]) != struct.unpack(">H", dec[-2:])[0]:
                        self.bad += 1
                        continue
                    self.frames.append(Frame(dec[0], dec[1], dec[2], dec[3:-2]))
            if self.proc.stdout in r:
                self.reports.append(self.proc.stdout.readline().strip())

    def wait_frame(self, ftype: int, seconds: float = 2.0, port: int | None = None) -> Frame:
        end = time.monotonic() + seconds
        while True:
            for i, f in enumerate(self.frames):
                if f.type == ftype and (port is None or f.port == port):
                    del self.frames[: i + 1]
                    return f
            if time.monotonic() > end:
                raise AssertionError(f"no frame 0x{ftype:02x}")
            self.pump(0.05)

    def wait_report(self, prefix: str, seconds: float = 3.0) -> str:
        end = time.monotonic() + seconds
        while True:
            for i, r in enumerate(self.reports):
                if r.startswith(prefix):
                    del self.reports[: i + 1]
                    return r
            if time.monotonic() > end:
                raise AssertionError(f"no report {prefix!r}; got {self.reports}")
            self.pump(0.05)

    def command(self, ftype: int, port: int, payload: bytes = b"") -> int:
        seq = self.send(ftype, port, payload)
        while True:
            ack = self.wait_frame(0x03)
            if ack.payload[0] == seq:
                return ack.payload[1]


def main() -> int:
    b = Board()
    checks = 0
    try:
        b.send(0x01, 0xFF, b"\x01")                      # HELLO
        caps = b.wait_frame(0x02)
        assert caps.payload == bytes([1, 1, 0, 2, 1, 1, 2, 1, 6]) + b"VB0001", caps
        b.send(0x04, 0xFF, b"\x01\x02\x03\x04")
        assert b.wait_frame(0x05).payload == b"\x01\x02\x03\x04"
        st = b.wait_frame(0x06)
        assert len(st.payload) == 8 and st.payload[0] == 0 and st.payload[4] == 0
        checks += 3

        # FXS: ring with V.23 caller ID, the phone decodes it, then answers.
        name = "Alice"
        assert b.command(0x10, 0, bytes([0, 1, 10]) + b"0612345678" + bytes([len(name)]) + name.encode()) == 0
        b.wait_report("ringing 0 on")
        b.wait_report("ringing 0 off", 2.5)
        assert b.wait_report("cid 0 ", 2.5) == "cid 0 v23 0612345678 Alice"
        b.pump(0.3)
        assert not [r for r in b.reports if r.startswith("cid ")], b.reports   # once
        b.control("hook 0 off")
        b.wait_frame(0x20, port=0)                       # OFF_HOOK
        checks += 2

        # Phone keys a digit: the firmware's detector reports it.
        b.control("dtmf 0 7")
        d = b.wait_frame(0x27, port=0)
        assert d.payload[0] == ord("7") and 80 <= struct.unpack(">H", d.payload[1:])[0] <= 120, d
        # Phone voice 1 kHz: AUDIO frames to the host carry it.
        b.control("tone 0 1000")
        b.pump(0.5)
        b.frames.clear()
        b.pump(0.3)
        audio = [f for f in b.frames if f.type == 0x30 and f.port == 0]
        assert len(audio) >= 10, len(audio)
        pcm = [ulaw_decode(u) for u in audio[-1].payload]
        crossings = sum((pcm[i - 1] < 0) != (pcm[i] < 0) for i in range(1, 160))
        assert 36 <= crossings <= 44, crossings      # 1 kHz over 20 ms: 40
        # Host audio 400 Hz to the phone: the phone reports hearing it.
        frame = bytes(ulaw_encode(int(6000 * math.sin(2 * math.pi * 400 * i / 8000))) for i in range(160))
        for _ in range(40):
            b.send(0x30, 0, frame)
            b.pump(0.02)
        heard = b.wait_report("heard 0 ").split()
        assert abs(int(heard[2]) - 400) <= 5, heard
        b.control("flash 0 300")
        b.wait_frame(0x22, port=0)                       # FLASH
        b.control("hook 0 on")
        b.wait_frame(0x21, 2.0, port=0)                  # ON_HOOK after 800 ms
        checks += 5

        # FXO: inbound ring, caller ID, answer, dial, polarity, release.
        b.control("ring 1 on")
        b.wait_frame(0x23, port=1)
        b.control("ring 1 off")
        b.control("cid 1 0611223344 Bob")
        cid = b.wait_frame(0x25, 3.0, port=1)
        assert cid.payload == bytes([10]) + b"0611223344" + bytes([3]) + b"Bob", cid
        assert b.command(0x12, 1) == 0
        b.wait_report("offhook 1")
        assert b.command(0x14, 1, bytes([3]) + b"12#") == 0
        digits = "".join(b.wait_report("dialled 1 ").split()[2] for _ in range(3))
        assert digits == "12#", digits
        b.control("polarity 1 1")
        assert b.wait_frame(0x26, port=1).payload == b"\x01"
        assert b.command(0x13, 1) == 0
        b.wait_report("onhook 1")
        b.wait_frame(0x21, port=1)
        checks += 5

        # Bell 202 caller ID is named as such, and reported once.
        assert b.command(0x10, 0, bytes([2, 2, 4]) + b"5551" + bytes([3]) + b"Ann") == 0
        assert b.wait_report("cid 0 ", 4.0) == "cid 0 bell 5551 Ann"
        assert b.command(0x11, 0) == 0
        b.pump(0.5)
        assert not [r for r in b.reports if r.startswith("cid ")], b.reports
        checks += 1

        # DTMF CLIP both ways: FXS sends it before the first ring; FXO receives it.
        assert b.command(0x10, 0, bytes([2, 3, 4]) + b"0655" + bytes([0])) == 0
        assert b.wait_report("cid 0 ", 3.0) == "cid 0 dtmf 0655"
        b.wait_report("ringing 0 on", 1.0)
        assert b.command(0x11, 0) == 0                   # STOP_RING
        b.wait_report("ringing 0 off")
        b.control("ciddtmf 1 0699")
        cid = b.wait_frame(0x25, 3.0, port=1)
        assert cid.payload == bytes([4]) + b"0699" + bytes([0]), cid
        checks += 2

        # Bad frames: counted, never answered.
        os.write(b.fd, b"\x05\x11\x22\x00")                      # COBS runs past the end
        os.write(b.fd, cobs_encode(b"\x11\x05\x00\xab\xcd") + b"\x00")  # CRC wrong
        b.pump(0.2)
        b.control("stats")
        stats = b.wait_report("stats")
        assert "framing_errors=1" in stats and "crc_errors=1" in stats, stats
        assert b.bad == 0
        checks += 1
    finally:
        b.close()
    print(f"vboard smoke: {checks} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
