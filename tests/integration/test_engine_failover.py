"""Engine death on a shared site (two engines on one PostgreSQL, pjsua2 phones, kill -9 of one),
and the database's own restart under calls.

The survivor's node watch (appliance/cluster/nodes.py) sees the dead engine's heartbeat stop and,
within a few seconds, closes its CDRs as INTERRUPTED and ends its queue callers in the queue log;
the survivor's own calls go on with their audio, and the dead engine's phones are still called
through the survivor (their bindings are the site's, in the shared store).
"""
from __future__ import annotations

import time
from pathlib import Path

from appliance.store import nodes as node_rows
from appliance.store import queue_log
from appliance.store.db import Store
from appliance.store.models import Cdr
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.acd import queue_config
from tests.peers.engine import Engine
from tests.peers.pjsua import registered_phone as _phone
from tests.peers.polling import wait_until
from tests.peers.postgres import PostgresServer

# The watch judges a peer dead after 3 s without a beat, and looks once a second: the CDR is
# closed within about 4 s of the kill; 6 s leaves room for a loaded 2-core box.
TAKEOVER_BOUND_S = 6.0


def _cdr(store: Store, caller: str) -> Cdr:
    [cdr] = [c for c in store.cdrs() if c.caller == caller]
    return cdr


def _site(tmp_path: Path, url: str, config: dict[str, object] | None = None) -> tuple[Engine, Engine]:
    return (Engine(tmp_path / "one", config=config, db=url, extra_args=["--node", "one"]),
            Engine(tmp_path / "two", config=config, db=url, extra_args=["--node", "two"]))


def test_kill9_mid_call_the_survivor_closes_its_cdr_and_keeps_its_own_call_and_the_phones(
        tmp_path: Path, postgres_url: str) -> None:
    tone_c = write_tone_wav(tmp_path / "c.wav", 1000, 30.0, rate=8000, amplitude=8000)
    tone_e = write_tone_wav(tmp_path / "e.wav", 2000, 30.0, rate=8000, amplitude=8000)
    heard_d, heard_a = tmp_path / "heard_d.wav", tmp_path / "heard_a.wav"
    one, two = _site(tmp_path, postgres_url)
    one.start()
    try:
        with two.running(), Store(postgres_url) as store, \
                _phone(one, "a", "1001") as a, _phone(one, "b", "1002", auto_answer=True), \
                _phone(two, "c", "1003") as c, _phone(two, "d", "1004") as d, _phone(two, "e", "1005") as e:
            doomed = a.call(f"sip:1002@127.0.0.1:{one.sip_port}")  # carried by engine one
            a.wait_state(doomed, "CONFIRMED")
            ours = c.call(f"sip:1004@127.0.0.1:{two.sip_port}", play_wav=tone_c)  # carried by engine two
            cd = d.wait_incoming()
            d.answer(cd, record_wav=heard_d)
            c.wait_state(ours, "CONFIRMED")
            a.wait_rx_audio(doomed, 0.5)
            d.wait_rx_audio(cd, 0.5)
            wait_until(lambda: _cdr(store, "1001").answer is not None, what="engine one's call answered")
            killed_at = time.time()
            one.kill9()
            closed = wait_until(lambda: _cdr(store, "1001").end is not None and _cdr(store, "1001"),
                                timeout=TAKEOVER_BOUND_S + 4.0, what="engine one's CDR closed by engine two")
            took = time.time() - killed_at
            assert closed.disposition == "INTERRUPTED", closed
            assert closed.hangup_cause == "interrupted: node one died; ended by node two"
            assert closed.end is not None and closed.end - killed_at < TAKEOVER_BOUND_S, (closed.end - killed_at, took)
            _, status = two.api("GET", "/v1/status")
            assert [t["node"] for t in status["site"]["taken_over"]] == ["one"]
            # Engine two's own call is untouched, and its audio still flows.
            assert _cdr(store, "1003").end is None
            d.wait_rx_audio(cd, 2.0)
            c.wait_rx_audio(ours, 1.0)
            # The dead engine's phone is still called, through the survivor.
            to_a = e.call(f"sip:1001@127.0.0.1:{two.sip_port}", play_wav=tone_e)
            ea = a.wait_incoming(timeout=10.0)
            a.answer(ea, record_wav=heard_a)
            e.wait_state(to_a, "CONFIRMED")
            a.wait_rx_audio(ea, 1.5)
            a.stop_record(ea)
            d.stop_record(cd)
            e.hangup(to_a)
            a.wait_state(ea, "DISCONNECTED")
            c.hangup(ours)
            d.wait_state(cd, "DISCONNECTED")
            wait_until(lambda: _cdr(store, "1003").disposition == "ANSWERED", what="engine two's call closed")
            assert _cdr(store, "1005").callee == "1001"
    finally:
        one.stop()
    rate, got = read_wav(heard_d)
    assert tone_ratio(got[-rate:], rate, 1000) > 0.7  # the last second, after the kill
    rate, got = read_wav(heard_a)
    assert tone_ratio(got[-rate:], rate, 2000) > 0.7


