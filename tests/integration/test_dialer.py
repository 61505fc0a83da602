"""The outbound dialer with real peers: pjsua2 agents (auto-answer) in the campaign's queue, and a
pjsua2 "carrier" behind the campaign's trunk that answers like a person, is busy, never answers,
or answers like a machine, per dialled number."""
from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.audio import best_second, read_wav, write_tone_wav
from tests.peers.dialer import attempts, audit, carrier, db_rows, dialer_config, seed_campaign, wait_for
from tests.peers.engine import Engine
from tests.peers.pjsua import PjPhone

HUMAN_A, BUSY, MACHINE, HUMAN_B = "+33612345601", "+33612345602", "+33612345603", "+33612345604"
AGENT_TONE, CUSTOMER_TONE = 1000, 440


@contextlib.contextmanager
def agents(eng: Engine, tmp: Path, count: int) -> Iterator[list[PjPhone]]:
    """`count` auto-answering agent phones (1001..) playing a 1 kHz tone, logged in as 3001.."""
    tone = write_tone_wav(tmp / "agent_tone.wav", AGENT_TONE, 60)
    with contextlib.ExitStack() as stack:
        phones = []
        for i in range(count):
            ext = str(1001 + i)
            p = stack.enter_context(PjPhone(f"agent{i}", auto_answer=True, auto_play=tone,
                                            auto_record=str(tmp / f"agent{i}_{{call}}.wav")))
            p.register(ext, eng.secret(ext), "127.0.0.1", eng.sip_port)
            phones.append(p)
        for i in range(count):
            status, body = eng.api("POST", f"/v1/agents/{3001 + i}/login", {"device": str(1001 + i)})
            assert status == 200, body
        yield phones


def lead_row(eng: Engine, number: str) -> tuple[Any, ...]:
    return db_rows(eng, "SELECT id, status, attempts, next_at, disposition, last_outcome FROM leads"
                        " WHERE number = ?", (number,))[0]


def test_progressive_one_call_per_free_agent_person_to_agent_busy_retried_machine_never_offered(
        tmp_path: Path) -> None:
    behaviour = {HUMAN_A: "answer", BUSY: "busy", MACHINE: "machine", HUMAN_B: "answer"}
    with carrier(tmp_path / "carrier", behaviour, CUSTOMER_TONE) as net:
        eng = Engine(tmp_path / "engine", config=dialer_config(net.phone.sip_port, agents=2))
        seed_campaign(eng, [HUMAN_A, BUSY, MACHINE, HUMAN_B])
        with eng.running(), agents(eng, tmp_path, 2) as phones:
            connected = wait_for(lambda: [a for a in attempts(eng) if a[3] is not None and a[0] != MACHINE]
                                 if len([a for a in attempts(eng) if a[3] is not None]) >= 2 else None,
                                 30.0, "two people connected to agents")
            assert {a[0] for a in connected} == {HUMAN_A, HUMAN_B}
            wait_for(lambda: any(a[0] == MACHINE and a[1] for a in attempts(eng)), 30.0, "the machine's outcome")
            for p in phones:  # the person's tone starts 3 s after the answer: let both ways be heard
                p.wait_rx_audio(0, 4.5, timeout=20.0)
            _, campaigns = eng.api("GET", "/v1/campaigns")
            assert campaigns[0]["name"] == "promo" and campaigns[0]["agents_busy"] == 2
            _, card = eng.api("GET", "/v1/agents/3001/lead")
            assert card["lead"]["number"] in (HUMAN_A, HUMAN_B) and card["script"].startswith("Hello")
            assert "sale" in card["dispositions"] and card["lead"]["fields"]["first_name"].startswith("Lead")
            for number in (HUMAN_A, HUMAN_B):
                net.phone.hangup(net.calls[number])
            for p in phones:
                p.wait_state(0, "DISCONNECTED", timeout=5.0)
            status, body = eng.api("POST", f"/v1/leads/{card['lead']['id']}/disposition",
                                   {"code": "sale", "agent": "3001"})
            assert status == 200 and body["disposition"] == "sale", body
            assert eng.api("POST", f"/v1/leads/{card['lead']['id']}/disposition", {"code": "nope"})[0] == 400
            assert eng.api("GET", "/v1/agents/3001/lead")[0] == 404  # dispositioned: the card is gone
        rows = {a[0]: a for a in attempts(eng)}
        pace = [r[0] for r in db_rows(eng, "SELECT detail FROM dialer_audit WHERE decision = 'pace'")]
    assert rows[MACHINE][1] == "machine" and rows[MACHINE][2] == "MACHINE" and not rows[MACHINE][4]
    assert rows[BUSY][1] == "busy"
    _, status, tries, next_at, _, last = lead_row(eng, BUSY)
    assert (status, tries, last) == ("retry", 1, "busy") and next_at is not None
    assert lead_row(eng, card["lead"]["number"])[1:5:3] == ("done", "sale")
    # Every pacing decision placed at most one call per free agent (progressive never over-dials).
    figures = [dict(kv.split("=") for kv in detail.split() if "=" in kv) for detail in pace]
    assert figures and all(int(f["calls"]) <= int(f["free"]) for f in figures)
    assert sorted(r[2] for r in audit(eng) if r[0] == "dial") == sorted(behaviour)  # each lead once
    # The agents heard the people, the people heard the agents; no agent ever got the machine.
    assert len(net.seen) == 4
    for i, p in enumerate(phones):
        assert len(p.events("incoming")) == 1
        rate, heard = read_wav(tmp_path / f"agent{i}_0.wav")
        assert best_second(heard, rate, CUSTOMER_TONE) > 0.5
    for number in (HUMAN_A, HUMAN_B):
        rate, heard = read_wav(tmp_path / "carrier" / f"{number}.wav")
        assert best_second(heard, rate, AGENT_TONE) > 0.5


