"""ACD with real pjsua2 phones: agents log in by feature code, skills and strategy choose who rings,
the caller hears its position, abandons are logged, callbacks keep the place, agents survive kill -9."""
from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from appliance.ivr.tts import PromptCache, resample
from appliance.pbx.waiting import announcement_text
from tests.audio import DTMF_PAIRS, read_wav, sine, tone_ratio, write_tone_wav
from tests.peers.acd import (
    ANA_PHONE,
    BOB_PHONE,
    CALLER,
    agent,
    engine_with_flows,
    login_by_feature_code,
    phone,
    queue_config,
    queue_log,
    wait_agent,
)
from tests.peers.engine import Engine

@pytest.fixture
def pbx(tmp_path: Path) -> Iterator[Engine]:
    eng = Engine(tmp_path / "engine", config=queue_config())
    with eng.running():
        yield eng


def events(pbx: Engine) -> list[str]:
    return [row[0] for row in queue_log(pbx)]


def test_agent_logs_in_by_feature_code_the_skilled_agent_rings_and_tones_pass_both_ways(
        pbx: Engine, tmp_path: Path) -> None:
    to_agent = write_tone_wav(tmp_path / "caller.wav", 440, 30)
    to_caller = write_tone_wav(tmp_path / "agent.wav", 1000, 30)
    caller_heard, agent_heard = tmp_path / "caller_heard.wav", tmp_path / "agent_heard.wav"
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "ana", ANA_PHONE) as ana, \
            phone(pbx, "bob", BOB_PHONE) as bob:
        login_by_feature_code(pbx, ana, "2001", "1111")
        assert agent(pbx, "2001")["state"] == "available" and agent(pbx, "2001")["device"] == ANA_PHONE
        status, _ = pbx.api("POST", "/v1/agents/2002/login", {"device": BOB_PHONE})
        assert status == 200
        call = caller.call(pbx.uri("6000"), play_wav=to_agent, record_wav=caller_heard)
        caller.wait_state(call, "CONFIRMED")  # the queue answers and plays music
        offered = ana.wait_incoming(timeout=5.0)  # french:5 meets french:4; Bob (french:2) does not
        assert "[support]" in ana.incoming_info(offered)["display"]
        assert not bob.events("incoming")
        assert agent(pbx, "2001")["state"] == "ringing"
        ana.answer(offered, play_wav=to_caller, record_wav=agent_heard)
        ana.wait_state(offered, "CONFIRMED")
        assert agent(pbx, "2001")["state"] == "on-call"
        caller.wait_rx_audio(call, 2.0)
        ana.wait_rx_audio(offered, 2.0)
        caller.stop_record(call)
        ana.stop_record(offered)
        caller.hangup(call)
        ana.wait_state(offered, "DISCONNECTED")
        assert wait_agent(pbx, "2001", "wrap-up", timeout=2.0)
        wait_agent(pbx, "2001", "available", timeout=5.0)  # wrap-up lasts the queue's 2 s
    rate, heard = read_wav(caller_heard)
    assert tone_ratio(heard[-rate:], rate, 1000) > 0.5
    rate, heard = read_wav(agent_heard)
    assert tone_ratio(heard[-rate:], rate, 440) > 0.5
    log = queue_log(pbx)
    assert [e for e, *_ in log if not e.startswith("AGENT")] == ["ENTER", "OFFER", "CONNECT", "COMPLETE"]
    assert ("AGENT_LOGIN", "2001") in [(e, a) for e, a, *_ in log]
    connect = next(row for row in log if row[0] == "CONNECT")
    assert connect[1] == "2001" and connect[2] == 1 and connect[3] is not None and connect[3] < 5.0


def test_requirements_widen_with_the_wait_and_an_abandon_is_logged_with_position_and_wait(
        pbx: Engine) -> None:
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "bob", BOB_PHONE) as bob:
        pbx.api("POST", "/v1/agents/2002/login", {"device": BOB_PHONE})
        call = caller.call(pbx.uri("6000"))
        caller.wait_state(call, "CONFIRMED")
        start = time.monotonic()
        offered = bob.wait_incoming(timeout=10.0)  # only once "after 6s: french:1" applies
        assert time.monotonic() - start > 4.5
        caller.hangup(call)
        bob.wait_state(offered, "DISCONNECTED")
        wait_agent(pbx, "2002", "available", timeout=3.0)  # not the agent's fault: no no-answer count
    log = queue_log(pbx)
    abandon = next(row for row in log if row[0] == "ABANDON")
    assert abandon[2] == 1 and abandon[3] is not None and abandon[3] > 5.0
    assert "RINGNOANSWER" not in events(pbx) and "CONNECT" not in events(pbx)


