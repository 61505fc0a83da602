"""Two-box HA: box A dies, box B takes the virtual IP, promotes its PostgreSQL and serves new calls.

Two network namespaces on one bridge stand in for the two boxes (tests/peers/netns.py); each runs
the real keepalived, PostgreSQL and engine with the files appliance/cluster/ha.py writes for it,
and the engine is started by keepalived's notify script, as on the image. The phones (pjsua2) are
in the test's own namespace, on the bridge, and register to the virtual IP.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from ipaddress import IPv4Interface
from pathlib import Path

import pytest

from appliance.cluster import ha
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.replication import standby_caught_up
from tests.audio import write_tone_wav
from tests.peers.acd import ANA_PHONE, BOB_PHONE, CALLER, queue_config
from tests.peers.ha import SIP_PORT, HaBox
from tests.peers.netns import Lan
from tests.peers.pjsua import PjPhone
from tests.peers.polling import wait_until

CALLBACK_1, CALLBACK_2, DESK = "1004", "1005", "1006"


class Pair:
    """The LAN, box A (primary, MASTER) and box B (standby, BACKUP), torn down in every case."""

    def __init__(self, tmp: Path) -> None:
        self.lan = Lan()
        self.boxes: list[HaBox] = []
        self.tmp = tmp

    def build(self) -> tuple[HaBox, HaBox]:
        lan = self.lan
        self.pair = ha.HaPair(a=lan.host(11), b=lan.host(12), vip=IPv4Interface(f"{lan.host(10)}/24"),
                              interface="eth0", vrid=51)
        secrets = ha.HaSecrets.new()
        # No escalation: Bob's skill never reaches the queue, so callbacks wait while Ana is paused.
        config = queue_config(escalations=[])
        a = HaBox(self.pair, "a", lan.add_box("a", self.pair.a), self.tmp / "a", secrets, config)
        b = HaBox(self.pair, "b", lan.add_box("b", self.pair.b), self.tmp / "b", secrets, config)
        self.boxes = [a, b]
        a.start_primary()
        a.engine.import_config()  # the site's configuration, into A's primary (and so into B's standby)
        b.start_standby()
        a.start_keepalived()
        wait_until(a.holds_vip, timeout=20.0, what="box A holding the virtual IP")
        a.engine.attach()
        b.start_keepalived()
        wait_until(lambda: _last_state(b) == "BACKUP", timeout=20.0, what="box B in BACKUP")
        return a, b

    def close(self) -> str:
        logs = "\n".join(box.logs() for box in self.boxes)
        self.lan.close()
        for box in self.boxes:
            box.postgres.stop()
        return logs


def _last_state(box: HaBox) -> str:
    """The VRRP state keepalived last told the box's notify script."""
    states = [line.rsplit("VRRP state ", 1)[1] for line in _read(box.notify_log).splitlines() if "VRRP state " in line]
    return states[-1] if states else ""


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pair]:
    p = Pair(tmp_path)
    try:
        yield p
    finally:
        logs = p.close()
        failed = any(getattr(getattr(request.node, f"rep_{w}", None), "failed", False) for w in ("setup", "call"))
        if failed:
            print(logs)


def _phone(pair: Pair, box: HaBox, name: str, number: str) -> PjPhone:
    phone = PjPhone(name, bind_ip=str(pair.lan.gateway)).start()
    phone.register(number, box.engine.secret(number), str(pair.pair.vip.ip), SIP_PORT)
    return phone


def _waiting(box: HaBox) -> list[tuple[str, int, bool, float]]:
    """(caller, position, is a callback, wait so far) of each caller waiting in the queue, in order."""
    queue = box.engine.api("GET", "/v1/queues")[1][0]
    return [(w["caller"], w["position"], w["callback"], w["wait"]) for w in queue["callers"]]


def _agents(box: HaBox) -> dict[str, tuple[str, str | None, str | None]]:
    """agent -> (state, pause reason, device), as the box's engine has them."""
    agents = box.engine.api("GET", "/v1/agents")[1]
    return {a["agent"]: (a["state"], a.get("pause_reason"), a.get("device")) for a in agents}


