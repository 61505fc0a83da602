"""ITU-T G.711 PCMU (mu-law) and PCMA (A-law), table driven and vectorised.

The tables are built once from the segment/quantisation rules of ITU-T G.711 (1988) Tables 1a/1b
and 2a/2b, in the same integer form as the classic Sun reference implementation, so that
``encode`` is a 65536-entry lookup indexed by the int16 bit pattern and ``decode`` a 256-entry
lookup indexed by the code.
"""

from __future__ import annotations

import numpy as np

_QUANT_MASK = 0x0F
_SEG_SHIFT = 4
_SEG_MASK = 0x70
_SIGN_BIT = 0x80
# mu-law bias (G.711 Table 2a is defined on magnitudes offset by 33 in 14-bit units)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & _QUANT_MASK) << 3) + _ULAW_BIAS
    t = t << ((u & _SEG_MASK) >> _SEG_SHIFT)
    return np.where(u & _SIGN_BIT, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & _QUANT_MASK) << 4
    seg = (a & _SEG_MASK) >> _SEG_SHIFT
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & _SIGN_BIT, t, -t).astype(np.int16)


def _build_ulaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2  # G.711 mu-law works on 14-bit samples
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_ULAW_SEG_END, mag)
    code = (seg << 4) | ((mag >> (seg + 1)) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code)
    table = (code ^ mask).astype(np.uint8)
    # index by the uint16 bit pattern of the int16 sample
    return np.roll(table, -32768)


def _build_alaw_encode() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3  # G.711 A-law works on 13-bit samples
    mask = np.where(pcm >= 0, 0xD5, 0x55)  # even bits inverted (G.711 section 3.4)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag)
    quant = np.where(seg < 2, mag >> 1, mag >> np.maximum(seg, 1)) & _QUANT_MASK
    code = np.where(seg >= 8, 0x7F, (seg << _SEG_SHIFT) | quant)
    return np.roll((code ^ mask).astype(np.uint8), -32768)


ULAW_DECODE: np.ndarray = _build_ulaw_decode()
ALAW_DECODE: np.ndarray = _build_alaw_decode()
ULAW_ENCODE: np.ndarray = _build_ulaw_encode()
ALAW_ENCODE: np.ndarray = _build_alaw_encode()
for _t in (ULAW_DECODE, ALAW_DECODE, ULAW_ENCODE, ALAW_ENCODE):
    _t.setflags(write=False)


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """Encode int16 samples (any shape) to mu-law codes (uint8, same shape)."""
    return ULAW_ENCODE[np.asarray(samples, dtype=np.int16).view(np.uint16)]


def ulaw_decode(codes: np.ndarray | bytes) -> np.ndarray:
    """Decode mu-law codes (uint8 array or bytes) to int16 samples."""
    return ULAW_DECODE[_as_codes(codes)]


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """Encode int16 samples (any shape) to A-law codes (uint8, same shape)."""
    return ALAW_ENCODE[np.asarray(samples, dtype=np.int16).view(np.uint16)]


def alaw_decode(codes: np.ndarray | bytes) -> np.ndarray:
    """Decode A-law codes (uint8 array or bytes) to int16 samples."""
    return ALAW_DECODE[_as_codes(codes)]


def _as_codes(codes: np.ndarray | bytes) -> np.ndarray:
    if isinstance(codes, (bytes, bytearray, memoryview)):
        return np.frombuffer(codes, dtype=np.uint8)
    return np.asarray(codes, dtype=np.uint8)