def test_caller_hears_its_position_then_a_callback_keeps_its_place(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "engine", config=queue_config(announce_seconds=30))
    eng.start()
    heard = tmp_path / "heard.wav"
    tone = write_tone_wav(tmp_path / "tone.wav", 1000, 30)
    try:
        with eng.no_tracebacks(), phone(eng, "caller", CALLER) as caller, phone(eng, "ana", ANA_PHONE) as ana:
            call = caller.call(eng.uri("6000"), record_wav=heard)
            caller.wait_state(call, "CONFIRMED")
            caller.wait_rx_audio(call, 6.0, timeout=20.0)  # the position announcement, whole
            caller.stop_record(call)
            caller.dial_dtmf(call, "1")  # the callback key: the PBX confirms and hangs up
            caller.wait_state(call, "DISCONNECTED", timeout=15.0)
            assert events(eng)[-1] == "CALLBACK_REQUESTED"
            _, queues = eng.api("GET", "/v1/queues")
            assert queues[0]["waiting"] == 1 and queues[0]["callers"][0]["callback"] is True
            eng.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})
            offered = ana.wait_incoming(timeout=5.0)  # the agent first...
            assert "[Callback]" in ana.incoming_info(offered)["display"]
            ana.answer(offered, play_wav=tone)
            back = caller.wait_incoming(timeout=5.0)  # ...then the customer is called back
            caller.answer(back, record_wav=tmp_path / "back.wav")
            caller.wait_state(back, "CONFIRMED")
            caller.wait_rx_audio(back, 2.0)
            caller.stop_record(back)
            caller.hangup(back)
            ana.wait_state(offered, "DISCONNECTED")
        rate, back_audio = read_wav(tmp_path / "back.wav")
        assert tone_ratio(back_audio[-rate:], rate, 1000) > 0.5
        assert [e for e in events(eng) if not e.startswith("AGENT")] == [
            "ENTER", "CALLBACK_REQUESTED", "OFFER", "CONNECT", "CALLBACK_PLACED", "COMPLETE"]
    finally:
        eng.stop()
    # The announcement is proven by content: the caller's recording matches the rendering of
    # "You are caller number 1..." far better than the same sentence with another number.
    rate, audio = read_wav(heard)
    prompts = PromptCache(tmp_path / "tts")
    expected = announcement_text(1, None, "1")
    assert match_score(audio, rate, prompts, expected) > 0.5
    assert match_score(audio, rate, prompts, expected) > 1.5 * match_score(
        audio, rate, prompts, announcement_text(7, None, "1"))


def match_score(audio: np.ndarray, rate: int, prompts: PromptCache, text: str, parts: int = 1) -> float:
    """Peak normalised cross-correlation of the rendered `text` within `audio`; with `parts`, the
    worst of its consecutive parts, each found on its own (a late packet in a long message shifts
    what follows it, which lowers one whole-message peak without the words being any less there)."""
    _, ref = read_wav(prompts.path_for(text))
    ref = resample(ref, 16000, rate).astype(np.float64)
    return min(_peak_correlation(audio, piece) for piece in np.array_split(ref, parts))


def _peak_correlation(audio: np.ndarray, ref: np.ndarray) -> float:
    x = audio.astype(np.float64)
    n = len(x) + len(ref)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(ref, size)), size)[: len(x)]
    window = np.convolve(x * x, np.ones(len(ref)), "full")[len(ref) - 1: len(ref) - 1 + len(x)]
    norm = np.sqrt(np.maximum(window, 1e-9) * float(np.dot(ref, ref)))
    return float(np.max(np.abs(corr) / norm))


def test_agent_states_survive_kill_9(pbx: Engine) -> None:
    with phone(pbx, "caller", CALLER) as caller, phone(pbx, "bob", BOB_PHONE) as bob:
        pbx.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})
        pbx.api("POST", "/v1/agents/2001/pause", {"reason": "2"})
        pbx.api("POST", "/v1/agents/2002/login", {"device": BOB_PHONE})
        call = caller.call(pbx.uri("6000"))
        offered = bob.wait_incoming(timeout=10.0)
        bob.answer(offered)
        bob.wait_state(offered, "CONFIRMED")
        assert agent(pbx, "2002")["state"] == "on-call"
        pbx.kill9()
        pbx.restart()
        ana = agent(pbx, "2001")
        assert (ana["state"], ana["pause_reason"], ana["device"]) == ("paused", "lunch", ANA_PHONE)
        bob_state = agent(pbx, "2002")
        # The call died with the engine: Bob is not left "on call" for ever, and stays logged in.
        assert (bob_state["state"], bob_state["device"]) == ("available", BOB_PHONE)
        caller.hangup(call)
        bob.hangup(offered)


