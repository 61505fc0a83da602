"""Supervision with real pjsua2 phones: a supervisor listens to, whispers to and barges in on an
agent's queue call (*70/*71/*72, keys 4/5/6 mid-call, or the control API), proven by tones.

The caller plays 440 Hz, the agent 1000 Hz and the supervisor 2000 Hz; each phase records what
every phone hears and Goertzel says which tones reached whom."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.acd import phone
from tests.peers.engine import Engine, default_config
from tests.peers.pjsua import PjPhone, wait_rx_audio

CALLER, AGENT, OTHER, SUPERVISOR, UNREGISTERED = "1001", "1002", "1003", "1004", "1005"
CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 440, 1000, 2000
HEARD, NOT_HEARD = 0.3, 0.02  # fractions of the power (two tones mixed: ~0.5 each; measured 0.49-0.51 vs 0.000)
PHASE_S = 1.5


def supervision_config() -> dict[str, Any]:
    cfg: dict[str, Any] = default_config()
    cfg["settings"] = {"acd.supervisors": f"{SUPERVISOR}, 1009"}
    cfg["agents"] = [{"agent_id": "2001", "name": "Ana", "pin": "1111"}]
    cfg["queues"] = [{"name": "support", "number": "6000", "strategy": "longest-idle", "wrapup_seconds": 0,
                      "announce_seconds": 0, "join_empty": True, "leave_empty": False}]
    return cfg


@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine", config=supervision_config())
    with eng.running():
        yield eng


def agent_call(pbx: Engine, caller: PjPhone, agent: PjPhone, tmp_path: Path) -> tuple[int, int]:
    """Agent 2001 logged in on AGENT by the API answers the caller's queue call; both play tones."""
    assert pbx.api("POST", "/v1/agents/2001/login", {"device": AGENT})[0] == 200
    call = caller.call(pbx.uri("6000"), play_wav=write_tone_wav(tmp_path / "caller.wav", CALLER_HZ, 60))
    caller.wait_state(call, "CONFIRMED")
    offered = agent.wait_incoming(timeout=5.0)
    agent.answer(offered, play_wav=write_tone_wav(tmp_path / "agent.wav", AGENT_HZ, 60))
    agent.wait_state(offered, "CONFIRMED")
    return call, offered


def hear(tmp_path: Path, phase: str, legs: dict[str, tuple[PjPhone, int]]) -> dict[str, tuple[int, np.ndarray]]:
    """Record what each phone hears for PHASE_S seconds of received audio."""
    paths = {}
    for who, (p, call) in legs.items():
        paths[who] = tmp_path / f"{phase}-{who}.wav"
        p.record(call, paths[who])
    wait_rx_audio(list(legs.values()), PHASE_S)
    for p, call in legs.values():
        p.stop_record(call)
    return {who: read_wav(path) for who, path in paths.items()}


def windowed_ratio(audio: np.ndarray, rate: int, hz: int, window_s: float = 0.1) -> float:
    """Median `tone_ratio` over 100 ms windows.

    A jitter buffer that drops or repeats a 20 ms frame (the phones' clocks drift from the
    engine's) breaks the phase of a tone that is not a whole number of cycles per frame (440 Hz),
    which a single Goertzel over seconds would read as the tone fading; short windows do not care.
    """
    n = int(rate * window_s)
    return float(np.median([tone_ratio(audio[i:i + n], rate, hz) for i in range(0, audio.size - n + 1, n)]))


def ratio(heard: dict[str, tuple[int, np.ndarray]], who: str, hz: int) -> float:
    rate, audio = heard[who]
    assert audio.size > rate, f"{who}: recording too short"
    return windowed_ratio(audio, rate, hz)