@pytest.mark.parametrize("refusal", ["dnc", "outside-window"])
def test_refused_leads_are_audited_and_nothing_is_dialled(tmp_path: Path, refusal: str) -> None:
    with carrier(tmp_path / "carrier", {HUMAN_A: "answer"}) as net:
        eng = Engine(tmp_path / "engine", config=dialer_config(net.phone.sip_port, agents=1))
        windows = ["mon-sun 00:00-24:00"]
        if refusal == "outside-window":
            start = (dt.datetime.now(ZoneInfo("Europe/Paris")).hour + 6) % 24  # the lead's zone, 6 h away
            windows = [f"mon-sun {start:02d}:00-{start + 1:02d}:00"]
        seed_campaign(eng, [HUMAN_A], windows=windows)
        if refusal == "dnc":
            with eng.running():
                status, body = eng.api("POST", "/v1/dnc", {"number": "06 12 34 56 01", "note": "asked"})
                assert (status, body) == (200, {"number": HUMAN_A, "added": True})
                assert eng.api("POST", "/v1/dnc", {"number": "not a number"})[0] == 400
                with agents(eng, tmp_path, 1):
                    wait_for(lambda: any(r[0] == "refused" for r in audit(eng)) or lead_row(eng, HUMAN_A)[1] == "dnc",
                             10.0, "the DNC lead ended")
                    time.sleep(2.0)  # kept: proves nothing is dialled afterwards either
        else:
            with eng.running(), agents(eng, tmp_path, 1):
                wait_for(lambda: any(r[0] == "refused" for r in audit(eng)), 10.0, "a refusal in the audit log")
                time.sleep(2.0)  # kept: proves nothing is dialled afterwards either
    assert net.seen == []  # the carrier never saw an INVITE
    assert attempts(eng) == []
    if refusal == "outside-window":
        assert ("refused", "outside-window", HUMAN_A) in audit(eng)
        _, status, tries, next_at, _, _ = lead_row(eng, HUMAN_A)
        assert status == "new" and tries == 0 and next_at is not None and next_at > time.time()
    else:
        assert lead_row(eng, HUMAN_A)[1] == "dnc"
        assert ("dnc", "agent", HUMAN_A) in audit(eng)


