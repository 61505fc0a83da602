"""One dialer attempt from the dial to its outcome: answered and connected, no answer, busy,
abandoned, machine; and the rows it leaves in a real store, from which a restarted pacer is seeded.

The `Dialer` places the attempt and records its outcome, both real, on a real SQLite store, with
the real distributor whose queue the campaign uses. Only ports are fakes (tests/pbx_ports.py and
below): the PBX (`DialerPbx`), the trunk's channel (a `Line` the test answers, rejects or
lets ring), the call factory and the call it makes (`AttemptCall`: the test plays what the PBX
does with it, an agent answering from the queue, a hang-up), media and virtual time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from appliance.dialer.campaign import CampaignConfig
from appliance.dialer.prospects import ImportReport, Lead
from appliance.ivr.tts import PromptCache
from appliance.pbx.bus import EventBus
from appliance.pbx.channel import NORMAL_CLEARING, Cause, Channel, Party
from appliance.pbx.dialer import Dialer, LiveCampaign
from appliance.pbx.dialer_call import AttemptState, DialerAttempt
from appliance.pbx.dialer_pacing import make_pacer, seed
from appliance.pbx.dialplan import ToTrunk
from appliance.pbx.distributor import DIALER_PRIORITY, CallDistributor
from appliance.store import acd as acd_store
from appliance.store import dialer as dstore
from appliance.store.db import Store
from appliance.store.models import AgentConfig, Extension, QueueConfig, Trunk
from tests.pbx_ports import FakeMedia, Line, QueuePbx, VirtualTime

NUMBER = "+33612345601"


class CustomerCall:
    """The call an attempt drives (the `AttemptCall` port): records what it is asked; `agent_answers`
    and `end` are what the PBX would do with it."""

    def __init__(self, a: Channel, dialed: str, via_trunk: str | None) -> None:
        self.id = f"call-{id(self)}"
        self.a, self.dialed, self.via_trunk = a, dialed, via_trunk
        self.variables: dict[str, str] = {}
        self.agent_id: str | None = None
        self.cause: Cause = NORMAL_CLEARING
        self.queue_entry: object | None = None
        self.service: Any = None
        self.observers: dict[str, Callable[[Any], None]] = {}
        self.steps: list[Any] = []
        self.ended = False

    def observe(self, on_answered: Callable[[Any], None] | None = None,
                on_agent_connected: Callable[[Any], None] | None = None,
                on_ended: Callable[[Any], None] | None = None) -> None:
        for name, fn in (("answered", on_answered), ("agent", on_agent_connected), ("ended", on_ended)):
            if fn is not None:
                self.observers[name] = fn

    def attach_service(self, service: Any) -> None:
        self.service = service

    def adopt_answered(self) -> None:
        self.steps.append("adopted")

    def wait_in_queue(self, name: str) -> bool:
        self.steps.append(("queue", name))
        self.queue_entry = object()
        return True

    def leave_queue(self, event: str) -> bool:
        self.steps.append(("leave", event))
        self.queue_entry = None
        return True

    def hangup(self, chan: Channel | None = None) -> None:
        self.steps.append("hung up")
        self.end(NORMAL_CLEARING)

    # -- what the PBX does ------------------------------------------------------------------------
    def agent_answers(self, agent_id: str) -> None:
        self.queue_entry, self.agent_id = None, agent_id
        self.observers["agent"](self)

    def end(self, cause: Cause) -> None:
        if self.ended:
            return
        self.ended, self.cause = True, cause
        self.a.hangup(cause)
        self.observers["ended"](self)


@dataclass
class Calls:
    made: list[CustomerCall] = field(default_factory=list)

    def new_call(self, a: Channel, dialed: str, direction: str, caller_ext: Any = None,
                 via_trunk: str | None = None, principal: Any = None) -> CustomerCall:
        assert direction == "outbound"
        call = CustomerCall(a, dialed, via_trunk)
        self.made.append(call)
        return call


@dataclass
class Trunks:
    trunks: dict[str, Trunk] = field(default_factory=dict)


class DialerPbxFake:
    """The dialer's PBX port: the campaign's trunk rings `Line`s kept in `lines`."""

    def __init__(self, store: Store, time: VirtualTime, prompts: PromptCache) -> None:
        self.queue_pbx = QueuePbx(store, time, prompts)
        self.store = store
        self.schedule = time.schedule
        self.media = FakeMedia()
        self.prompts = prompts
        self.distributor = CallDistributor(self.queue_pbx, time.clock, EventBus())
        self.dialplan = Trunks()
        self.call_factory = Calls()
        self.lines: list[Line] = []

    def device_busy(self, number: str) -> bool:
        return self.queue_pbx.device_busy(number)

    def device_reachable(self, number: str) -> bool:
        return self.queue_pbx.device_reachable(number)

    def channel_for_trunk(self, dest: ToTrunk, caller: Party) -> Channel:
        chan = Line("outbound", caller, dest.number)
        chan.trunk = dest.trunk.name
        self.lines.append(chan)
        return chan


@dataclass
class World:
    time: VirtualTime
    pbx: DialerPbxFake
    dialer: Dialer
    store: Store

    @property
    def live(self) -> LiveCampaign:
        return self.dialer.campaigns["spring"]

    def dial(self) -> DialerAttempt:
        """The dialer places one call to the campaign's lead; the attempt it started."""
        assert self.dialer.place(self.live, 1) == 1
        [attempt] = self.live.attempts.values()
        assert isinstance(attempt, DialerAttempt)
        return attempt

    def row(self) -> dstore.AttemptTimes:
        [row] = dstore.recent_outcomes(self.store, "spring", 10)
        return row

    def decisions(self) -> list[tuple[str, str]]:
        return [(a["decision"], a["reason"]) for a in reversed(dstore.audit_log(self.store, "spring"))]


