"""Consistent Overhead Byte Stuffing (Cheshire & Baker, IEEE/ACM ToN 1999), as the line board uses it.

`encode` removes every 0x00 from a frame so 0x00 can delimit frames on the serial byte
stream (hw/PROTOCOL.md, "Framing"); the delimiter itself is added by the frame layer.
"""
from __future__ import annotations


class CobsError(ValueError):
    """Bytes that are not a valid COBS encoding (a zero inside, or a code running past the end)."""


def encode(data: bytes) -> bytes:
    """COBS-encode `data`; the result holds no 0x00 and is at most len/254 + 1 bytes longer.

    A final block of exactly 254 data bytes ends the output without an empty 0x01 group,
    as in the paper; `decode` accepts both forms.
    """
    out = bytearray([0])
    code_at = 0
    code = 1
    last = len(data) - 1
    for i, byte in enumerate(data):
        if byte == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
            continue
        out.append(byte)
        code += 1
        if code == 0xFF and i < last:
            # A full block: code 0xFF means "254 data bytes, no zero follows".
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
    out[code_at] = code
    return bytes(out)


def decode(encoded: bytes) -> bytes:
    """Decode one COBS frame (without its 0x00 delimiter); raises CobsError when invalid."""
    out = bytearray()
    i = 0
    n = len(encoded)
    if n == 0:
        raise CobsError("empty frame")
    while i < n:
        code = encoded[i]
        if code == 0:
            raise CobsError(f"zero byte at offset {i}")
        end = i + code
        if end > n:
            raise CobsError(f"code {code} at offset {i} runs past the end ({n} bytes)")
        block = encoded[i + 1:end]
        if 0 in block:
            raise CobsError(f"zero byte inside block at offset {i}")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)
