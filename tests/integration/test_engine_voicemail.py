"""Voicemail with real pjsua2 phones: an unanswered call leaves a message, the phone's lamp lights
(RFC 3842 NOTIFY), *97 plays the message back and the lamp goes out."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    cfg = default_config()
    bob = next(e for e in cfg["extensions"] if e["number"] == "1002")
    bob.update(voicemail=True, noanswer_seconds=3)
    eng = Engine(tmp_path / "engine", config=cfg)
    with eng.running():
        yield eng


def wait_mwi(phone: PjPhone, counts: str, timeout: float = 8.0) -> str:
    return str(wait_until(lambda: next((ev.data["message"] for ev in phone.events("mwi")
                                        if f"Voice-Message: {counts}" in ev.data["message"]), None),
                          timeout, f"a NOTIFY with Voice-Message: {counts}"))


def test_unanswered_call_leaves_a_message_that_lights_the_lamp_and_plays_back(pbx: Engine, tmp_path: Path) -> None:
    tone = write_tone_wav(tmp_path / "tone.wav", 440, 30)
    played = tmp_path / "played.wav"
    with PjPhone("alice") as alice, PjPhone("bob") as bob:
        alice.register("1001", pbx.secret("1001"), "127.0.0.1", pbx.sip_port)
        bob.register("1002", pbx.secret("1002"), "127.0.0.1", pbx.sip_port)
        call = alice.call(pbx.uri("1002"), play_wav=tone)
        ringing = bob.wait_incoming()
        alice.wait_state(call, "CONFIRMED", timeout=8.0)  # no answer in 3 s: voicemail answers
        bob.wait_state(ringing, "DISCONNECTED")
        # Kept: the engine sends nothing while it records, so there is nothing to wait on but time
        # (greeting, beep, then about 3 s of the caller's tone; the check below looks at the middle).
        time.sleep(9.0)
        alice.hangup(call)
        message = wait_mwi(bob, "1/0")
        assert "Messages-Waiting: yes" in message
        db = sqlite3.connect(pbx.data_dir / "plateau.db")
        rows = db.execute("SELECT mailbox, caller, duration_s, path, heard FROM voicemail").fetchall()
        db.close()
        assert len(rows) == 1 and rows[0][:2] == ("1002", "1001") and rows[0][2] > 1.5 and rows[0][4] == 0
        rate, audio = read_wav(rows[0][3])
        assert tone_ratio(audio[rate // 2: -rate // 2], rate, 440) > 0.5  # the caller's words, not our prompts

        listen = bob.call(pbx.uri("*97"), record_wav=played)
        bob.wait_state(listen, "CONFIRMED")
        bob.wait_rx_audio(listen, 9.0, timeout=25.0)  # "You have 1 new message", then the message
        bob.dial_dtmf(listen, "2")  # next: the message is now heard
        wait_mwi(bob, "0/1", timeout=12.0)
        bob.wait_state(listen, "DISCONNECTED", timeout=15.0)
    rate, audio = read_wav(played)
    best = max(tone_ratio(audio[i:i + rate], rate, 440) for i in range(0, len(audio) - rate, rate // 2))
    assert best > 0.5  # the message played back to the owner
