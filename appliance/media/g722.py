"""ITU-T G.722 (64 kbit/s sub-band ADPCM) through the ``G722`` C extension.

G.722 carries 16 kHz audio but, by an error kept for compatibility, its RTP clock rate is
8000 Hz (RFC 3551 section 4.5.2): a 20 ms frame is 320 samples, 160 bytes, timestamp step 160.
The ADPCM predictors are stateful, so every leg owns one encoder and one decoder.
"""

from __future__ import annotations

import numpy as np
from G722 import G722 as _G722

SAMPLE_RATE = 16000
BITRATE = 64000


class G722State:
    """Per-leg G.722 encoder and decoder state."""

    def __init__(self) -> None:
        self._enc = _G722(SAMPLE_RATE, BITRATE)
        self._dec = _G722(SAMPLE_RATE, BITRATE)

    def encode(self, samples: np.ndarray) -> bytes:
        """Encode int16 samples at 16 kHz (even count) to G.722 octets (two samples per octet)."""
        return bytes(self._enc.encode(np.ascontiguousarray(samples, dtype=np.int16)))

    def decode(self, payload: bytes) -> np.ndarray:
        """Decode G.722 octets to int16 samples at 16 kHz."""
        if not payload:
            return np.zeros(0, dtype=np.int16)
        return np.asarray(self._dec.decode(payload), dtype=np.int16)
