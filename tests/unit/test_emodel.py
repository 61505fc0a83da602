"""ITU-T G.107 E-model (appliance.emodel) against published values, and the line test's pure
analysis (appliance.linetest_report: target URIs, echo detection, delay choice) that feeds it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from appliance import emodel
from appliance.linetest_report import (
    EchoCheck,
    StreamFigures,
    TargetError,
    analyse_echo,
    assess,
    one_way_delay,
    parse_server,
    target_uri,
    tone_signal,
)


# -- MOS from R (G.107 Annex B, B-4) --------------------------------------------------------------
@pytest.mark.parametrize(
    ("r", "mos"),
    [
        (93.2, 4.41),  # G.107: the default connection, R = 93.2 -> MOS 4.41
        (90.0, 4.34),  # G.107 Annex B / G.109 Table 1 category boundaries
        (80.0, 4.03),
        (70.0, 3.60),
        (60.0, 3.10),
        (50.0, 2.58),
    ],
)
def test_mos_from_r_published_points(r: float, mos: float) -> None:
    # G.109 prints 4.03 for R = 80 where B-4 gives 4.024: the tables are to about 0.01.
    assert emodel.mos_from_r(r) == pytest.approx(mos, abs=0.0065)


def test_mos_limits_and_monotonic() -> None:
    assert emodel.mos_from_r(-5.0) == 1.0
    assert emodel.mos_from_r(0.0) == 1.0
    assert emodel.mos_from_r(3.0) == 1.0  # the cubic dips below 1 here; clamped
    assert emodel.mos_from_r(100.0) == 4.5
    assert emodel.mos_from_r(120.0) == 4.5
    values = [emodel.mos_from_r(r / 2) for r in range(0, 201)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    with pytest.raises(emodel.EModelError):
        emodel.mos_from_r(math.nan)


# -- delay impairment Idd (G.107 7.4) -------------------------------------------------------------
@pytest.mark.parametrize(
    ("ta", "idd"),
    [(0.0, 0.0), (100.0, 0.0), (150.0, 0.16), (200.0, 3.04), (300.0, 14.76), (400.0, 24.07)],
)
def test_idd(ta: float, idd: float) -> None:
    assert emodel.delay_impairment(ta) == pytest.approx(idd, abs=0.01)


def test_g114_knee_400ms_gives_r_about_70() -> None:
    # G.114 Figure 1: with G.107 defaults, 400 ms one way is R ~ 70 (just above "many users
    # dissatisfied"), 150 ms still ~93 ("users very satisfied").
    assert emodel.rate(emodel.G711_PLC, 400.0, 0.0).r == pytest.approx(69.1, abs=0.1)
    assert emodel.rate(emodel.G711_PLC, 150.0, 0.0).r == pytest.approx(93.0, abs=0.1)


def test_delay_rejects_nonsense() -> None:
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(emodel.EModelError):
            emodel.delay_impairment(bad)


# -- Ie,eff (G.107 7-29) with G.113 Appendix I codec values ---------------------------------------
def test_ie_eff_g711() -> None:
    plc, no_plc = emodel.G711_PLC, emodel.G711_NO_PLC
    assert (plc.ie, plc.bpl, no_plc.ie, no_plc.bpl) == (0.0, 25.1, 0.0, 4.3)
    assert emodel.effective_equipment_impairment(plc, 0.0) == 0.0
    # 95 * Ppl / (Ppl + Bpl) for random loss
    assert emodel.effective_equipment_impairment(plc, 1.0) == pytest.approx(95 / 26.1)
    assert emodel.effective_equipment_impairment(plc, 5.0) == pytest.approx(15.78, abs=0.01)
    assert emodel.effective_equipment_impairment(no_plc, 1.0) == pytest.approx(17.92, abs=0.01)
    # Bursty loss (BurstR > 1) hurts more than random loss of the same rate.
    assert emodel.effective_equipment_impairment(plc, 2.0, burst_ratio=2.0) > \
        emodel.effective_equipment_impairment(plc, 2.0)
    # 100 % loss: Ie,eff = 95, whatever the codec's robustness.
    assert emodel.effective_equipment_impairment(plc, 100.0) == pytest.approx(95 * 100 / 125.1)
    for bad in ((-1.0, 1.0), (101.0, 1.0), (1.0, 0.5)):
        with pytest.raises(emodel.EModelError):
            emodel.effective_equipment_impairment(plc, *bad)


def test_codec_lookup() -> None:
    assert emodel.codec_impairment("PCMU/8000") is emodel.G711_PLC
    assert emodel.codec_impairment("pcma") is emodel.G711_PLC
    assert emodel.codec_impairment("PCMA", plc=False) is emodel.G711_NO_PLC
    assert emodel.codec_impairment("G722/16000") is emodel.G722_AS_NARROWBAND
    with pytest.raises(emodel.EModelError, match="G729"):
        emodel.codec_impairment("G729/8000")


def test_rate_combines_the_terms() -> None:
    rt = emodel.rate(emodel.G711_PLC, 0.0, 0.0)
    assert (rt.r, round(rt.mos, 2)) == (93.2, 4.41)
    assert emodel.satisfaction(rt.r) == "very satisfied"
    rt = emodel.rate(emodel.G711_PLC, 200.0, 1.0)
    assert rt.r == pytest.approx(93.2 - 3.04 - 95 / 26.1, abs=0.01)
    assert rt.idd == pytest.approx(3.04, abs=0.01)
    assert round(rt.mos, 2) == round(emodel.mos_from_r(rt.r), 2)
    assert emodel.satisfaction(55.0) == "nearly all users dissatisfied"


# -- line test inputs -----------------------------------------------------------------------------
def test_target_uri() -> None:
    srv = ("192.0.2.10", 5060)
    assert target_uri("1002", srv) == "sip:1002@192.0.2.10:5060"
    assert target_uri("+33123456789", srv) == "sip:+33123456789@192.0.2.10:5060"
    assert target_uri("*61#", srv) == "sip:*61%23@192.0.2.10:5060"
    assert target_uri("sip:echo@example.net;transport=udp", None) == \
        "sip:echo@example.net;transport=udp"
    for bad in ("", "ext 12", "sip:", "sip:a b@host", "mailto:x@y"):
        with pytest.raises(TargetError):
            target_uri(bad, srv)
    with pytest.raises(TargetError, match="--server"):
        target_uri("1002", None)
    assert parse_server("pbx.local") == ("pbx.local", 5060)
    assert parse_server("127.0.0.1:5070") == ("127.0.0.1", 5070)
    for bad in ("host:", "host:99999", ":5060", "host:x"):
        with pytest.raises(TargetError):
            parse_server(bad)


def test_echo_analysis_finds_the_tone_and_its_round_trip() -> None:
    rate, seconds = 8000, 1.0
    sent = tone_signal(1000.0, seconds, rate)  # 0.5 s silence, then the tone
    delay = 443  # samples: 55.4 ms round trip
    echoed = np.concatenate((np.zeros(delay, np.int16), sent, np.zeros(4000, np.int16)))
    check = analyse_echo(echoed, rate, 1000.0, seconds)
    assert check.passed and check.purity > 0.99
    assert check.tone_seconds == pytest.approx(seconds, abs=0.05)
    assert check.round_trip_ms == pytest.approx(delay / rate * 1000, abs=0.5)


def test_echo_analysis_rejects_silence_noise_and_the_wrong_tone() -> None:
    rate = 8000
    assert not analyse_echo(np.zeros(rate * 2, np.int16), rate, 1000.0, 1.0).passed
    noise = np.random.default_rng(1).normal(0, 3000, rate * 2).astype(np.int16)
    assert not analyse_echo(noise, rate, 1000.0, 1.0).passed
    other = tone_signal(1500.0, 1.0, rate)
    assert not analyse_echo(other, rate, 1000.0, 1.0).passed
    short = tone_signal(1000.0, 0.2, rate)  # a burst, not the whole test
    check = analyse_echo(short, rate, 1000.0, 1.0)
    assert not check.passed and check.tone_seconds == pytest.approx(0.2, abs=0.03)
    assert analyse_echo(np.zeros(10, np.int16), rate, 1000.0, 1.0) == EchoCheck(0.0, 0.0, None, False)


def _stream(rtt: float | None, rx_lost: int = 0, tx_lost: int = 0) -> StreamFigures:
    return StreamFigures("PCMU/8000", 250 - rx_lost, rx_lost, 250, tx_lost, 0.5, 1.0, 0.4, rtt, 40.0)


def test_delay_source_and_assessment() -> None:
    echo = EchoCheck(1.0, 3.0, 180.0, True)
    assert one_way_delay(_stream(10.0), echo) == (90.0, "half the echo round trip")
    assert one_way_delay(_stream(10.0), None)[0] == pytest.approx(5.0 + 20.0 + 40.0)
    assert one_way_delay(_stream(None), None)[0] == pytest.approx(60.0)
    rep = assess("sip:1002@h", "1001", 0.05, _stream(None, rx_lost=5, tx_lost=1), echo)
    assert rep.rating.loss_percent == pytest.approx(2.0)  # the worse direction: 5 of 250
    assert rep.rating.r == pytest.approx(93.2 - 95 * 2 / 27.1, abs=0.01)
    assert rep.passed
    with pytest.raises(TargetError):
        tone_signal(5000.0, 1.0, 8000)  # above Nyquist for narrowband