def test_listen_whisper_barge_by_keys_then_the_supervisor_leaves_and_the_call_goes_on(
        pbx: Engine, tmp_path: Path) -> None:
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "agent", AGENT) as agent, \
            phone(pbx, "sup", SUPERVISOR) as sup:
        call, offered = agent_call(pbx, caller, agent, tmp_path)
        spy = sup.call(pbx.uri("*702001"), play_wav=write_tone_wav(tmp_path / "sup.wav", SUPERVISOR_HZ, 60))
        sup.wait_state(spy, "CONFIRMED")
        legs = {"caller": (caller, call), "agent": (agent, offered), "sup": (sup, spy)}
        # Kept (the 0.5 s before each phase): the jitter buffers settle after each mode change, which
        # no API shows; the phase's check is a median over 100 ms windows, so this is margin only.
        time.sleep(0.5)
        listen = hear(tmp_path, "listen", legs)
        sup.dial_dtmf(spy, "5")
        time.sleep(0.5)
        whisper = hear(tmp_path, "whisper", legs)
        sup.dial_dtmf(spy, "6")
        time.sleep(0.5)
        barge = hear(tmp_path, "barge", legs)
        sup.hangup(spy)
        sup.wait_state(spy, "DISCONNECTED")
        time.sleep(0.5)
        after = hear(tmp_path, "after", {"caller": (caller, call), "agent": (agent, offered)})
        _, calls = pbx.api("GET", "/v1/calls")
        assert [c["dialed"] for c in calls] == ["6000"]  # the supervisor's call is gone, theirs is up
        caller.hangup(call)
        agent.wait_state(offered, "DISCONNECTED")
    # Listen: the supervisor hears both parties; nobody hears the supervisor.
    assert ratio(listen, "sup", CALLER_HZ) > HEARD and ratio(listen, "sup", AGENT_HZ) > HEARD
    assert ratio(listen, "caller", SUPERVISOR_HZ) < NOT_HEARD and ratio(listen, "agent", SUPERVISOR_HZ) < NOT_HEARD
    assert ratio(listen, "caller", AGENT_HZ) > 0.5 and ratio(listen, "agent", CALLER_HZ) > 0.5
    # Whisper (key 5): the agent hears the supervisor, the caller does not.
    assert ratio(whisper, "agent", SUPERVISOR_HZ) > HEARD and ratio(whisper, "agent", CALLER_HZ) > HEARD
    assert ratio(whisper, "caller", SUPERVISOR_HZ) < NOT_HEARD and ratio(whisper, "caller", AGENT_HZ) > 0.5
    assert ratio(whisper, "sup", CALLER_HZ) > HEARD and ratio(whisper, "sup", AGENT_HZ) > HEARD
    # Barge (key 6): a three-way call.
    assert ratio(barge, "caller", SUPERVISOR_HZ) > HEARD and ratio(barge, "agent", SUPERVISOR_HZ) > HEARD
    assert ratio(barge, "sup", CALLER_HZ) > HEARD and ratio(barge, "sup", AGENT_HZ) > HEARD
    # The supervisor hung up while barged in: caller and agent still hear each other, and only each other.
    assert ratio(after, "caller", AGENT_HZ) > 0.5 and ratio(after, "agent", CALLER_HZ) > 0.5
    assert ratio(after, "caller", SUPERVISOR_HZ) < NOT_HEARD and ratio(after, "agent", SUPERVISOR_HZ) < NOT_HEARD


def test_api_rings_the_supervisor_to_whisper_and_the_end_of_the_call_releases_it(
        pbx: Engine, tmp_path: Path) -> None:
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "agent", AGENT) as agent, \
            phone(pbx, "sup", SUPERVISOR) as sup:
        assert pbx.api("POST", "/v1/agents/2001/monitor", {"device": SUPERVISOR, "mode": "listen"})[0] == 409
        call, offered = agent_call(pbx, caller, agent, tmp_path)
        status, body = pbx.api("POST", "/v1/agents/2001/monitor", {"device": UNREGISTERED, "mode": "listen"})
        assert status == 409 and "no registered phone" in body["error"]
        status, body = pbx.api("POST", "/v1/agents/2001/monitor", {"device": SUPERVISOR, "mode": "whisper"})
        assert status == 200 and body["mode"] == "whisper"
        spy = sup.wait_incoming(timeout=5.0)
        assert sup.incoming_info(spy)["display"] == "Supervise agent 2001"
        sup.answer(spy, play_wav=write_tone_wav(tmp_path / "sup.wav", SUPERVISOR_HZ, 60))
        sup.wait_state(spy, "CONFIRMED")
        sup.wait_rx_audio(spy, 0.5)  # the supervisor's media is up before its window starts
        whisper = hear(tmp_path, "whisper", {"caller": (caller, call), "agent": (agent, offered), "sup": (sup, spy)})
        caller.hangup(call)  # the watched call ends: the supervisor is told, then released
        agent.wait_state(offered, "DISCONNECTED")
        sup.wait_state(spy, "DISCONNECTED", timeout=10.0)
    assert ratio(whisper, "agent", SUPERVISOR_HZ) > HEARD and ratio(whisper, "caller", SUPERVISOR_HZ) < NOT_HEARD
    assert ratio(whisper, "sup", CALLER_HZ) > HEARD and ratio(whisper, "sup", AGENT_HZ) > HEARD


def test_only_listed_supervisors_may_listen_and_bad_requests_are_refused(pbx: Engine, tmp_path: Path) -> None:
    assert pbx.api("POST", "/v1/agents/2001/monitor", {"device": SUPERVISOR, "mode": "spy"})[0] == 400
    assert pbx.api("POST", "/v1/agents/2001/monitor", {"device": SUPERVISOR})[0] == 400
    assert pbx.api("POST", "/v1/agents/2999/monitor", {"device": SUPERVISOR, "mode": "listen"})[0] == 404
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "agent", AGENT) as agent, \
            phone(pbx, "other", OTHER) as other:
        call, offered = agent_call(pbx, caller, agent, tmp_path)
        spy = other.call(pbx.uri("*702001"), play_wav=write_tone_wav(tmp_path / "other.wav", SUPERVISOR_HZ, 60))
        other.wait_state(spy, "CONFIRMED")  # answered to say why, then released
        other.record(spy, tmp_path / "other-heard.wav")
        other.wait_state(spy, "DISCONNECTED", timeout=10.0)
        heard = {"other": read_wav(tmp_path / "other-heard.wav")}
        assert "is not in acd.supervisors: refused" in pbx.stderr_tail(20000)
        caller.hangup(call)
        agent.wait_state(offered, "DISCONNECTED")
    rate, audio = heard["other"]
    # Whatever the refused phone heard (the announcement), it was not the call.
    assert windowed_ratio(audio, rate, CALLER_HZ) < NOT_HEARD and windowed_ratio(audio, rate, AGENT_HZ) < NOT_HEARD
