"""CRC-16/CCITT-FALSE, the frame check of the line-board protocol (hw/PROTOCOL.md, "Framing").

Polynomial 0x1021, initial value 0xFFFF, no reflection, no final XOR; check value of
b"123456789" is 0x29B1 (the catalogue's CRC-16/CCITT-FALSE, a.k.a. CRC-16/IBM-3740).
"""
from __future__ import annotations


def _table() -> tuple[int, ...]:
    out = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        out.append(crc & 0xFFFF)
    return tuple(out)


_TABLE = _table()


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """The CRC of `data` (pass a previous result as `crc` to continue over more bytes)."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc
