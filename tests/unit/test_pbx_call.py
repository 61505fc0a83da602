"""Call's state machine on a real Switchboard, with fake media, virtual time and test-driven phones
(tests/pbx_rig.py): routing, ringing, answer, failure tones, forwarding, hang-up and its CDR,
and the destination registry a new kind plugs into."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.media.tones import tone
from appliance.pbx.call import Call, CallState
from appliance.pbx.channel import BUSY, CANCELLED, ChannelState, Party
from appliance.pbx.destinations import Destinations
from appliance.store.db import Store
from tests.pbx_rig import Line, PbxRig


@pytest.fixture
def rig(store: Store, tmp_path: Path) -> PbxRig:
    r = PbxRig(store, tmp_path)
    r.extension("1001")
    r.extension("1002")
    return r


def test_internal_call_rings_answers_bridges_and_ends_with_an_answered_cdr(rig: PbxRig) -> None:
    call, a = rig.dial("1001", "1002")
    b = rig.phones.ringing("1002")
    assert call.state is CallState.ROUTING and b.dialled and rig.pbx.calls == {call.id: call}
    b.remote_ringing()
    assert call.state is CallState.RINGING and a.state is ChannelState.RINGING  # 180 to the caller
    b.remote_answer()
    assert call.state is CallState.UP and a.is_up and call.b is b
    assert rig.media.bridges[call.bridge_id] == {a.media_leg, b.media_leg}
    cdr_id = call.cdr_id
    assert cdr_id is not None
    rig.clock.advance(30)
    b.remote_hangup()
    assert call.state is CallState.ENDED and a.is_down and call.id not in rig.pbx.calls
    assert call.bridge_id not in rig.media.bridges
    cdr = rig.store.get_cdr(cdr_id)
    assert cdr is not None and cdr.disposition == "ANSWERED" and cdr.hangup_cause == "callee hung up"
    assert (cdr.caller, cdr.callee, cdr.direction) == ("1001", "1002", "internal")


def test_a_busy_callee_gives_the_busy_tone_then_the_cause(rig: PbxRig) -> None:
    rig.extension("1003", dnd=True)
    call, a = rig.dial("1001", "1003")
    assert call.state is CallState.FAILING and a.state is ChannelState.EARLY  # 183: the tone is heard
    assert rig.media.playing[a.media_leg] == tone("FR", "busy")
    cdr_id = call.cdr_id
    rig.clock.advance(1.9)
    assert call.state is CallState.FAILING
    rig.clock.advance(0.2)
    assert call.state is CallState.ENDED and a.ended_with == BUSY
    cdr = rig.store.get_cdr(cdr_id or 0)
    assert cdr is not None and cdr.disposition == "BUSY"


def test_no_answer_forwards_to_the_next_extension(rig: PbxRig) -> None:
    rig.extension("1003", noanswer_seconds=5, forward_noanswer="1002")
    call, a = rig.dial("1001", "1003")
    first = rig.phones.ringing("1003")
    first.remote_ringing()
    assert call.state is CallState.RINGING
    rig.clock.advance(5.1)
    assert first.is_down and first.ended_with == CANCELLED
    second = rig.phones.ringing("1002")
    assert second.dialled and call.state is CallState.ROUTING
    second.remote_ringing()
    second.remote_answer()
    assert call.state is CallState.UP and call.b is second


def test_the_caller_hanging_up_while_it_rings_cancels_the_callee(rig: PbxRig) -> None:
    call, a = rig.dial("1001", "1002")
    b = rig.phones.ringing("1002")
    b.remote_ringing()
    cdr_id = call.cdr_id
    a.remote_hangup()
    assert call.state is CallState.ENDED and b.is_down and b.ended_with == CANCELLED
    assert call.caller_gave_up
    cdr = rig.store.get_cdr(cdr_id or 0)
    assert cdr is not None and cdr.disposition == "CANCELLED"


def test_an_unknown_number_is_refused_with_404_after_the_tone(rig: PbxRig) -> None:
    call, a = rig.dial("1001", "4999")
    assert call.state is CallState.FAILING
    rig.clock.advance(2.1)
    assert call.state is CallState.ENDED and a.ended_with is not None and a.ended_with.code == 404


def test_an_unregistered_extension_is_unavailable(rig: PbxRig) -> None:
    rig.extension("1004", registered=False)
    call, a = rig.dial("1001", "1004")
    rig.clock.advance(2.1)
    assert call.state is CallState.ENDED and a.ended_with is not None and a.ended_with.code == 480


def test_an_illegal_transition_is_an_error(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    b.remote_hangup()
    assert call.state is CallState.ENDED
    with pytest.raises(RuntimeError, match="illegal call transition ended -> failing"):
        call.release_after_tone(a, BUSY, 1.0)


def test_only_a_party_can_be_replaced_or_given_up(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    stranger = Line("outbound", Party("9"), "9", rig.media)
    with pytest.raises(RuntimeError, match="not a party"):
        call.replace_party(stranger, a)
    with pytest.raises(RuntimeError, match="not a party"):
        call.give_up_party(stranger)
    assert call.state is CallState.UP


def test_keys_pass_to_the_other_party_and_hold_plays_music(rig: PbxRig) -> None:
    from appliance.pbx.channel import HoldChanged

    call, a, b = rig.connected("1001", "1002")
    b.key("5")
    assert rig.media.dtmf == [(a.media_leg, "5")]  # from the callee's phone: no feature code held back
    b.post(HoldChanged(b, True))
    assert a.media_leg in rig.media.playing  # the caller hears music on hold (ringback without a file)
    b.post(HoldChanged(b, False))
    assert a.media_leg not in rig.media.playing


@dataclass(frozen=True)
class ToPark:
    """A destination kind that does not exist yet: the issue's worked example."""

    slot: str