@pytest.mark.parametrize("death", ["kill -9", "link down"])
def test_box_b_takes_the_vip_promotes_and_serves_new_calls_with_nothing_lost(
        pair: Pair, tmp_path: Path, death: str) -> None:
    a, b = pair.build()
    assert not b.holds_vip() and b.in_recovery() and b.engine.running_pid() is None
    vip = str(pair.pair.vip.ip)
    tone_1 = write_tone_wav(tmp_path / "t1.wav", 1000, 20.0, rate=8000, amplitude=8000)
    tone_2 = write_tone_wav(tmp_path / "t2.wav", 2000, 20.0, rate=8000, amplitude=8000)
    phones: list[PjPhone] = []
    try:
        caller, ana, bob, cb1, cb2, desk = (
            _phone(pair, a, name, number) for name, number in
            (("caller", CALLER), ("ana", ANA_PHONE), ("bob", BOB_PHONE), ("cb1", CALLBACK_1),
             ("cb2", CALLBACK_2), ("desk", DESK)))
        phones += [caller, ana, bob, cb1, cb2, desk]
        assert a.engine.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200
        assert a.engine.api("POST", "/v1/agents/2002/login", {"device": BOB_PHONE})[0] == 200

        # A queue call answered by Ana: a CDR and queue-log rows on A.
        call = caller.call(f"sip:6000@{vip}:{SIP_PORT}", play_wav=tone_1)
        offered = ana.wait_incoming(timeout=10.0)
        ana.answer(offered, play_wav=tone_2)
        caller.wait_state(call, "CONFIRMED")
        caller.wait_rx_audio(call, 1.0)
        ana.wait_rx_audio(offered, 1.0)
        caller.hangup(call)
        ana.wait_state(offered, "DISCONNECTED")

        # Ana goes to lunch; two callers ask for a callback, in this order.
        wait_until(lambda: _agents(a)["2001"][0] == "available", timeout=10.0, what="Ana out of wrap-up")
        assert a.engine.api("POST", "/v1/agents/2001/pause", {"reason": "2"})[0] == 200
        for phone in (cb1, cb2):
            c = phone.call(f"sip:6000@{vip}:{SIP_PORT}")
            phone.wait_state(c, "CONFIRMED")
            phone.dial_dtmf(c, "1")
            phone.wait_state(c, "DISCONNECTED", timeout=20.0)
        waiting_before = _waiting(a)
        assert [w[:3] for w in waiting_before] == [(CALLBACK_1, 1, True), (CALLBACK_2, 2, True)]
        agents_before = _agents(a)
        assert agents_before["2001"] == ("paused", "lunch", ANA_PHONE)
        assert agents_before["2002"][::2] == ("available", BOB_PHONE)
        # A call that is up when A dies: Bob's phone talking to the first callback's.
        held = bob.call(f"sip:{CALLBACK_1}@{vip}:{SIP_PORT}", play_wav=tone_1)
        cb1.answer(cb1.wait_incoming(timeout=10.0), play_wav=tone_2)
        bob.wait_state(held, "CONFIRMED")
        bob.wait_rx_audio(held, 1.0)
        registrations_before = sorted(r["aor"] for r in a.engine.api("GET", "/v1/registrations")[1])
        assert len(registrations_before) == 6
        with a.ns.entered():
            wait_until(lambda: standby_caught_up(a.superuser_url(), pair.pair.application_name("b")),
                       timeout=10.0, what="B's standby replaying all of A's WAL")
            with Store(a.superuser_url()) as store:
                cdrs_before = store.cdrs()[::-1]  # oldest first
                log_before = _queue_log(store)
        assert (CALLER, "6000", "ANSWERED") in [(c.caller, c.callee, c.disposition) for c in cdrs_before]
        assert [e[4:7] for e in log_before if e[4] in ("CONNECT", "CALLBACK_REQUESTED")] == [
            ("CONNECT", "2001", 1), ("CALLBACK_REQUESTED", "", 1), ("CALLBACK_REQUESTED", "", 2)]

        # Box A dies at once (keepalived, PostgreSQL, engine and media), or loses its cable: then its
        # keepalived goes FAULT and its notify script stops its engine.
        killed = time.monotonic()
        if death == "kill -9":
            a.kill()
        else:
            a.unplug()
        wait_until(b.holds_vip, timeout=30.0, what="box B holding the virtual IP")
        vip_moved = time.monotonic()
        wait_until(lambda: not b.in_recovery(), timeout=30.0, what="B's PostgreSQL promoted")
        promoted = time.monotonic()
        b.engine.attach(timeout=30.0)
        engine_up = time.monotonic()

        # A new call through the virtual IP, to a phone that registered on A, with tones both ways.
        new = caller.call(f"sip:{DESK}@{vip}:{SIP_PORT}", play_wav=tone_1)
        ringing = desk.wait_incoming(timeout=10.0)
        desk.answer(ringing, play_wav=tone_2)
        caller.wait_state(new, "CONFIRMED")
        caller.wait_rx_audio(new, 1.0)
        desk.wait_rx_audio(ringing, 1.0)
        completed = time.monotonic()
        caller.hangup(new)
        desk.wait_state(ringing, "DISCONNECTED")
        print(f"\nHA failover: VIP on B after {vip_moved - killed:.1f} s, PostgreSQL promoted after "
              f"{promoted - killed:.1f} s, engine up after {engine_up - killed:.1f} s, first new call "
              f"completed after {completed - killed:.1f} s")
        assert completed - killed < 30.0

        # What A knew, B knows: agents, the callbacks in their places, CDRs and the queue log.
        assert _agents(b) == agents_before
        # The callbacks keep their places and their arrival times: each has waited longer, not anew.
        waiting_after = _waiting(b)
        assert [w[:3] for w in waiting_after] == [(CALLBACK_1, 1, True), (CALLBACK_2, 2, True)]
        assert all(after[3] >= before[3] + (completed - killed) - 1.0
                   for before, after in zip(waiting_before, waiting_after))
        # ...and are served in that order by B: Ana back from lunch is offered the first one.
        assert b.engine.api("POST", "/v1/agents/2001/unpause")[0] == 200
        offer = ana.wait_incoming(timeout=10.0)
        assert "[Callback]" in ana.incoming_info(offer)["display"]
        ana.answer(offer, play_wav=tone_2)
        back = cb1.wait_incoming(timeout=10.0)
        cb1.answer(back)
        cb1.wait_state(back, "CONFIRMED")
        cb1.wait_rx_audio(back, 1.0)
        cb1.hangup(back)
        ana.wait_state(offer, "DISCONNECTED")
        assert [w[:3] for w in _waiting(b)] == [(CALLBACK_2, 1, True)]
        assert b.engine.api("GET", "/v1/status")[1]["node"] == "b"
        if death == "link down":
            wait_until(lambda: a.engine.running_pid() is None, timeout=10.0, what="A's engine stopped on FAULT")
            assert not a.holds_vip()
        assert sorted(r["aor"] for r in b.engine.api("GET", "/v1/registrations")[1]) == registrations_before
        with b.ns.entered(), Store(b.superuser_url()) as store:
            cdrs_after = store.cdrs()[::-1]
            log_after = _queue_log(store)
        # Every row A had committed, unchanged (ids, times, dispositions), then the new call's; the
        # call that was up when A died is closed as INTERRUPTED by B's engine.
        open_before = [c for c in cdrs_before if c.disposition is None]
        assert [(c.caller, c.callee) for c in open_before] == [(BOB_PHONE, CALLBACK_1)]
        assert [c for c in cdrs_after[:len(cdrs_before)] if c.id != open_before[0].id] == [
            c for c in cdrs_before if c.id != open_before[0].id]
        # B's node watch ends A's calls once it has seen A's heartbeat stand still for its bound
        # (appliance/cluster/nodes.py: 3 s on B's own clock, so B may have served calls before that).
        def interrupted() -> bool:
            with b.ns.entered(), Store(b.superuser_url()) as store:
                return any(c.id == open_before[0].id and c.disposition == "INTERRUPTED"
                           for c in store.cdrs())
        wait_until(interrupted, timeout=10.0, what="A's open call closed INTERRUPTED by B")
        assert [(c.caller, c.callee, c.disposition) for c in cdrs_after[len(cdrs_before):]] == [
            (CALLER, DESK, "ANSWERED"), (ANA_PHONE, CALLBACK_1, "ANSWERED")]  # the call through B, the callback
        assert log_after[:len(log_before)] == log_before
        assert [e[4] for e in log_after[len(log_before):] if e[4].startswith("CALLBACK")] == ["CALLBACK_PLACED"]

        # A comes back as B's standby (its old database copied again from B), then B dies in turn.
        a.rejoin()
        wait_until(lambda: _last_state(a) == "BACKUP" and a.in_recovery(), timeout=30.0,
                   what="box A back in BACKUP as a standby")
        with b.ns.entered():
            wait_until(lambda: standby_caught_up(b.superuser_url(), pair.pair.application_name("a")),
                       timeout=20.0, what="A's standby replaying all of B's WAL")
            with Store(b.superuser_url()) as store:
                cdrs_on_b = store.cdrs()[::-1]
        assert not a.holds_vip() and a.engine.running_pid() is None
        killed = time.monotonic()
        b.kill()
        wait_until(a.holds_vip, timeout=30.0, what="box A holding the virtual IP again")
        wait_until(lambda: not a.in_recovery(), timeout=30.0, what="A's PostgreSQL promoted")
        a.engine.attach(timeout=30.0)
        again = caller.call(f"sip:{DESK}@{vip}:{SIP_PORT}", play_wav=tone_1)
        ringing = desk.wait_incoming(timeout=10.0)
        desk.answer(ringing, play_wav=tone_2)
        caller.wait_state(again, "CONFIRMED")
        caller.wait_rx_audio(again, 1.0)
        print(f"HA failback: first new call completed on A {time.monotonic() - killed:.1f} s after B's kill")
        caller.hangup(again)
        desk.wait_state(ringing, "DISCONNECTED")
        assert [w[:3] for w in _waiting(a)] == [(CALLBACK_2, 1, True)]
        with a.ns.entered(), Store(a.superuser_url()) as store:
            cdrs_back = store.cdrs()[::-1]
        assert cdrs_back[:len(cdrs_on_b)] == cdrs_on_b
        assert [(c.caller, c.callee, c.disposition) for c in cdrs_back[len(cdrs_on_b):]] == [
            (CALLER, DESK, "ANSWERED")]
    finally:
        for phone in phones:
            phone.close()


def _queue_log(store: Store) -> list[tuple[object, ...]]:
    """Every queue-log row, oldest first: (at, call, queue, caller, event, agent, position, wait)."""
    return [(e.at, e.call_id, e.queue, e.caller, e.event, e.agent, e.position, e.wait_s)
            for e in queue_log.events(store, 0.0, time.time() + 3600)]
