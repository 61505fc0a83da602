"""Two engines on one PostgreSQL site: a phone registered on one engine is reached from the other.

The registrar of each engine reads the site's bindings from the shared store (sip/registrar.py),
so the engine a caller reached rings a phone whose REGISTER another engine took.
"""
from __future__ import annotations

from pathlib import Path

from appliance.store.db import Store
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.engine import Engine
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until


def test_a_phone_registered_on_engine_2_is_called_through_engine_1_with_tones_both_ways(
        tmp_path: Path, postgres_url: str) -> None:
    tone_a = write_tone_wav(tmp_path / "a.wav", 1000, 3.0, rate=8000, amplitude=8000)
    tone_b = write_tone_wav(tmp_path / "b.wav", 2000, 3.0, rate=8000, amplitude=8000)
    rec_a, rec_b = tmp_path / "rec_a.wav", tmp_path / "rec_b.wav"
    one = Engine(tmp_path / "one", db=postgres_url, extra_args=["--node", "one"])
    two = Engine(tmp_path / "two", db=postgres_url, extra_args=["--node", "two"])
    with one.running(), two.running():
        assert one.api("GET", "/v1/status")[1]["node"] == "one"
        with _phone(one, "a", "1001") as a, _phone(two, "b", "1002") as b:
            ca = a.call(f"sip:1002@127.0.0.1:{one.sip_port}", play_wav=tone_a, record_wav=rec_a)
            cb = b.wait_incoming()
            b.answer(cb, play_wav=tone_b, record_wav=rec_b)
            a.wait_state(ca, "CONFIRMED")
            a.wait_rx_audio(ca, 1.5)
            b.wait_rx_audio(cb, 1.5)
            a.hangup(ca)
            b.wait_state(cb, "DISCONNECTED")
            # Engine 2 took the REGISTER; engine 1 alone carried the call.
            assert two.api("GET", "/v1/calls")[1] == []
        with Store(postgres_url) as store:
            closed = wait_until(lambda: [c for c in store.cdrs() if c.disposition], what="the closed CDR")
    assert [(c.caller, c.callee, c.disposition) for c in closed] == [("1001", "1002", "ANSWERED")]
    rate_a, got_a = read_wav(rec_a)
    rate_b, got_b = read_wav(rec_b)
    assert tone_ratio(got_b, rate_b, 1000) > 0.7
    assert tone_ratio(got_a, rate_a, 2000) > 0.7


def test_an_unregister_on_engine_2_is_seen_by_engine_1(tmp_path: Path, postgres_url: str) -> None:
    one = Engine(tmp_path / "one", db=postgres_url, extra_args=["--node", "one"])
    two = Engine(tmp_path / "two", db=postgres_url, extra_args=["--node", "two"])
    with one.running(), two.running():
        with _phone(one, "a", "1001") as a, _phone(two, "b", "1002") as b:
            b.unregister()
            ca = a.call(f"sip:1002@127.0.0.1:{one.sip_port}")
            a.wait_state(ca, "DISCONNECTED")
            assert a.last_status(ca) == 480  # not registered anywhere on the site