def test_preview_agent_sees_the_card_dials_and_talks(tmp_path: Path) -> None:
    with carrier(tmp_path / "carrier", {HUMAN_A: "answer", BUSY: "busy"}, CUSTOMER_TONE) as net:
        eng = Engine(tmp_path / "engine", config=dialer_config(net.phone.sip_port, agents=1))
        seed_campaign(eng, [HUMAN_A, BUSY], mode="preview")
        with eng.running(), agents(eng, tmp_path, 1) as (phone,):
            time.sleep(2.0)  # kept: a pause in which a non-preview dialer would have dialled
            assert net.seen == []  # preview never dials by itself
            status, card = eng.api("GET", "/v1/agents/3001/preview")
            assert status == 200 and card["lead"]["number"] == HUMAN_A, card
            assert eng.api("GET", "/v1/agents/3001/preview")[1]["lead"]["id"] == card["lead"]["id"]  # reserved
            assert eng.api("POST", "/v1/agents/3001/preview", {"action": "call"})[0] == 400
            status, body = eng.api("POST", "/v1/agents/3001/preview", {"action": "dial"})
            assert status == 200, body
            wait_for(lambda: HUMAN_A in net.calls, 10.0, "the lead rings")
            phone.wait_state(0, "CONFIRMED", timeout=5.0)
            phone.wait_rx_audio(0, 5.0, timeout=20.0)  # the person's tone starts 3 s after its answer
            assert eng.api("GET", "/v1/agents/3001/lead")[1]["lead"]["number"] == HUMAN_A
            net.phone.hangup(net.calls[HUMAN_A])
            phone.wait_state(0, "DISCONNECTED", timeout=5.0)
        row = attempts(eng)[0]
    assert row[0] == HUMAN_A and row[1] == "connected" and row[4] == "3001"
    rate, heard = read_wav(tmp_path / "agent0_0.wav")
    assert best_second(heard, rate, CUSTOMER_TONE) > 0.5
    rate, heard = read_wav(tmp_path / "carrier" / f"{HUMAN_A}.wav")
    assert best_second(heard, rate, AGENT_TONE) > 0.5


def test_no_agent_within_two_seconds_is_abandoned_with_the_message_and_9_puts_the_number_on_dnc(
        tmp_path: Path) -> None:
    from appliance.ivr.tts import PromptCache
    from tests.integration.test_engine_queues import match_score

    with carrier(tmp_path / "carrier", {HUMAN_A: "answer"}) as net:
        eng = Engine(tmp_path / "engine", config=dialer_config(net.phone.sip_port, agents=1))
        campaign = seed_campaign(eng, [HUMAN_A])
        text = f"{campaign.abandon_message} To stop our calls, press 9."
        prompts = PromptCache(tmp_path / "tts")
        rate, rendered = read_wav(prompts.path_for(text))
        message_s = len(rendered) / rate
        with eng.running(), PjPhone("agent-away") as agent:  # registered and logged in, never answers
            agent.register("1001", eng.secret("1001"), "127.0.0.1", eng.sip_port)
            assert eng.api("POST", "/v1/agents/3001/login", {"device": "1001"})[0] == 200
            wait_for(lambda: any(r[0] == "abandoned" for r in audit(eng)), 20.0, "the abandon")
            abandoned_at = time.monotonic()
            agent.wait_incoming(timeout=1.0)  # the agent's phone was offered the call, and rang
            # The whole message, then 9 within the 5 s it waits for a key.
            net.phone.wait_rx_audio(net.calls[HUMAN_A], message_s + 0.5, timeout=message_s + 10.0)
            net.phone.dial_dtmf(net.calls[HUMAN_A], "9")
            net.phone.wait_state(net.calls[HUMAN_A], "DISCONNECTED", timeout=15.0)
            assert time.monotonic() - abandoned_at < message_s + 8.0
            _, campaigns = eng.api("GET", "/v1/campaigns")
        row = attempts(eng)[0]
        decisions = [r[0] for r in audit(eng)]
    assert row[1] == "abandoned" and row[2] == "HUMAN" and row[3] is None
    assert decisions.index("abandoned") < decisions.index("opt-out")
    assert db_rows(eng, "SELECT source FROM dnc WHERE number = ?", (HUMAN_A,)) == [("opt-out",)]
    assert lead_row(eng, HUMAN_A)[1] == "dnc"
    assert campaigns[0]["abandoned_today"] == 1 and campaigns[0]["abandon_rate"] == 1.0
    # What the callee heard after its answer is the abandon message with the opt-out offer.
    rate, heard = read_wav(tmp_path / "carrier" / f"{HUMAN_A}.wav")
    assert match_score(heard, rate, prompts, text, parts=3) > 0.5  # each third of the message
    assert match_score(heard, rate, prompts, text) > 1.5 * match_score(heard, rate, prompts, "Please hold the line.")