def campaign(amd: bool = False) -> CampaignConfig:
    return CampaignConfig(name="spring", queue="sales", trunk="carrier", windows=["mon-sun 00:00-24:00"], amd=amd,
                          caller_id="+33140000000", state="running")


@pytest.fixture
def world(store: Store, prompts: PromptCache) -> Iterator[World]:
    time = VirtualTime(now=1_750_000_000.0)
    trunk = Trunk(name="carrier", host="192.0.2.1")
    store.put_trunk(trunk)
    acd_store.put_queue(store, QueueConfig(name="sales", announce_seconds=0, wrapup_seconds=5))
    dstore.put_campaign(store, campaign(), now=time.now)
    dstore.add_list(store, "spring", "list", [Lead(1, NUMBER, "Europe/Paris", {"name": "Ann"})],
                    ImportReport(rows=1, imported=1), now=time.now)
    pbx = DialerPbxFake(store, time, prompts)
    pbx.dialplan.trunks["carrier"] = trunk
    pbx.distributor.load()
    dialer = Dialer(pbx, clock=time.clock)
    dialer.load()
    yield World(time, pbx, dialer, store)


def test_a_person_answers_waits_for_an_agent_and_the_connected_call_ends(world: World) -> None:
    attempt = world.dial()
    line = world.pbx.lines[0]
    assert line.dialled and line.callee == NUMBER and line.caller.number == "+33140000000"
    assert attempt.state is AttemptState.DIALING and world.decisions() == [("dial", "allowed")]
    world.time.advance(4.0)
    line.remote_answer()
    [call] = world.pbx.call_factory.made
    assert call.a is line and call.dialed == NUMBER and call.via_trunk == "carrier"
    assert call.variables == {"priority": str(DIALER_PRIORITY), "campaign": "spring",
                              "lead_id": str(attempt.lead.id), "attempt_id": str(attempt.attempt_id)}
    assert call.steps == ["adopted", ("queue", "sales")] and call.service is None  # no AMD: to the queue at once
    assert attempt.state is AttemptState.QUEUED
    world.time.advance(1.5)  # within the 2 s the FTC allows
    call.agent_answers("2001")
    assert attempt.state is AttemptState.CONNECTED
    assert world.dialer.agent_leads["2001"].attempt_id == attempt.attempt_id
    world.time.advance(60.0)  # the abandon deadline passed long ago: it was cancelled
    assert attempt.state is AttemptState.CONNECTED
    call.end(NORMAL_CLEARING)
    assert attempt.state is AttemptState.ENDED and attempt.attempt_id not in world.live.attempts
    row = world.row()
    placed = world.time.now - 65.5
    assert (row.outcome, row.placed_at, row.answered_at, row.connected_at, row.ended_at) == (
        "connected", placed, placed + 4.0, placed + 5.5, world.time.now)
    lead = dstore.get_lead(world.store, attempt.lead.id)
    assert lead is not None and (lead.status, lead.attempts, lead.last_outcome) == ("done", 1, "connected")
    assert world.live.pacer.ledger.totals(world.time.now) == (1, 0)