def test_agent_api_refuses_bad_requests_with_clear_errors(pbx: Engine) -> None:
    assert pbx.api("POST", "/v1/agents/2001/login", {}) == (400, {"error": "field 'device' is required to log in"})
    assert pbx.api("POST", "/v1/agents/2001/login", {"device": "9999"})[0] == 400
    assert pbx.api("POST", "/v1/agents/2999/logout")[0] == 404
    status, body = pbx.api("POST", "/v1/agents/2001/pause", {"reason": "1"})
    assert status == 409 and "logged-out" in body["error"]
    assert pbx.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200
    status, body = pbx.api("POST", "/v1/agents/2002/login", {"device": ANA_PHONE})
    assert status == 409 and "already logged in" in body["error"]
    assert agent(pbx, "2001")["state"] == "available"


def test_survey_after_the_agent_hangs_up_and_the_interaction_is_dispositioned(tmp_path: Path) -> None:
    eng = Engine(tmp_path / "engine", config=queue_config(survey=True, escalations=[]))
    with eng.running(), phone(eng, "caller", CALLER) as caller, phone(eng, "ana", ANA_PHONE) as ana:
        eng.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})
        call = caller.call(eng.uri("6000"))
        offered = ana.wait_incoming(timeout=5.0)
        ana.answer(offered)
        ana.wait_state(offered, "CONFIRMED")
        pop = agent(eng, "2001")  # the agent's screen pop: caller and interaction
        assert pop["caller"] == CALLER and pop["interaction"] is not None
        ana.hangup(offered)  # the caller stays for the survey
        time.sleep(2.0)  # kept: proves the caller is NOT released meanwhile (and the survey prompt starts)
        assert caller.call_info(call)["state"] == "CONFIRMED"
        for keys in ("4", "9#", "2"):  # CSAT 4, NPS 9 (a promoter), CES 2
            caller.dial_dtmf(call, keys)
            time.sleep(2.0)  # kept: the next question's prompt must start before its key (no prompt state in the API)
        caller.wait_state(call, "DISCONNECTED", timeout=15.0)
        wait_agent(eng, "2001", "available", timeout=5.0)
        _, kpis = eng.api("GET", "/v1/queues/support/kpis")
        assert (kpis["survey"]["csat_avg"], kpis["survey"]["nps"], kpis["survey"]["ces_avg"]) == (4.0, 100.0, 2.0)
        assert kpis["answered"] == 1 and kpis["service_level"] == 100.0
        interaction = pop["interaction"]
        status, body = eng.api("POST", f"/v1/interactions/{interaction}", {"status": "done"})
        assert status == 400 and "status" in body["error"]
        status, body = eng.api("POST", f"/v1/interactions/{interaction}",
                               {"status": "resolved", "disposition": "sale", "notes": "ordered 2 boxes"})
        assert status == 200 and (body["status"], body["agent"], body["caller"]) == ("resolved", "2001", CALLER)
        assert eng.api("GET", "/v1/interactions/99999")[0] == 404


TWO_LEVEL_FLOW = """
name: front
version: 1
start: identify
nodes:
  identify: {type: lookup_caller, next: menu}
  menu:
    type: menu
    prompt: "say: For sales press 1. For support press 2."
    options: {1: goodbye, 2: support}
    timeout: 8
  support:
    type: menu
    prompt: "say: For French press 3."
    options: {3: french}
    timeout: 8
  french: {type: route, target: "queue:support"}
  goodbye: {type: hangup}
"""