def test_kill9_mid_queue_the_survivor_ends_the_waiting_caller_in_the_queue_log(
        tmp_path: Path, postgres_url: str) -> None:
    one, two = _site(tmp_path, postgres_url, queue_config())
    one.start()
    try:
        with two.running(), Store(postgres_url) as store, \
                _phone(one, "a", "1001") as a, _phone(two, "c", "1003") as c:
            waiting_one = a.call(f"sip:6000@127.0.0.1:{one.sip_port}")  # nobody logged in: they wait
            waiting_two = c.call(f"sip:6000@127.0.0.1:{two.sip_port}")
            a.wait_state(waiting_one, "CONFIRMED")
            c.wait_state(waiting_two, "CONFIRMED")

            def entered() -> list[queue_log.QueueEvent]:
                return [ev for ev in queue_log.events(store, 0, 2e9) if ev.event == "ENTER"]
            wait_until(lambda: len(entered()) == 2, what="both callers in the queue")
            killed_at = time.time()
            one.kill9()

            def ended() -> list[queue_log.QueueEvent]:
                return [ev for ev in queue_log.events(store, 0, 2e9) if ev.event == "ABANDON"]
            [abandon] = wait_until(ended, timeout=TAKEOVER_BOUND_S + 4.0, what="engine one's caller ended")
            assert abandon.caller == "1001" and abandon.queue == "support"
            assert abandon.data == "interrupted: node one died; ended by node two"
            assert abandon.at - killed_at < TAKEOVER_BOUND_S
            enter = next(ev for ev in entered() if ev.caller == "1001")
            assert abandon.call_id == enter.call_id and abandon.wait_s == abandon.at - enter.at
            assert _cdr(store, "1001").disposition == "INTERRUPTED"
            # Engine two's caller still waits, hearing the queue's music.
            c.wait_rx_audio(waiting_two, 1.0)
            assert queue_log.open_entries(store, "two", 0) != []
            assert _cdr(store, "1003").end is None
            c.hangup(waiting_two)
            wait_until(lambda: len(ended()) == 2, what="engine two's caller abandoning")
            assert [ev.caller for ev in ended()] == ["1001", "1003"]
    finally:
        one.stop()


def test_a_postgresql_restart_during_calls_keeps_the_audio_and_loses_no_cdr_or_queue_event(
        tmp_path: Path) -> None:
    """Item 1 with real phones: the database goes away under a call and a queue caller, both
    hang up while it is away, and their CDRs and queue-log rows arrive, in order, when it returns."""
    server = PostgresServer()  # its own server: this test stops it
    server.start()
    try:
        url = server.new_database()
        tone_a = write_tone_wav(tmp_path / "a.wav", 1000, 30.0, rate=8000, amplitude=8000)
        heard_b = tmp_path / "heard_b.wav"
        eng = Engine(tmp_path / "engine", config=queue_config(), db=url, extra_args=["--node", "one"])
        with eng.running(), _phone(eng, "a", "1001") as a, _phone(eng, "b", "1002") as b, \
                _phone(eng, "c", "1003") as c:
            ca = a.call(f"sip:1002@127.0.0.1:{eng.sip_port}", play_wav=tone_a)
            cb = b.wait_incoming()
            b.answer(cb, record_wav=heard_b)
            a.wait_state(ca, "CONFIRMED")
            cq = c.call(f"sip:6000@127.0.0.1:{eng.sip_port}")
            c.wait_state(cq, "CONFIRMED")
            with Store(url) as store:
                wait_until(lambda: [e.event for e in queue_log.events(store, 0, 2e9)] == ["ENTER"],
                           what="the caller in the queue")
                wait_until(lambda: _cdr(store, "1001").answer is not None, what="the call answered")
            server.halt()
            b.wait_rx_audio(cb, 2.0)  # the call goes on with the database away
            c.wait_rx_audio(cq, 1.0)  # and the queue's music too
            b.stop_record(cb)
            a.hangup(ca)
            b.wait_state(cb, "DISCONNECTED")
            c.hangup(cq)

            def storage() -> dict[str, object]:
                status, body = eng.api("GET", "/v1/status")
                assert status == 200, body
                return dict(body["storage"])
            down = wait_until(lambda: (s := storage())["pending"] >= 3 and s, what="the hang-ups deferred")
            assert down["fault"] == "database unavailable"
            server.start()
            up = wait_until(lambda: (s := storage())["pending"] == 0 and s, timeout=20.0,
                            what="the deferred writes flushed")
            assert up["dropped"] == {}
            with Store(url) as store:
                assert (_cdr(store, "1001").disposition, _cdr(store, "1003").end is not None) == ("ANSWERED", True)
                assert _cdr(store, "1001").billsec > 2.0  # type: ignore[operator]
                log = queue_log.events(store, 0, 2e9)
                assert [(e.event, e.caller) for e in log] == [("ENTER", "1003"), ("ABANDON", "1003")]
                assert not log[1].data  # ended by its own engine, not as interrupted
                # The node's watch judged nobody while its own beat failed, and is on the site again.
                wait_until(lambda: eng.api("GET", "/v1/status")[1]["site"]["beat_failures"] > 0,
                           what="failed beats counted")
                assert [n.taken_over_by for n in node_rows.all_nodes(store)] == [None]
    finally:
        server.stop()
    rate, got = read_wav(heard_b)
    assert tone_ratio(got[-rate:], rate, 1000) > 0.7  # the last second, with the database away
