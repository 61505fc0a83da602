"""One logical ACD across two engines on one PostgreSQL site (issue 14, item 4).

The caller reaches one engine and the agent's phone is registered, and the agent logged in, on
the other; the engines share the agents' states and holds, and the queue's waiting callers,
through the store (appliance/store/acd_site.py), so an agent is never offered two calls at once
and a queue's order (priority, then arrival) holds whichever engine a caller reached.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from appliance.store import queue_log
from appliance.store.db import Store
from tests.audio import read_wav, tone_ratio, write_tone_wav
from tests.peers.acd import ANA_PHONE, CALLER, agent, login_by_feature_code, phone, queue_config, wait_agent
from tests.peers.engine import Engine
from tests.peers.polling import wait_until
from tests.peers.sipp import SippProcess, auth_row, run_sipp

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp" / "engine"


def _engines(tmp_path: Path, url: str, config: dict[str, Any], *args: str) -> tuple[Engine, Engine]:
    return (Engine(tmp_path / "one", db=url, config=config, extra_args=["--node", "one", *args]),
            Engine(tmp_path / "two", db=url, config=config, extra_args=["--node", "two", *args]))


def _queue_events(url: str) -> list[queue_log.QueueEvent]:
    with Store(url) as store:
        return [e for e in queue_log.events(store, 0.0, time.time() + 60) if not e.event.startswith("AGENT")]


def test_a_caller_on_engine_1_is_answered_by_an_agent_logged_in_on_engine_2_with_tones_both_ways(
        tmp_path: Path, postgres_url: str) -> None:
    to_agent = write_tone_wav(tmp_path / "caller.wav", 440, 30)
    to_caller = write_tone_wav(tmp_path / "agent.wav", 1000, 30)
    caller_heard, agent_heard = tmp_path / "caller_heard.wav", tmp_path / "agent_heard.wav"
    one, two = _engines(tmp_path, postgres_url, queue_config(wrapup_seconds=1))
    with one.running(), two.running():
        with phone(one, "caller", CALLER) as caller, phone(two, "ana", ANA_PHONE) as ana:
            login_by_feature_code(two, ana, "2001", "1111")  # *61 on engine 2
            assert wait_until(lambda: agent(one, "2001")["state"] == "available", what="engine 1 sees Ana")
            assert agent(one, "2001")["device"] == ANA_PHONE
            call = caller.call(one.uri("6000"), play_wav=to_agent, record_wav=caller_heard)
            caller.wait_state(call, "CONFIRMED")  # engine 1's queue answers
            offered = ana.wait_incoming(timeout=8.0)  # engine 1 rings the phone engine 2 registered
            assert "[support]" in ana.incoming_info(offered)["display"]
            assert agent(two, "2001")["state"] == "ringing"  # engine 2 sees engine 1's offer
            ana.answer(offered, play_wav=to_caller, record_wav=agent_heard)
            ana.wait_state(offered, "CONFIRMED")
            wait_agent(two, "2001", "on-call", timeout=3.0)
            assert agent(two, "2001")["held_by"] == "one"
            caller.wait_rx_audio(call, 2.0)
            ana.wait_rx_audio(offered, 2.0)
            caller.stop_record(call)
            ana.stop_record(offered)
            assert two.api("GET", "/v1/calls")[1] == []  # engine 1 alone carries the call
            caller.hangup(call)
            ana.wait_state(offered, "DISCONNECTED")
            wait_agent(two, "2001", "available", timeout=6.0)  # after the queue's 1 s wrap-up
    rate, heard = read_wav(caller_heard)
    assert tone_ratio(heard[-rate:], rate, 1000) > 0.5
    rate, heard = read_wav(agent_heard)
    assert tone_ratio(heard[-rate:], rate, 440) > 0.5
    log = _queue_events(postgres_url)
    assert [e.event for e in log] == ["ENTER", "OFFER", "CONNECT", "COMPLETE"]
    connect = log[2]
    assert connect.agent == "2001" and connect.position == 1 and connect.wait_s is not None and connect.wait_s < 8.0
    assert log[3].agent == "2001" and log[3].talk_s is not None and log[3].talk_s > 1.5


VIP_FLOW = """
name: vip
version: 1
start: mark
nodes:
  mark: {type: set, variables: {priority: "5"}, next: wait}
  wait: {type: route, target: "queue:support"}