def test_two_level_ivr_by_rfc4733_and_inband_keys_to_a_skills_queue_with_announcement(tmp_path: Path) -> None:
    cfg = queue_config(announce_seconds=30)
    cfg["inbound_routes"] = [{"did": "7000", "destination": "ivr:front"}]
    heard, agent_heard = tmp_path / "heard.wav", tmp_path / "agent_heard.wav"
    inband_3 = write_dtmf_then_tone(tmp_path / "key3.wav", "3", 440)
    to_caller = write_tone_wav(tmp_path / "agent.wav", 1000, 30)
    with engine_with_flows(tmp_path / "engine", cfg, {"front": TWO_LEVEL_FLOW}) as eng, \
            phone(eng, "caller", CALLER) as caller, phone(eng, "ana", ANA_PHONE) as ana, \
            phone(eng, "bob", BOB_PHONE) as bob:
        eng.api("POST", "/v1/agents/2002/login", {"device": BOB_PHONE})  # french:2, logged in first
        eng.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})  # french:5
        call = caller.call(eng.uri("7000"), record_wav=heard)
        caller.wait_state(call, "CONFIRMED")
        time.sleep(1.0)  # kept (both): each menu's prompt starts before its key; keys before it are flushed
        caller.dial_dtmf(call, "2")  # RFC 4733 in the first menu
        time.sleep(1.5)
        caller.play(call, inband_3, loop=False)  # in-band "3" in the second, then a 440 Hz voice
        offered = ana.wait_incoming(timeout=10.0)  # french >= 4: Ana, although Bob idles longer
        assert not bob.events("incoming")
        caller.wait_rx_audio(call, 6.0, timeout=20.0)  # Ana lets it ring while the caller hears the announcement
        caller.stop_record(call)
        ana.answer(offered, play_wav=to_caller, record_wav=agent_heard)
        ana.wait_state(offered, "CONFIRMED")
        caller.record(call, tmp_path / "connected.wav")
        caller.wait_rx_audio(call, 2.0)
        ana.wait_rx_audio(offered, 2.0)
        caller.stop_record(call)
        ana.stop_record(offered)
        caller.hangup(call)
        ana.wait_state(offered, "DISCONNECTED")
        wait_agent(eng, "2001", "wrap-up", timeout=2.0)
        wait_agent(eng, "2001", "available", timeout=5.0)
    rate, audio = read_wav(heard)
    prompts = PromptCache(tmp_path / "tts")
    expected = announcement_text(1, None, "1")
    assert match_score(audio, rate, prompts, expected) > 0.5
    rate, connected = read_wav(tmp_path / "connected.wav")
    assert tone_ratio(connected[-rate:], rate, 1000) > 0.5
    rate, at_agent = read_wav(agent_heard)
    assert tone_ratio(at_agent[-rate:], rate, 440) > 0.5


def write_dtmf_then_tone(path: Path, digit: str, freq: float) -> Path:
    """An in-band DTMF digit, then a steady tone (the caller's voice) for 30 s."""
    low, high = DTMF_PAIRS[digit]
    key = (sine(low, 0.15, amplitude=6000).astype(np.int32) + sine(high, 0.15, amplitude=6000)).astype(np.int16)
    gap = np.zeros(800, np.int16)
    voice = sine(freq, 30.0)
    samples = np.concatenate([gap, key, gap, voice])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(samples.tobytes())
    return path


def test_overflow_when_nobody_serves_or_the_wait_is_too_long_and_no_answer_pauses_the_agent(
        tmp_path: Path) -> None:
    cfg = queue_config(join_empty=False, leave_empty=False, max_wait_seconds=4, overflow="1004",
                       escalations=[])
    cfg["agents"][0]["max_no_answer"] = 2
    eng = Engine(tmp_path / "engine", config=cfg)
    eng.start()
    try:
        with eng.no_tracebacks(), phone(eng, "caller", CALLER) as caller, phone(eng, "ana", ANA_PHONE) as ana, \
                phone(eng, "desk", "1004", auto_answer=True) as desk:
            first = caller.call(eng.uri("6000"))  # nobody logged in: straight to the overflow
            desk.wait_state(0, "CONFIRMED", timeout=8.0)
            caller.hangup(first)
            desk.wait_state(0, "DISCONNECTED")
            eng.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})
            second = caller.call(eng.uri("6000"))
            for _ in range(2):  # Ana rejects two offers in a row: paused for no-answer
                offered = ana.wait_incoming(timeout=8.0)
                ana.reject(offered, 486)
                ana.wait_state(offered, "DISCONNECTED")
                if agent(eng, "2001")["state"] == "paused":
                    break
            paused = wait_agent(eng, "2001", "paused", timeout=5.0)
            assert paused["pause_reason"] == "no-answer"
            desk.wait_state(1, "CONFIRMED", timeout=8.0)  # then the 4 s maximum wait: overflow
            caller.hangup(second)
    finally:
        eng.stop()
    log = [row[0] for row in queue_log(eng)]
    assert log.count("EXITEMPTY") == 1 and log.count("EXITWITHTIMEOUT") == 1 and log.count("RINGNOANSWER") == 2
