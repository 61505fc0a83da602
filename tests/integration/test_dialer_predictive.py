"""A predictive campaign against simulated answer rates: 5 auto-answering pjsua2 agents in the
campaign's queue, a SIPp "carrier" behind its trunk taking every call (a person answers 35 % of
them, a machine 10 %, 25 % ring out, 30 % are busy: tests/sipp/uas_dialer_carrier.xml), and a
store seeded with 200 past attempts at the same rates so the pacer starts measured, not cold.

It must really over-dial (more calls in flight than free agents), connect people to agents, never
give an agent a machine, keep the campaign's abandon rate (FTC 16 CFR 310.4(b)(4)(i): abandoned /
answered by a person, over the window, the past rows included) within its 3 % cap, and every
abandoned call must have been given the recorded message (310.4(b)(4)(iii)).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.store import dialer as dstore
from appliance.store.db import Store
from tests.integration.test_dialer import agents
from tests.peers.acd import phone
from tests.peers.dialer import AnswerRates, db_rows, dialer_config, seed_campaign, seed_history, sipp_carrier, wait_for
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone

RATES = AnswerRates(human=0.35, machine=0.10, ring=0.25)
LEADS = 180
HISTORY = 400
CAMPAIGN_S = 60.0
RING_S = 8
CAP = 0.03
MIN_CONNECTED = 8


def numbers(count: int) -> list[str]:
    """French mobile numbers +33 6 12 30 00 00.. (E.164), one per lead."""
    return [f"+3361230{i:04d}" for i in range(count)]


def pace_rows(eng: Engine) -> list[dict[str, Any]]:
    """The audited pacing decisions: reason and the figures of its detail."""
    out = []
    for reason, detail in db_rows(eng, "SELECT reason, detail FROM dialer_audit WHERE decision = 'pace' ORDER BY id"):
        figures: dict[str, Any] = {k: float(v) for k, v in (kv.split("=") for kv in detail.split() if "=" in kv)}
        figures["reason"] = reason
        out.append(figures)
    return out


@contextlib.contextmanager
def predictive_campaign(tmp_path: Path, rates: AnswerRates = RATES,
                        **queue: Any) -> Iterator[tuple[Engine, list[PjPhone], dict[str, int]]]:
    """The carrier, the engine with campaign `promo` (predictive, 3 % cap, LEADS leads, always open),
    its past attempts, and the 5 agents logged in; the campaign is paused and its calls drained
    before the agents go. Yields (engine, agent phones, seeded outcome counts)."""
    with sipp_carrier(tmp_path / "carrier", rates) as uas:
        eng = Engine(tmp_path / "engine", config=dialer_config(uas.port, agents=5, **queue))
        seed_campaign(eng, numbers(LEADS), settings={"dialer.ring_seconds": str(RING_S)}, mode="predictive",
                      abandon_cap=CAP)
        seeded = seed_history(eng, "promo", HISTORY, rates, hours=8.0, ring_timeout_s=RING_S)
        with eng.running(), agents(eng, tmp_path, 5) as phones:
            yield eng, phones, seeded
            assert eng.api("POST", "/v1/campaigns/promo/pause")[0] == 200
            # Paused: no new calls; the live ones end (a ring-out after 8 s, a talk after 7 s, or the
            # agents end the calls of callees who hold).
            def drained() -> bool:
                for p in phones:
                    for call in live_calls(p) if rates.hold else []:
                        p.hangup(call)
                return bool(eng.api("GET", "/v1/campaigns")[1][0]["calls"] == [])

            wait_for(drained, 25.0, "every call ended")


def test_predictive_over_dials_connects_people_and_stays_under_the_abandon_cap(tmp_path: Path) -> None:
    started = time.time()
    with predictive_campaign(tmp_path) as (eng, phones, seeded):
        deadline = time.monotonic() + CAMPAIGN_S
        decisions: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            status, campaigns = eng.api("GET", "/v1/campaigns")
            assert status == 200, campaigns
            if campaigns[0]["last_decision"]:
                decisions.append(campaigns[0]["last_decision"])
            final = campaigns[0]
            time.sleep(0.5)
    offered = sum(len(p.events("incoming")) for p in phones)
    live = db_rows(eng, "SELECT number, outcome, amd, answered_at, connected_at, agent FROM dial_attempts"
                        " WHERE placed_at >= ? ORDER BY id", (started,))
    abandons = db_rows(eng, "SELECT reason, number FROM dialer_audit WHERE decision = 'abandoned'")
    pace = [p for p in pace_rows(eng) if p["reason"].startswith("predictive")]
    store = Store(eng.data_dir / "plateau.db")
    try:
        answered_window, abandoned_window = dstore.abandon_counts(store, "promo", time.time() - 720 * 3600.0)
    finally:
        store.close()

    outcomes = [r[1] for r in live]
    count = {o: outcomes.count(o) for o in sorted(set(outcomes))}
    answered = [r for r in live if r[3] is not None]
    people = [r for r in answered if r[1] != "machine"]
    connected = [r for r in live if r[4] is not None]
    abandoned = [r for r in live if r[1] == "abandoned"]
    # After each decision: calls in flight (ringing, answered and waiting, just placed) per free agent.
    over = [(p["ringing"] + p["waiting"] + p["calls"]) / p["free"] for p in pace if p["free"] > 0]
    none_free = [p["ringing"] + p["waiting"] + p["calls"] for p in pace if p["free"] == 0 and p["calls"] > 0]
    rate = abandoned_window / answered_window
    print(f"\nseeded {HISTORY} past attempts {seeded}; campaign {CAMPAIGN_S:.0f} s with 5 agents:"
          f"\n  placed {len(live)}, answered {len(answered)} (people {len(people)}, machines "
          f"{count.get('machine', 0)}), connected {len(connected)}, abandoned {len(abandoned)}, outcomes {count}"
          f"\n  agent offers {offered}; abandon rate over the window {abandoned_window}/{answered_window} = "
          f"{rate:.4f} (cap {CAP}); campaign figure {final['abandon_rate']}"
          f"\n  pacing: {len(pace)} audited predictive decisions; max in flight per free agent "
          f"{max(over, default=0):.2f}; {len(none_free)} placed calls with no agent free (up to "
          f"{max(none_free, default=0):.0f} in flight); API decisions seen {len(decisions)}, max calls in one decision "
          f"{max((d['calls'] for d in decisions), default=0)}")

    # It over-dialled: a predictive decision left more calls in flight than agents free.
    assert any(p["ringing"] + p["waiting"] + p["calls"] > p["free"] for p in pace), pace[-10:]
    assert len(live) > 5 * 3, count
    # People reached agents; every agent call was a person's (no agent got a machine).
    assert len(connected) >= MIN_CONNECTED, count
    assert all(r[2] in ("HUMAN", "NOTSURE") and r[5] for r in connected)
    machines = [r for r in answered if r[2] == "MACHINE"]
    assert machines and all(r[1] == "machine" and r[4] is None and not r[5] for r in machines), machines
    assert offered <= len(people), (offered, len(people))
    # The abandon rate the FTC counts (window, past rows included) is within the cap.
    assert answered_window == len(people) + seeded["connected"]
    assert abandoned_window == len(abandoned)
    assert rate <= CAP, (abandoned_window, answered_window)
    # Every abandoned call was audited and heard the message (not a hang-up before it).
    assert sorted(n for _, n in abandons) == sorted(r[0] for r in abandoned)
    assert all(reason == "no agent in time" for reason, _ in abandons), abandons
    assert all(r[2] != "MACHINE" for r in abandoned)


def queue_events(eng: Engine, since: float) -> list[tuple[float, str, str, str, float | None]]:
    """(at, event, call id, caller, wait_s) of the queue's log since `since`, oldest first."""
    return db_rows(eng, "SELECT at, event, call_id, caller, wait_s FROM queue_log WHERE queue = 'outbound'"
                        " AND at >= ? ORDER BY id", (since,))