"""


def _queue_nodes(eng: Engine) -> list[str]:
    return [str(c["node"]) for c in eng.api("GET", "/v1/queues")[1][0]["callers"]]


def test_a_priority_caller_on_engine_2_is_served_before_an_earlier_caller_on_engine_1(
        tmp_path: Path, postgres_url: str) -> None:
    cfg = queue_config(escalations=[])
    cfg["inbound_routes"] = [{"did": "7000", "destination": "ivr:vip"}]
    one, two = _engines(tmp_path, postgres_url, cfg)
    for eng in (one, two):
        (eng.data_dir / "flows").mkdir(parents=True, exist_ok=True)
        (eng.data_dir / "flows" / "vip.yaml").write_text(VIP_FLOW)
    with one.running(), two.running():
        with phone(one, "early", CALLER) as early, phone(two, "vip", "1004") as vip, \
                phone(one, "ana", ANA_PHONE) as ana:
            first = early.call(one.uri("6000"))  # nobody is logged in: the caller waits on engine 1
            early.wait_state(first, "CONFIRMED")
            assert wait_until(lambda: _queue_nodes(two) == ["one"], what="engine 2 sees engine 1's caller")
            second = vip.call(two.uri("7000"))  # later, through the flow that sets priority 5, on engine 2
            vip.wait_state(second, "CONFIRMED")
            assert wait_until(lambda: _queue_nodes(one) == ["two", "one"], what="the site's order")
            queue = one.api("GET", "/v1/queues")[1][0]
            assert [c["priority"] for c in queue["callers"]] == [5, 0] and queue["waiting"] == 2
            assert one.api("POST", "/v1/agents/2001/login", {"device": ANA_PHONE})[0] == 200  # on engine 1
            offered = ana.wait_incoming(timeout=8.0)
            assert "1004" in ana.incoming_info(offered)["remote_uri"]  # engine 2's caller first
            ana.answer(offered)
            ana.wait_state(offered, "CONFIRMED")
            assert wait_until(lambda: _queue_nodes(one) == ["one"], what="the early caller still waits")
            ana.hangup(offered)
            vip.wait_state(second, "DISCONNECTED")
            offered2 = wait_until(lambda: [e.data["call"] for e in ana.events("incoming")][1:], timeout=10.0,
                                  what="the second offer")[0]
            assert "1001" in ana.incoming_info(offered2)["remote_uri"]
            ana.answer(offered2)
            ana.wait_state(offered2, "CONFIRMED")
            ana.hangup(offered2)
            early.wait_state(first, "DISCONNECTED")
    log = _queue_events(postgres_url)
    assert [(e.event, e.caller) for e in log if e.event in ("ENTER", "CONNECT")] == [
        ("ENTER", CALLER), ("ENTER", "1004"), ("CONNECT", "1004"), ("CONNECT", CALLER)]


SIPP_DIGEST = ("--digest-algorithms", "MD5,SHA-256")  # SIPp speaks MD5 digest only (test_engine_sipp.py)
AGENT_PHONES = {"2001": "1002", "2002": "1003", "2003": "1004", "2004": "1005"}


def _race_config() -> dict[str, Any]:
    cfg = queue_config(skills=[], escalations=[], wrapup_seconds=0, strategy="longest-idle")
    cfg["agents"] = [{"agent_id": a, "name": f"Agent {a}", "pin": "1111"} for a in AGENT_PHONES]
    return cfg


def _offers(log_text: str) -> list[tuple[str, int, int]]:
    """(call id, offered at, free at) of each call an agent's SIPp took (its -trace_logs)."""
    starts: dict[str, int] = {}
    spans: list[tuple[str, int, int]] = []
    for what, tick, call_id in re.findall(r"(offered|free) (\d+) (\S+)", log_text):
        if what == "offered":
            starts[call_id] = int(tick)
        else:
            spans.append((call_id, starts.pop(call_id), int(tick)))
    return spans + [(c, t, 1 << 62) for c, t in starts.items()]  # an offer never ended counts as open


def test_two_engines_40_callers_4_agents_no_agent_is_ever_offered_two_calls(tmp_path: Path, postgres_url: str) -> None:
    """SIPp agents (two registered on each engine, logged in there) answer and hang up after 0.5 s,
    with no wrap-up; 20 SIPp callers reach each engine at once. Each agent's own log shows its
    offers one after another, never two at once, and every caller is answered."""
    one, two = _engines(tmp_path, postgres_url, _race_config(), *SIPP_DIGEST)
    with one.running(), two.running(), ExitStack() as stack:
        agents: dict[str, SippProcess] = {}
        for i, (agent_id, ext) in enumerate(AGENT_PHONES.items()):
            eng = (one, two)[i % 2]
            uas = SippProcess(SCENARIOS / "uas_agent.xml", register=(ext, eng.secret(ext), f"127.0.0.1:{eng.sip_port}"),
                              extra_args=["-trace_logs", "-log_file", str(tmp_path / f"agent{agent_id}.log")],
                              workdir=tmp_path / f"agent{agent_id}")
            agents[agent_id] = stack.enter_context(uas)
            assert eng.api("POST", f"/v1/agents/{agent_id}/login", {"device": ext})[0] == 200
        for eng in (one, two):
            assert wait_until(lambda eng=eng: all(a["state"] == "available" for a in eng.api("GET", "/v1/agents")[1]),
                              what="the four agents free on both engines")

        def callers(eng: Engine, name: str) -> Any:
            return run_sipp(SCENARIOS / "uac_queue_caller.xml", f"127.0.0.1:{eng.sip_port}", service="6000",
                            inject=[auth_row(CALLER, eng.secret(CALLER))], calls=20, rate=20,
                            extra_args=["-l", "20"], timeout=150, workdir=tmp_path / name)

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(callers, (one, two), ("callers1", "callers2")))
        for res in results:
            assert res.returncode == 0 and res.successful == 20, res.explain()
        assert wait_until(lambda: all(a["state"] == "available" for a in one.api("GET", "/v1/agents")[1]),
                          what="every agent free again")
    spans = {a: _offers((tmp_path / f"agent{a}.log").read_text()) for a in AGENT_PHONES}
    for agent_id, calls in spans.items():
        calls.sort(key=lambda c: c[1])
        overlaps = [(a, b) for a, b in zip(calls, calls[1:]) if b[1] < a[2]]
        assert not overlaps, f"agent {agent_id} was offered two calls at once: {overlaps}"
    assert sum(len(c) for c in spans.values()) == 40
    log = _queue_events(postgres_url)
    assert [sum(1 for e in log if e.event == kind) for kind in ("ENTER", "CONNECT", "COMPLETE")] == [40, 40, 40]
    assert {e.agent for e in log if e.event == "CONNECT"} <= set(AGENT_PHONES)
