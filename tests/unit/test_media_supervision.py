"""Supervision in-process with real RTP: listen, whisper, barge, and their edges."""

from __future__ import annotations

import pytest

from appliance.media.protocol import MediaError
from appliance.media.tones import ToneSpec
from tests.unit.test_media_recording import Call, has

QUIET = 0.005  # share of power below which a tone counts as not heard


def _call() -> Call:
    call = Call(("caller", "agent", "sup"))
    call.eng.bridge("br", ["caller", "agent"])
    return call


def heard(call: Call, leg: str):
    return call.wires[leg].audio(20)


def test_listen_supervisor_hears_both_parties_and_nobody_hears_it():
    call = _call()
    call.eng.monitor("sup", ["caller", "agent"], [])
    call.run(40)
    plan = call.eng._plan
    assert plan is not None and not plan.relay and not plan.narrowband  # mixed, not relayed
    sup, caller, agent = heard(call, "sup"), heard(call, "caller"), heard(call, "agent")
    assert has(sup, 440, 8000) > 0.3 and has(sup, 1000, 8000) > 0.3
    assert has(sup, 2000, 8000) < QUIET
    assert has(caller, 1000, 8000) > 0.95 and has(caller, 2000, 8000) < QUIET
    assert has(agent, 440, 8000) > 0.95 and has(agent, 2000, 8000) < QUIET
    assert call.eng.engine_stats()["monitors"] == 1


def test_whisper_reaches_the_agent_only():
    call = _call()
    call.eng.monitor("sup", ["caller", "agent"], ["agent"])
    call.run(40)
    sup, caller, agent = heard(call, "sup"), heard(call, "caller"), heard(call, "agent")
    assert has(agent, 440, 8000) > 0.3 and has(agent, 2000, 8000) > 0.3  # caller + supervisor
    assert has(agent, 1000, 8000) < QUIET  # never itself
    assert has(caller, 1000, 8000) > 0.95 and has(caller, 2000, 8000) < QUIET
    assert has(sup, 440, 8000) > 0.3 and has(sup, 1000, 8000) > 0.3
    assert has(sup, 2000, 8000) < QUIET


def test_barge_is_a_bridge_and_ends_the_monitor():
    call = _call()
    call.eng.monitor("sup", ["caller", "agent"], ["agent"])
    call.run(10)
    call.eng.bridge("br", ["sup"])
    assert "sup" not in call.eng._monitors
    call.run(30)
    caller = heard(call, "caller")
    assert has(caller, 1000, 8000) > 0.3 and has(caller, 2000, 8000) > 0.3
    # back to listening: the monitor takes the supervisor out of the bridge again
    call.eng.monitor("sup", ["caller", "agent"], [])
    assert call.eng.legs["sup"].bridge is None and call.eng.bridges["br"] == {"caller", "agent"}
    call.run(30)
    assert has(heard(call, "caller"), 2000, 8000) < QUIET
    call.eng.unmonitor("sup")
    call.run(10)
    assert not call.wires["sup"].audio(5).any()  # nothing to hear any more
    with pytest.raises(MediaError, match="not monitoring"):
        call.eng.unmonitor("sup")


def test_a_player_replaces_what_the_leg_hears_whisper_included():
    call = _call()
    call.eng.monitor("sup", ["caller", "agent"], ["agent"])
    call.eng.play("agent", ToneSpec("prompt", (3000,)))
    call.run(30)
    agent = heard(call, "agent")
    assert has(agent, 3000, 8000) > 0.95 and has(agent, 2000, 8000) < QUIET


def test_destroyed_legs_leave_the_monitor():
    call = _call()
    call.eng.monitor("sup", ["caller", "agent"], ["agent"])
    call.run(5)
    call.eng.remove_leg("agent")
    call.run(30)
    sup = heard(call, "sup")
    assert has(sup, 440, 8000) > 0.95  # still hears the caller
    call.eng.remove_leg("sup")
    assert call.eng.engine_stats()["monitors"] == 0
    call.run(5)  # and the tick copes


def test_bad_monitor_requests_are_errors():
    call = _call()
    with pytest.raises(MediaError, match="no leg"):
        call.eng.monitor("sup", ["caller", "ghost"], [])
    with pytest.raises(MediaError, match="itself"):
        call.eng.monitor("sup", ["sup", "caller"], [])
    with pytest.raises(MediaError, match="no leg"):
        call.eng.monitor("ghost", ["caller"], [])
    assert call.eng.engine_stats()["monitors"] == 0