def live_calls(p: PjPhone) -> list[int]:
    """The phone's calls whose latest state is CONFIRMED (pjsua reuses call indexes)."""
    states = {e.data["call"]: e.data["state"] for e in p.events("state")}
    return [call for call, state in states.items() if state == "CONFIRMED"]


def test_blended_inbound_caller_past_service_level_goes_before_dialer_calls_and_keeps_an_agent(
        tmp_path: Path) -> None:
    """The campaign's queue also takes an inbound caller. With every agent talking (the carrier's
    people stay on the line until the agent hangs up), the caller waits past the service level:
    it is promoted ahead of the dialer's calls (PAST_SERVICE_LEVEL_PRIORITY), the pacer counts an
    agent kept for it (reserved_for_inbound), and the next agent to free takes it."""
    sl = 2
    with predictive_campaign(tmp_path, dataclasses.replace(RATES, hold=True), service_level_seconds=sl) \
            as (eng, phones, _seeded), phone(eng, "inbound", "1010") as caller:
        wait_for(lambda: all(live_calls(p) for p in phones), 40.0, "all 5 agents talking")
        dialled_at = time.time()
        call = caller.call(eng.uri("6100"))
        entered = wait_for(lambda: [e for e in queue_events(eng, dialled_at) if e[1] == "ENTER" and e[3] == "1010"],
                           5.0, "the caller in the queue")[0]
        reserved: list[tuple[float, int]] = []
        while time.time() < entered[0] + sl + 2.5:
            reserved.append((time.time(), eng.api("GET", "/v1/campaigns")[1][0]["reserved_for_inbound"]))
            time.sleep(0.1)
        assert not [e for e in queue_events(eng, dialled_at) if e[1] == "OFFER" and e[3] == "1010"]
        released_at = time.time()
        phones[0].hangup(live_calls(phones[0])[0])  # the first agent to free
        offer = wait_for(lambda: [e for e in queue_events(eng, released_at) if e[1] == "OFFER"], 10.0,
                         "an offer after the release")[0]
        caller.wait_state(call, "CONFIRMED", timeout=5.0)
        events = queue_events(eng, dialled_at)
        caller.hangup(call)
    dialer_waiting = [e for e in events if e[1] == "ENTER" and e[3] != "1010" and e[0] < offer[0]]
    promoted_by = entered[0] + sl + 1.0  # the first tick past its service level
    kept = [n for at, n in reserved if at > promoted_by + 0.1]
    print(f"\ninbound caller waited {offer[0] - entered[0]:.1f} s (service level {sl} s); dialer calls that "
          f"entered the queue meanwhile {len(dialer_waiting)}; reserved_for_inbound before its service level "
          f"{[n for at, n in reserved if at < entered[0] + sl]}, after its promotion {kept}")
    assert offer[3] == "1010", offer  # the first offer after an agent freed went to the inbound caller
    assert kept and all(n == 1 for n in kept), reserved
    assert all(n == 0 for at, n in reserved if at < entered[0] + sl - 0.1), reserved  # not before its SL