def _call_to(rig: PbxRig, dest: object) -> tuple[Call, Line]:
    """A call from 1001 started to a destination already decided (as the dialer starts its calls)."""
    ext = rig.pbx.dialplan.extensions["1001"]
    line = Line("inbound", Party("1001", ext.name), "701", rig.media)
    call = rig.pbx.call_factory.new_call(line, "701", "internal", ext)
    call.start_to(dest)
    return call, line


def test_a_new_destination_kind_is_one_registered_handler(rig: PbxRig) -> None:
    parked: list[tuple[str, str]] = []

    def park(call: Call, dest: ToPark, hops: int) -> None:
        call.answer_here()
        parked.append((call.id, dest.slot))

    rig.pbx.destinations.register(ToPark, park)
    call, a = _call_to(rig, ToPark("701"))
    assert parked == [(call.id, "701")] and a.is_up and call.answered
    assert rig.pbx.calls == {call.id: call}  # made by the factory, listed in the directory


def test_a_kind_without_a_handler_fails_the_call_and_a_kind_has_one_handler(rig: PbxRig) -> None:
    call, a = _call_to(rig, ToPark("701"))
    rig.clock.advance(2.1)
    assert call.state is CallState.ENDED and a.ended_with is not None and a.ended_with.code == 503
    registry = Destinations()
    registry.register(ToPark, lambda call, dest, hops: None)
    with pytest.raises(ValueError, match="already has a handler"):
        registry.register(ToPark, lambda call, dest, hops: None)


def test_the_call_publishes_what_happened_to_it_on_the_bus(rig: PbxRig) -> None:
    from appliance.pbx.events import CallAnswered, CallEnded, CallStarted

    seen: list[object] = []
    for kind in (CallStarted, CallAnswered, CallEnded):
        rig.pbx.events.subscribe(kind, seen.append)
    call, a, b = rig.connected("1001", "1002")
    a.remote_hangup()
    assert seen == [CallStarted(call.id, "1001", "1002", "internal"), CallAnswered(call.id, b.id),
                    CallEnded(call.id, 200, "Normal clearing", True)]
