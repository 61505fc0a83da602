"""Blind (RFC 5589 §6) and attended (RFC 5589 §7, RFC 3891 Replaces) transfer run by the PBX, on a
real Switchboard with fake media, virtual time and test-driven phones (tests/pbx_rig.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.media.tones import tone
from appliance.pbx.call import CallState
from appliance.pbx.channel import BUSY
from appliance.store.db import Store
from tests.pbx_rig import PbxRig


@pytest.fixture
def rig(store: Store, tmp_path: Path) -> PbxRig:
    r = PbxRig(store, tmp_path)
    for number in ("1001", "1002", "1003", "1004"):
        r.extension(number)
    return r


def test_blind_transfer_rings_the_target_and_joins_it_to_the_transferee(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    b.refer("1003")
    c = rig.phones.ringing("1003")
    assert call.transfer is not None and c.dialled
    assert rig.media.bridge_of(a.media_leg) is None  # the transferee waits outside the bridge...
    assert rig.media.playing[a.media_leg] == tone("FR", "ringback")  # ...hearing ringback
    c.remote_ringing()
    assert b.notified == [(180, "Ringing", False)]
    c.remote_answer()
    assert b.notified[-1] == (200, "OK", True) and b.is_down
    assert call.transfer is None and call.state is CallState.UP and (call.a, call.b) == (a, c)
    assert rig.media.bridges[call.bridge_id] == {a.media_leg, c.media_leg}
    assert a.media_leg not in rig.media.playing
    c.remote_hangup()  # the transferred call is the same call: it ends as one
    assert call.state is CallState.ENDED and a.is_down


def test_a_failed_blind_transfer_gives_the_caller_back_to_the_transferor(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    b.refer("1003")
    rig.phones.ringing("1003").remote_hangup(BUSY)
    assert b.notified == [(486, "Busy Here", True)] and not b.is_down
    assert call.transfer is None and call.state is CallState.UP
    assert rig.media.bridges[call.bridge_id] == {a.media_leg, b.media_leg}


def test_a_failed_blind_transfer_without_transferor_releases_the_caller_after_the_tone(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    b.refer("1003")
    b.remote_hangup()  # the transferor does not wait for the outcome
    assert call.state is CallState.UP and not a.is_down
    rig.phones.ringing("1003").remote_hangup(BUSY)
    assert call.state is CallState.FAILING and rig.media.playing[a.media_leg] == tone("FR", "busy")
    rig.clock.advance(2.1)
    assert call.state is CallState.ENDED and a.is_down


def test_a_second_refer_while_one_runs_is_491_and_a_refused_target_is_reported(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    b.refer("1003")
    a.refer("1004")
    assert a.notified == [(491, "Request Pending", True)]
    call2, a2, b2 = rig.connected("1003", "1004")
    b2.refer("4999")  # nothing there: the dialplan refuses it
    assert b2.notified[-1][0] == 404 and call2.state is CallState.UP and call2.transfer is None


def test_attended_transfer_replaces_the_consultation_dialog(rig: PbxRig) -> None:
    call, a, x1 = rig.connected("1001", "1002")  # the caller and the transferor's first line
    consult, x2, z = rig.connected("1002", "1003")  # the transferor consults the target
    x1.refer("1003", replaces=(x2.dialog_key(), None, None))
    assert x1.notified == [(200, "OK", True)] and x1.is_down and x2.is_down
    assert consult.state is CallState.ENDED and not z.is_down
    assert call.state is CallState.UP and (call.a, call.b) == (a, z) and z.owner is call
    assert rig.media.bridges[call.bridge_id] == {a.media_leg, z.media_leg}
    z.remote_hangup()
    assert call.state is CallState.ENDED and a.is_down


def test_attended_transfer_of_someone_elses_dialog_is_refused(rig: PbxRig) -> None:
    call, a, x1 = rig.connected("1001", "1002")
    other, c, d = rig.connected("1003", "1004")  # 1002 is no party to this one
    x1.refer("1004", replaces=(c.dialog_key(), None, None))
    assert x1.notified == [(403, "Forbidden", True)]  # RFC 3891 §6
    assert call.state is CallState.UP and other.state is CallState.UP and not c.is_down
    x1.refer("1004", replaces=("no-such-dialog", None, None))
    assert x1.notified[-1] == (481, "Call/Transaction Does Not Exist", True)


def test_the_control_api_transfers_without_notify(rig: PbxRig) -> None:
    call, a, b = rig.connected("1001", "1002")
    rig.pbx.transfer_channel(a.id, "1003")  # a is sent to 1003; b leaves the call
    c = rig.phones.ringing("1003")
    c.remote_answer()
    assert b.is_down and b.notified == []  # the API is no SIP party: nobody gets a NOTIFY
    assert (call.a, call.b) == (a, c) and rig.media.bridges[call.bridge_id] == {a.media_leg, c.media_leg}


def test_transfers_are_published_on_the_bus(rig: PbxRig) -> None:
    from appliance.pbx.events import CallTransferred

    seen: list[CallTransferred] = []
    rig.pbx.events.subscribe(CallTransferred, seen.append)
    call, a, b = rig.connected("1001", "1002")
    b.refer("1003")
    rig.phones.ringing("1003").remote_answer()
    assert seen == [CallTransferred(call.id, b.id, "1003", attended=False)]
    call2, a2, x1 = rig.connected("1004", "1002")
    consult, x2, z = rig.connected("1002", "1001")
    x1.refer("1001", replaces=(x2.dialog_key(), None, None))
    assert seen[1:] == [CallTransferred(call2.id, x1.id, "1001", attended=True)]