@pytest.mark.parametrize("far_end, outcome, retry_minutes", [
    ("rings out", "no-answer", 120),
    ("busy", "busy", 15),
    ("rejects", "failed", 60),
])
def test_a_call_not_answered_ends_the_attempt_and_the_lead_is_retried(
        world: World, far_end: str, outcome: str, retry_minutes: int) -> None:
    attempt = world.dial()
    line = world.pbx.lines[0]
    line.remote_ringing()
    if far_end == "rings out":
        world.time.advance(25.1)  # the dialer's ring timeout
        assert line.is_down
    elif far_end == "busy":
        line.remote_hangup(Cause(486, "Busy Here"))
    else:
        line.remote_hangup(Cause(503, "Service Unavailable"))
    assert attempt.state is AttemptState.ENDED and world.pbx.call_factory.made == []
    row = world.row()
    assert (row.outcome, row.answered_at, row.connected_at) == (outcome, None, None)
    lead = dstore.get_lead(world.store, attempt.lead.id)
    assert lead is not None and (lead.status, lead.attempts) == ("retry", 1)
    assert lead.next_at == pytest.approx(world.time.now + 60.0 * retry_minutes)
    assert world.live.pacer.ledger.totals(world.time.now) == (0, 0)  # nobody answered: not in the abandon rate


def test_no_agent_in_time_is_an_abandon_with_the_message_and_a_restarted_pacer_remembers_it(
        world: World) -> None:
    attempt = world.dial()
    world.pbx.lines[0].remote_answer()
    [call] = world.pbx.call_factory.made
    world.time.advance(1.9)
    assert attempt.state is AttemptState.QUEUED
    world.time.advance(0.2)  # 2 s after the answer, and no agent
    assert attempt.state is AttemptState.ABANDONING and call.steps[-1] == ("leave", "EXITWITHTIMEOUT")
    assert call.service is attempt  # the called person's keys (9: opt out) go to the attempt now
    [message] = world.pbx.media.played(call.a.media_leg)
    assert str(message).endswith(".wav")  # the abandon message, rendered by espeak-ng
    assert ("abandoned", "no agent in time") in world.decisions()
    call.end(NORMAL_CLEARING)  # the person hangs up during the message
    assert world.row().outcome == "abandoned"
    assert world.live.pacer.ledger.totals(world.time.now) == (1, 1)
    # After a restart the pacer is seeded from the store's rows: the same abandon ledger.
    pacer = make_pacer(world.live.config)
    seed(pacer, world.store, world.live.config, world.time.now, 5.0)
    assert pacer.ledger.totals(world.time.now) == (1, 1)
    assert pacer.stats.answer_rate == world.live.pacer.stats.answer_rate == 1.0


def test_a_machine_is_hung_up_and_not_counted_in_the_abandon_rate(world: World) -> None:
    dstore.put_campaign(world.store, campaign(amd=True), now=world.time.now)
    world.dialer.load()
    attempt = world.dial()
    line = world.pbx.lines[0]
    line.remote_answer()
    [call] = world.pbx.call_factory.made
    assert attempt.state is AttemptState.DETECTING and call.service is attempt
    assert ("detect_machine", line.media_leg) in world.pbx.media.requests
    world.time.advance(1.0)
    world.dialer.machine_detected(line.media_leg, "MACHINE", "long greeting", 2400)
    assert "hung up" in call.steps and attempt.state is AttemptState.ENDED
    assert ("queue", "sales") not in call.steps  # a machine never reaches an agent
    assert world.row().outcome == "machine"
    assert world.live.pacer.ledger.totals(world.time.now) == (0, 0)


def test_the_pacing_counts_the_agents_of_every_node(world: World, store_target: Any) -> None:
    """An agent logged in on another engine of the site is free for this engine's campaign, and
    stops being so while that engine has them on a call (issue 14: one logical ACD)."""
    for agent_id, phone in (("2001", "1001"), ("2002", "1002")):
        acd_store.put_agent(world.store, AgentConfig(agent_id, f"Agent {agent_id}", "1234"))
        world.pbx.queue_pbx.dialplan.extensions[phone] = Extension(number=phone, name=phone, secret="x")
    world.pbx.distributor.load()
    with Store(store_target) as other:  # another engine's connection, its own distributor
        pbx = QueuePbx(other, world.time, world.pbx.prompts)
        pbx.settings.node = "two"
        elsewhere: CallDistributor[Any] = CallDistributor(pbx, world.time.clock, EventBus())
        elsewhere.load()
        assert world.dialer.snapshot(world.live, world.time.now).agents_free == 0
        elsewhere.roster.login("2001", None, "1001")
        elsewhere.roster.login("2002", None, "1002")
        assert world.dialer.snapshot(world.live, world.time.now).agents_free == 2
        elsewhere.roster.pause("2002", "lunch")
        assert world.dialer.snapshot(world.live, world.time.now).agents_free == 1
