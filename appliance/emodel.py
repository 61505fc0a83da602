"""The ITU-T G.107 E-model, reduced to what a test call can measure: delay, codec and packet loss.

R = Ro - Is - Id - Ie,eff + A (G.107 clause 3). With every other input at its G.107 default
(Table 3: SLR 8, RLR 2, Nc -70 dBm0p, Ps/Pr 35 dB(A), TELR 65 dB, ...) Ro - Is is 93.2 and that
figure already holds the small echo terms (Idte, Idle) at zero delay, so only the absolute-delay
impairment Idd (G.107 7.4, formula 7-27) is added for the measured one-way delay. Codec and loss
enter through Ie,eff (G.107 formula 7-29) with the codec's Ie and Bpl from ITU-T G.113
Appendix I. MOS comes from R by G.107 Annex B (formula B-4).

This is the narrowband model. G.722 is rated here on the narrowband scale like G.711 with PLC
(so a G.722 call scores as a perfect narrowband call at best); the wideband E-model
(G.107.1, R up to 129) with its own Ie,wb/Bpl values is not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

R_DEFAULT = 93.2  # Ro - Is (- Id at zero delay) with all G.107 Table 3 defaults
ADVANTAGE_WIRED = 0.0  # A, expectation factor (G.107 Table 2): conventional wire-bound
IDD_KNEE_MS = 100.0  # mT: no absolute-delay impairment up to 100 ms (G.107 7.4, default mT)


class EModelError(ValueError):
    """An input outside the E-model's domain (negative delay, loss above 100 %...)."""


@dataclass(frozen=True, slots=True)
class CodecImpairment:
    """A codec's equipment impairment factor Ie and packet-loss robustness factor Bpl (G.113 App. I)."""

    name: str
    ie: float
    bpl: float


# ITU-T G.113 Appendix I, Tables I.1 and I.3 (random loss): G.711 keeps Ie = 0; its Bpl is
# 4.3 when lost packets are played as silence and 25.1 with the G.711 Appendix I PLC. pjmedia
# conceals losses for every codec it decodes, so the "with PLC" values are our default.
G711_PLC = CodecImpairment("G.711 with PLC", 0.0, 25.1)
G711_NO_PLC = CodecImpairment("G.711 without PLC", 0.0, 4.3)
# Narrowband-equivalent rating for G.722 (see the module docstring): not a G.113 figure.
G722_AS_NARROWBAND = CodecImpairment("G.722 (rated as narrowband G.711 with PLC)", 0.0, 25.1)

_CODECS = {"PCMU": G711_PLC, "PCMA": G711_PLC, "G722": G722_AS_NARROWBAND}


def codec_impairment(codec: str, plc: bool = True) -> CodecImpairment:
    """Ie/Bpl for an SDP codec name ("PCMU", "PCMA/8000", "G722/16000"); EModelError if unknown."""
    name = codec.split("/", 1)[0].upper()
    if name not in _CODECS:
        raise EModelError(f"no E-model values for codec {codec!r} (known: {', '.join(_CODECS)})")
    if name in ("PCMU", "PCMA") and not plc:
        return G711_NO_PLC
    return _CODECS[name]


def delay_impairment(one_way_ms: float) -> float:
    """Idd for an absolute one-way (mouth-to-ear) delay Ta in ms (G.107 7.4, formula 7-27).

    Idd = 0 up to 100 ms; above, with X = log2(Ta / 100):
    Idd = 25 * ((1 + X^6)^(1/6) - 3 * (1 + (X/3)^6)^(1/6) + 2)   (default sT = 1, mT = 100 ms).
    """
    if not math.isfinite(one_way_ms) or one_way_ms < 0:
        raise EModelError(f"one-way delay must be a finite value >= 0 ms, got {one_way_ms}")
    if one_way_ms <= IDD_KNEE_MS:
        return 0.0
    x = math.log2(one_way_ms / IDD_KNEE_MS)
    return 25.0 * ((1.0 + x**6) ** (1 / 6) - 3.0 * (1.0 + (x / 3.0) ** 6) ** (1 / 6) + 2.0)


def effective_equipment_impairment(
    codec: CodecImpairment, loss_percent: float, burst_ratio: float = 1.0
) -> float:
    """Ie,eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)   (G.107 formula 7-29).

    `loss_percent` is Ppl (0..100); `burst_ratio` is BurstR, 1 for random loss, > 1 when
    losses come in bursts (G.107 7.5).
    """
    if not math.isfinite(loss_percent) or not 0.0 <= loss_percent <= 100.0:
        raise EModelError(f"packet loss must be within 0..100 %, got {loss_percent}")
    if not math.isfinite(burst_ratio) or burst_ratio < 1.0:
        raise EModelError(f"BurstR must be >= 1, got {burst_ratio}")
    ppl = loss_percent
    return codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_ratio + codec.bpl)


def mos_from_r(r: float) -> float:
    """Estimated conversational MOS (MOS-CQE) from R (G.107 Annex B, formula B-4).

    1 for R < 0, 4.5 for R > 100, else 1 + 0.035 R + R (R - 60) (100 - R) 7e-6. The cubic dips a
    hair below 1 for 0 < R < 6.5; it is clamped to 1 there, as G.107 does since its 2011 edition.
    """
    if math.isnan(r):
        raise EModelError("R is NaN")
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


def satisfaction(r: float) -> str:
    """User satisfaction category for R (ITU-T G.109 Table 1)."""
    if r >= 90:
        return "very satisfied"
    if r >= 80:
        return "satisfied"
    if r >= 70:
        return "some users dissatisfied"
    if r >= 60:
        return "many users dissatisfied"
    if r >= 50:
        return "nearly all users dissatisfied"
    return "not recommended"


@dataclass(frozen=True, slots=True)
class Rating:
    """The E-model result for one direction of a call."""

    one_way_ms: float
    loss_percent: float
    idd: float
    ie_eff: float
    r: float
    mos: float
    codec: CodecImpairment


def rate(
    codec: CodecImpairment, one_way_ms: float, loss_percent: float, burst_ratio: float = 1.0
) -> Rating:
    """R, MOS and the impairments behind them for a codec, a one-way delay and a loss rate."""
    idd = delay_impairment(one_way_ms)
    ie_eff = effective_equipment_impairment(codec, loss_percent, burst_ratio)
    r = R_DEFAULT - idd - ie_eff + ADVANTAGE_WIRED
    return Rating(one_way_ms, loss_percent, idd, ie_eff, r, mos_from_r(r), codec)
