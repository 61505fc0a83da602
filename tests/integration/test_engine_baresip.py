"""baresip registers with the engine and completes a call with a pjsua2 phone, audio checked."""
from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Iterator

import pytest

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.baresip import Baresip
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    # baresip 1.0's libre gives up (ENOSYS) on any challenge whose algorithm it does not know, even
    # beside an MD5 one: sites with such phones offer MD5 alone, which this setting does.
    eng = Engine(tmp_path / "engine", extra_args=["--digest-algorithms", "MD5"])
    with eng.running():
        yield eng


def test_baresip_calls_a_pjsua2_phone_through_the_engine(pbx: Engine, tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "t2k.wav", 2000, 3.0)
    rec = tmp_path / "pj.wav"
    bs = Baresip("carol", tone_hz=1000, work_dir=tmp_path / "baresip")
    bs.set_account("1005", pbx.secret("1005"), "127.0.0.1", pbx.sip_port)
    with bs, PjPhone("alice", auto_answer=True, auto_play=tone, auto_record=rec) as pj:
        pj.register("1006", pbx.secret("1006"), "127.0.0.1", pbx.sip_port)
        bs.wait_registered(timeout=10.0)
        _, regs = pbx.api("GET", "/v1/registrations")
        assert {"1005", "1006"} <= {r["aor"] for r in regs}
        bs.dial(pbx.uri("1006"))
        bs.wait_event("CALL_ESTABLISHED", timeout=10.0)
        assert pj.incoming_info(0)["remote_uri"].startswith("sip:1005@")
        time.sleep(2.0)
        bs.hangup()
        bs.wait_event("CALL_CLOSED", timeout=5.0)
        pj.wait_state(0, "DISCONNECTED")
    rate, got = read_wav(rec)
    assert tone_ratio(got, rate, 1000) > 0.7  # baresip's sine crossed the engine
    [dec] = bs.decoded_recordings()
    rate, got = read_wav(dec)
    assert tone_ratio(got, rate, 2000) > 0.7  # and pjsua2's tone came back
