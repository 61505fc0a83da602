"""DTMF end to end (issue 12 finding 7): the far phone's own DTMF callback receives the digits.

Each test places a call between two pjsua2 phones through the engine, keys digits on one and
checks what the other phone's `onDtmfDigit` (or, for a phone without telephone-event, its
recording) got: the digits in order, with the durations kept.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import dtmf_digits, dtmf_digits_settled, read_wav
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.sipp import auth_row, run_sipp
from tests.peers.polling import wait_until

DURATION_MS = 200  # longer than pjsua's default 160 ms, so a kept duration is told from a reset one
TOLERANCE_MS = 45  # a packet interval of rounding on each of the two RFC 4733 hops, plus one


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    cfg = default_config()
    for ext in cfg["extensions"]:
        if ext["number"] == "1001":
            ext["recording"] = "on-demand"
    # MD5 beside SHA-256: SIPp's digest only speaks MD5 (the SIP INFO test's phone is SIPp)
    eng = Engine(tmp_path / "engine", config=cfg, extra_args=["--digest-algorithms", "MD5,SHA-256"])
    with eng.running():
        yield eng


@contextmanager
def _call(pbx: Engine, a: PjPhone, b: PjPhone, **answer: Any) -> Iterator[tuple[int, int]]:
    ca = a.call(f"sip:1002@127.0.0.1:{pbx.sip_port}")
    cb = b.wait_incoming()
    b.answer(cb, **answer)
    a.wait_state(ca, "CONFIRMED")
    b.wait_state(cb, "CONFIRMED")
    # RTP flowing both ways first: the engine latches each phone's address on its first packet
    wait_until(lambda: a.media_state(ca).get("status") == "ACTIVE"
               and b.media_state(cb).get("status") == "ACTIVE", timeout=5.0)
    try:
        yield ca, cb
    finally:
        a.hangup(ca)
        b.wait_state(cb, "DISCONNECTED")


def _received(phone: PjPhone, count: int, timeout: float = 8.0) -> str:
    wait_until(lambda: len(phone.received_dtmf()) >= count, timeout=timeout)
    return "".join(phone.received_dtmf())


@pytest.mark.parametrize("codec_a,codec_b", [("PCMU", "PCMU"), ("PCMU", "G722"), ("PCMA", "PCMU")])
def test_rfc4733_digits_reach_the_far_phone_with_their_durations(pbx: Engine, codec_a: str,
                                                                 codec_b: str) -> None:
    with _phone(pbx, "a", "1001", codecs=[codec_a]) as a, \
            _phone(pbx, "b", "1002", codecs=[codec_b]) as b, _call(pbx, a, b) as (ca, cb):
        assert b.call_info(cb)["codec"].startswith(codec_b)
        a.dial_dtmf(ca, "1590#", duration_ms=DURATION_MS)
        assert _received(b, 5) == "1590#"
        durations = wait_until(lambda: len(b.received_dtmf_durations()) >= 5 and b.received_dtmf_durations())
        assert all(abs(d - DURATION_MS) <= TOLERANCE_MS for d in durations), durations
        # and the other way
        b.dial_dtmf(cb, "37", duration_ms=DURATION_MS)
        assert _received(a, 2) == "37"


def test_digits_are_played_in_band_to_a_phone_without_telephone_event(pbx: Engine,
                                                                       tmp_path: Path) -> None:
    rec = tmp_path / "b.wav"
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002", telephone_event=False) as b, \
            _call(pbx, a, b, record_wav=rec) as (ca, cb):
        a.dial_dtmf(ca, "2580", duration_ms=DURATION_MS)

        def heard() -> list[tuple[str, int]]:
            # pjsua writes the WAV header's sizes only when it closes the file: read what is
            # there so far (a canonical 44-octet header, 16-bit mono)
            data = rec.read_bytes() if rec.exists() else b""
            if len(data) <= 44:
                return []
            samples = np.frombuffer(data[44:len(data) & ~1], dtype="<i2")
            return dtmf_digits_settled(samples, int.from_bytes(data[24:28], "little"))

        wait_until(lambda: len(heard()) >= 4, timeout=8.0)
        b.stop_record(cb)
    rate, samples = read_wav(rec)
    keys = dtmf_digits(samples, rate)
    assert "".join(d for d, _ in keys) == "2580", keys
    assert all(abs(ms - DURATION_MS) <= TOLERANCE_MS for _, ms in keys), keys
    assert b.received_dtmf() == []  # no telephone-event was negotiated, none was sent


def test_sip_info_digits_reach_the_far_phone_as_rfc4733(pbx: Engine) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b, _call(pbx, a, b) as (ca, cb):
        a.dial_dtmf(ca, "4#6", method="info", duration_ms=DURATION_MS)
        assert _received(b, 3) == "4#6"
        durations = wait_until(lambda: len(b.received_dtmf_durations()) >= 3 and b.received_dtmf_durations())
        assert all(abs(d - DURATION_MS) <= TOLERANCE_MS for d in durations), durations


def test_sip_info_from_a_sipp_phone_reaches_a_pjsua_phone(pbx: Engine, tmp_path: Path) -> None:
    scenario = Path(__file__).parent.parent / "sipp" / "engine" / "uac_info_dtmf.xml"
    with _phone(pbx, "b", "1002", auto_answer=True) as b:
        res = run_sipp(scenario, f"127.0.0.1:{pbx.sip_port}", service="1002",
                       inject=[auth_row("1001", pbx.secret("1001"))], timeout=15, workdir=tmp_path / "a")
        assert res.returncode == 0 and res.successful == 1, res.explain()  # each INFO got its 200
        assert _received(b, 2) == "5#"
        durations = wait_until(lambda: len(b.received_dtmf_durations()) >= 2 and b.received_dtmf_durations())
    assert abs(durations[0] - 160) <= TOLERANCE_MS and abs(durations[1] - 240) <= TOLERANCE_MS, durations


def _recordings(pbx: Engine) -> list[sqlite3.Row]:
    db = sqlite3.connect(pbx.data_dir / "plateau.db")
    db.row_factory = sqlite3.Row
    try:
        return list(db.execute("SELECT * FROM recordings ORDER BY id"))
    finally:
        db.close()


def test_star1_still_toggles_recording_while_star5_passes_through(pbx: Engine) -> None:
    with _phone(pbx, "a", "1001") as a, _phone(pbx, "b", "1002") as b, _call(pbx, a, b) as (ca, cb):
        a.dial_dtmf(ca, "*1")
        wait_until(lambda: len(_recordings(pbx)) == 1, timeout=5.0)
        a.dial_dtmf(ca, "*5")
        assert _received(b, 2) == "*5"  # the feature code was swallowed, "*5" passed in order
        a.dial_dtmf(ca, "*1")
        wait_until(lambda: _recordings(pbx)[0]["ended_at"] is not None, timeout=5.0)
        a.dial_dtmf(ca, "9*")  # a lone "*" is passed on after the feature-digit timeout
        assert _received(b, 4) == "*59*"
    assert len(_recordings(pbx)) == 1


def test_a_carrier_callers_keys_pass_through_a_trunk_and_are_never_feature_codes(tmp_path: Path) -> None:
    did = "0140000000"
    with PjPhone("carrier") as carrier:
        cfg = default_config()
        for ext in cfg["extensions"]:
            if ext["number"] == "1002":
                ext["recording"] = "on-demand"
        cfg["trunks"] = [{"name": "carrier", "host": "127.0.0.1", "port": carrier.sip_port}]
        cfg["inbound_routes"] = [{"did": did, "destination": "1002"}]
        eng = Engine(tmp_path / "engine", config=cfg)
        with eng.running(), _phone(eng, "b", "1002") as b:
            call = carrier.call(f"sip:{did}@127.0.0.1:{eng.sip_port}")
            cb = b.wait_incoming()
            b.answer(cb)
            carrier.wait_state(call, "CONFIRMED")
            carrier.dial_dtmf(call, "*1*5", duration_ms=DURATION_MS)
            assert _received(b, 4) == "*1*5"  # a trunk's caller must not drive our recording
            b.dial_dtmf(cb, "0#", duration_ms=DURATION_MS)
            assert _received(carrier, 2) == "0#"
            carrier.hangup(call)
            b.wait_state(cb, "DISCONNECTED")
            assert _recordings(eng) == []
