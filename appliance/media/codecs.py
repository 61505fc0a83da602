"""Codec base and registry: what the engine needs to know about each RTP audio codec.

Payload types and clock rates follow the static assignments of RFC 3551 section 6 (Table 4).
The engine mixes at 16 kHz (``MIX_RATE``) so that G.722 calls between wideband phones keep their
7 kHz audio; G.711 legs are converted 8k <-> 16k with the half-band filter in ``resample.py``.
"""

from __future__ import annotations

import numpy as np

from appliance.media import g711
from appliance.media.g722 import G722State

MIX_RATE = 16000
FRAME_MS = 20
MIX_SAMPLES = MIX_RATE * FRAME_MS // 1000  # 320 samples per 20 ms tick


class CodecError(ValueError):
    """Unknown codec name or unusable payload."""


class Codec:
    """An RTP audio codec instance (stateful codecs keep per-leg state in the instance)."""

    name: str = ""
    payload_type: int = -1  # static PT (RFC 3551 Table 4)
    clock_rate: int = 8000  # RTP timestamp units per second
    sample_rate: int = 8000  # audio samples per second
    batchable: bool = False  # stateless: the engine may decode a whole batch in one call

    @property
    def samples_per_frame(self) -> int:
        """Audio samples in 20 ms at the codec's sample rate."""
        return self.sample_rate * FRAME_MS // 1000

    @property
    def timestamp_step(self) -> int:
        """RTP timestamp increment for a 20 ms frame."""
        return self.clock_rate * FRAME_MS // 1000

    def encode(self, samples: np.ndarray) -> bytes:
        """Encode int16 samples at ``sample_rate`` to payload octets."""
        raise NotImplementedError

    def decode(self, payload: bytes) -> np.ndarray:
        """Decode payload octets to int16 samples at ``sample_rate``."""
        raise NotImplementedError


class Pcmu(Codec):
    """G.711 mu-law, PT 0."""

    name = "PCMU"
    payload_type = 0
    batchable = True

    def encode(self, samples: np.ndarray) -> bytes:
        return g711.ulaw_encode(samples).tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return g711.ulaw_decode(payload)

    @staticmethod
    def decode_table() -> np.ndarray:
        return g711.ULAW_DECODE

    @staticmethod
    def encode_table() -> np.ndarray:
        return g711.ULAW_ENCODE


class Pcma(Codec):
    """G.711 A-law, PT 8."""

    name = "PCMA"
    payload_type = 8
    batchable = True

    def encode(self, samples: np.ndarray) -> bytes:
        return g711.alaw_encode(samples).tobytes()

    def decode(self, payload: bytes) -> np.ndarray:
        return g711.alaw_decode(payload)

    @staticmethod
    def decode_table() -> np.ndarray:
        return g711.ALAW_DECODE

    @staticmethod
    def encode_table() -> np.ndarray:
        return g711.ALAW_ENCODE


class G722(Codec):
    """G.722 at 64 kbit/s, PT 9, 16 kHz audio on an 8 kHz RTP clock (RFC 3551 section 4.5.2)."""

    name = "G722"
    payload_type = 9
    sample_rate = 16000

    def __init__(self) -> None:
        self._state = G722State()

    def encode(self, samples: np.ndarray) -> bytes:
        return self._state.encode(samples)

    def decode(self, payload: bytes) -> np.ndarray:
        return self._state.decode(payload)


_REGISTRY: dict[str, type[Codec]] = {"PCMU": Pcmu, "PCMA": Pcma, "G722": G722}


def codec_by_name(name: str) -> Codec:
    """Return a new codec instance (fresh state) for an SDP encoding name (case-insensitive)."""
    cls = _REGISTRY.get(name.upper())
    if cls is None:
        raise CodecError(f"unsupported codec {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return cls()


def codec_names() -> list[str]:
    """Names of all supported codecs."""
    return sorted(_REGISTRY)
