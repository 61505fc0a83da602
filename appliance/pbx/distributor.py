"""The automatic call distributor at run time: callers waiting in queues, offers ringing agents'
phones, the connection, and everything a waiting caller hears or may do.

The decisions are `appliance.acd` (pure: which agent, which caller, expected wait); this module
turns them into channels and timers, and writes every step to the queue log:

* a caller joins (ENTER) unless the queue is full (EXITFULL) or nobody serves it (EXITEMPTY),
  hears the queue's music, and every `announce_seconds` its position and expected wait;
* agents are offered callers (OFFER); an offer left ringing is RINGNOANSWER and the caller keeps
  its place; the first agent to answer is connected (CONNECT) and the others stop ringing;
* a caller who hangs up while waiting is ABANDON (position and wait); one who waits longer than
  `max_wait_seconds` leaves for the overflow destination (EXITWITHTIMEOUT);
* pressing the callback key keeps the place without keeping the line (CALLBACK_REQUESTED): when
  the turn comes the agent answers first and the caller is called back (CALLBACK_PLACED);
* when the agent's call ends the agent wraps up for the queue's `wrapup_seconds` (COMPLETE).

`Offers.ring` (appliance/pbx/offers.py) is the only way an agent is offered a call: a waiting
caller (`dispatch`), and the dialer's preview lead (`offer_preview`). The distributor reaches the
PBX only through its ports (`ports.DistributorPbx`, `ports.QueueCall`; docs/ARCHITECTURE.md,
"Ports") and tells the rest of the engine what happened through events on the bus: QueueJoined,
QueueLeft, AgentConnected, AgentReleased (appliance/pbx/events.py).

One ACD across the nodes of a site (issue 14): the roster holds an agent in the store before
ringing them (roster.py), and each waiting caller is a site row too, so a queue's order holds
across nodes (site_queues.py) and the wallboard shows the whole site (acd_board.py).
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic

from appliance.acd.agent import Agent, AgentState, Answer, CallEnded, NoAnswer, OfferCancelled
from appliance.acd.queue import CallQueue
from appliance.acd.skills import requirements_from_text
from appliance.acd.strategies import make_strategy
from appliance.media.tones import ToneSpec
from appliance.pbx.channel import ANSWERED_ELSEWHERE, CANCELLED, Cause, Channel, DtmfReceived, Party, PlaybackEnded
from appliance.pbx.bus import EventBus
from appliance.pbx.events import AgentConnected, AgentReleased, QueueJoined, QueueLeft
from appliance.pbx.offers import OfferLeg, Offers
from appliance.pbx.ports import DistributorPbx, TimerHandle
from appliance.pbx.prompter import Prompter
from appliance.pbx.roster import AgentError, AgentRoster
from appliance.pbx.acd_board import QueueView, Thresholds, agent_board, queue_board
from appliance.pbx.site_queues import behind_other_nodes
from appliance.pbx.waiting import C, Waiting, announcement_text, queue_music
from appliance.store import acd as acd_store
from appliance.store import acd_site, interactions, queue_log
from appliance.store import contacts as contacts_store
from appliance.store.acd_site import SiteCaller, site_entry
from appliance.store.models import QueueConfig

log = logging.getLogger("plateau.acd")
TICK_SECONDS = 1.0
MAX_DISPATCH_ROUNDS = 20
FOLLOW_UP_WINDOW_S = 72 * 3600.0  # the FCR window: a call back within it is about the same thing
RECONCILE_SECONDS = 5.0
# Queue priorities of blended queues: a customer the dialer reached goes before ordinary
# callers (every second it waits counts towards an abandon), and an inbound caller past the
# queue's service-level target is raised above the dialer's calls.
DIALER_PRIORITY = 1000
PAST_SERVICE_LEVEL_PRIORITY = 1001
_entry_ids = itertools.count(1)


@dataclass
class LiveQueue(Generic[C]):
    config: QueueConfig
    calls: CallQueue
    waiting: dict[str, Waiting[C]] = field(default_factory=dict)


def _strategy(cfg: QueueConfig) -> Any:
    if cfg.strategy == "ring-progressively":
        return make_strategy(cfg.strategy, step_seconds=float(cfg.ring_step_seconds))
    return make_strategy(cfg.strategy)


class CallDistributor(Generic[C]):
    """Queues, offers and agents' calls for one switchboard."""

    def __init__(self, pbx: DistributorPbx[C], clock: Callable[[], float], bus: EventBus) -> None:
        self.pbx = pbx
        self.store = pbx.store
        self.clock = clock
        self.bus = bus
        self.node = pbx.settings.node
        self.roster = AgentRoster(pbx.store, clock, self.node)
        self.roster.on_available = lambda agent: self.dispatch()
        self.queues: dict[str, LiveQueue[C]] = {}
        self.entries: dict[str, Waiting[C]] = {}
        self.ringing = Offers(pbx, self.roster, clock)
        self.offers = self.ringing.legs  # agent id -> the offer ringing their phone
        self.agent_calls: dict[str, C] = {}  # agent id -> the call they are on
        self.entries_by_call: dict[str, Waiting[C]] = {}  # call id -> its place, while the caller is in a queue
        self._dispatching = False
        self._again = False
        self._timer: TimerHandle | None = None
        self._last_reconcile = 0.0

    # -- configuration and start-up ----------------------------------------------------------
    def load(self) -> None:
        """Take the agents and queues from the store; waiting callers keep their places."""
        self.roster.load(acd_store.agents(self.store))
        now = self.clock()
        for cfg in acd_store.queues(self.store):
            live = self.queues.get(cfg.name)
            order = {agent_id: i for i, agent_id in enumerate(cfg.members)}
            reqs = requirements_from_text(cfg.skills, cfg.escalations)
            if live is None:
                self.queues[cfg.name] = LiveQueue(cfg, CallQueue(cfg.name, _strategy(cfg), reqs, order, created_at=now))
                continue
            if cfg.strategy != live.config.strategy or cfg.ring_step_seconds != live.config.ring_step_seconds:
                live.calls.strategy = _strategy(cfg)
            live.calls.requirements, live.calls.member_order, live.config = reqs, order, cfg

    def start(self) -> None:
        """Restore agents and promised callbacks after a restart, then run the periodic tick."""
        self.load()
        self.roster.restore()
        # This node's earlier life is dead: its callers' rows, holds and callbacks are let go.
        acd_site.forget_node(self.store, self.node, self.clock())
        self._adopt_callbacks()
        self._timer = self.pbx.schedule(TICK_SECONDS, self._tick)
        self.dispatch()

    def _adopt_callbacks(self) -> None:
        """Wait here for the promised callbacks no node serves (this node's earlier life's, a dead
        node's, or from before the site): each is adopted by one node (acd_site.adopt_callbacks)."""
        try:
            mine = set(acd_site.adopt_callbacks(self.store, self.node))
        except self.store.db_error as exc:  # another connection's write lock: the next reconcile asks again
            log.warning("callbacks to adopt not taken now: %s", exc)
            return
        for cb_id, queue, number, name, priority, requested_at, call_id in acd_store.pending_callbacks(self.store):
            if cb_id not in mine:
                continue
            live = self.queues.get(queue)
            if live is None:
                acd_store.finish_callback(self.store, cb_id, self.clock(), "queue deleted")
                continue
            entry = self._join(live, Party(number, name), priority, requested_at, call=None)
            entry.callback_id = cb_id
            known = interactions.interaction_for_call(self.store, call_id)
            entry.interaction_id = known.id if known is not None else None
            log.info("callback %d for %s restored in %s", cb_id, number, queue)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- callers -----------------------------------------------------------------------------
    def enqueue(self, call: C, queue_name: str) -> str | None:
        """Put an answered caller in a queue; returns the overflow destination when it cannot wait
        there (None: it waits, or it leaves with a failure when there is no overflow)."""
        live = self.queues.get(queue_name)
        if live is None:
            log.error("%s: queue %s does not exist", call.id, queue_name)
            return ""
        cfg, now = live.config, self.clock()
        caller = call.a.caller
        if cfg.max_callers and len(live.calls) >= cfg.max_callers:
            self._log("EXITFULL", live, call.a.dialog_key(), caller.number, position=len(live.calls) + 1)
            return cfg.overflow or ""
        priority = _int(call.variables.get("priority"))
        entry = self._join(live, caller, priority, now, call)
        self._open_interaction(call, live.config.name, now)
        if not cfg.join_empty and not self._staffed(live):
            self._leave(entry, "EXITEMPTY")
            return cfg.overflow or ""
        self.pbx.media.play(call.a.media_leg, self._moh(cfg), True)
        if cfg.announce_seconds:
            entry.next_announce = now  # the first announcement at once: callers want to know
        self._announce_due()
        self.dispatch()
        return None

    def _open_interaction(self, call: C, queue: str, now: float) -> None:
        """Each queued call opens an interaction, or continues the caller's open one (a caller
        calling back about the same thing within 72 h), linked to their contact."""
        if call.interaction_id is not None:
            return
        caller = call.a.caller.number
        known = interactions.latest_open_for_caller(self.store, caller, FOLLOW_UP_WINDOW_S, now=now)
        if known is not None:
            call.link_interaction(known.id)
            return
        contact_id = _int(call.variables.get("contact_id")) or None
        if contact_id is None and caller and caller != "anonymous":
            contact = self.pbx.contacts.find_by_number(caller) or self.pbx.contacts.create(caller)
            contact_id = _int(contact.id) or None
        call.link_interaction(interactions.open_interaction(self.store, caller, queue, call.a.dialog_key(), now,
                                                            contact_id=contact_id, ivr_path=call.variables))

    def _join(self, live: LiveQueue[C], caller: Party, priority: int, at: float, call: C | None) -> Waiting[C]:
        entry_id = f"q{next(_entry_ids)}"
        live.calls.join(caller.number, at, priority, entry_id)
        entry = Waiting(entry_id, live.config.name, caller, priority, at, call)
        live.waiting[entry_id] = self.entries[entry_id] = entry
        position = live.calls.position(entry_id)
        self._place_on_site(entry)
        self._log("ENTER", live, self._call_key(entry), caller.number, position=position,
                  data="callback" if call is None else "")
        if call is not None:
            self._waits(call, entry)
            self.bus.publish(QueueJoined(call.id, live.config.name, caller.number))
        return entry

    def caller_left(self, call: C) -> None:
        """The caller hung up while waiting: an abandon, unless a callback was promised."""
        entry = self.entries_by_call.get(call.id)
        self._waits(call, None)
        if entry is None or entry.entry_id not in self.entries:
            return
        if entry.prompter is not None:
            entry.prompter.stop()
            entry.prompter = None
        if entry.callback_id is not None:
            entry.call = None  # keeps its place: called back when its turn comes
            self._place_on_site(entry)
            self.bus.publish(QueueLeft(call.id, entry.queue, "CALLBACK_REQUESTED"))
            return
        self._leave(entry, "ABANDON")

    def withdraw(self, call: C, event: str) -> bool:
        """Take a waiting caller out of its queue for the PBX's own reasons (the dialer's
        abandon deadline), logging `event`; its offers stop. False if it was not waiting."""
        entry = self.entries_by_call.get(call.id)
        if entry is None or entry.entry_id not in self.entries:
            return False
        self._waits(call, None)
        self._leave(entry, event)
        return True

    def inbound_past_service_level(self, queue_name: str, now: float) -> list[C]:
        """Inbound callers on the line in `queue_name` waiting longer than its service-level
        target (a dialer's call carries its lead): in a blended queue they go before the dialer's
        calls and the dialer leaves them the agents they need."""
        live = self.queues.get(queue_name)
        if live is None:
            return []
        limit = float(live.config.service_level_seconds)
        return [e.call for e in live.waiting.values()
                if e.call is not None and "lead_id" not in e.call.variables and now - e.entered_at > limit]

    def promote(self, call: C, priority: int) -> bool:
        """Raise a waiting caller's priority (keeping its arrival time); False if it is not
        waiting or is being offered right now (its offer stands; the next tick tries again)."""
        entry = self.entries_by_call.get(call.id)
        if entry is None or entry.entry_id not in self.entries or entry.priority >= priority:
            return False
        live = self.queues[entry.queue]
        if any(o.entry_id == entry.entry_id for o in self.offers.values()):
            return False
        live.calls.leave(entry.entry_id)
        live.calls.join(entry.caller.number, entry.entered_at, priority, entry.entry_id)
        entry.priority = priority
        self._place_on_site(entry)
        return True

    def caller_event(self, call: C, event: DtmfReceived | PlaybackEnded) -> None:
        """Keys and prompt ends from a waiting caller."""
        entry = self.entries_by_call.get(call.id)
        if entry is None:
            return
        if entry.prompter is not None:
            entry.prompter.handle(event)
            if isinstance(event, PlaybackEnded):
                return
        if isinstance(event, DtmfReceived):
            cfg = self.queues[entry.queue].config
            if cfg.callback_key and event.digit == cfg.callback_key and entry.callback_id is None:
                self._request_callback(entry)

    def _request_callback(self, entry: Waiting[C]) -> None:
        call = entry.call
        if call is None:
            return
        live = self.queues[entry.queue]
        refusal = self.pbx.callback_refusal(entry.caller.number)
        if refusal is not None:
            # A caller ID is whatever the caller's network says: calling it back through a
            # trunk nobody allowed for callbacks would let a spoofed number run up the bill.
            log.warning("%s: callback to %s refused: %s", call.id, entry.caller.number, refusal)
            self._say(entry, "Sorry, we cannot call you back at this number. Please stay on the line.", then=None)
            return
        entry.callback_id = acd_store.add_callback(self.store, entry.queue, entry.caller.number, entry.caller.name,
                                                   entry.priority, entry.entered_at, call.a.dialog_key(), self.node)
        self._log("CALLBACK_REQUESTED", live, call.a.dialog_key(), entry.caller.number,
                  position=live.calls.position(entry.entry_id), wait_s=self.clock() - entry.entered_at)
        entry.interaction_id = call.interaction_id
        digits = " ".join(entry.caller.number.lstrip("+"))
        self._say(entry, f"Thank you. We will call you back at {digits} when it is your turn. Goodbye.",
                  then=lambda: call.hangup(call.a))

    def _leave(self, entry: Waiting[C], event: str) -> None:
        live = self.queues[entry.queue]
        position = live.calls.position(entry.entry_id)
        live.calls.leave(entry.entry_id)
        del live.waiting[entry.entry_id]
        del self.entries[entry.entry_id]
        acd_site.leave(self.store, site_entry(self.node, entry.entry_id))
        if entry.prompter is not None:
            entry.prompter.stop()
            entry.prompter = None
        self._log(event, live, self._call_key(entry), entry.caller.number, position=position,
                  wait_s=self.clock() - entry.entered_at)
        if entry.call is not None:
            self.bus.publish(QueueLeft(entry.call.id, live.config.name, event))
        for offer in [o for o in self.offers.values() if o.entry_id == entry.entry_id]:
            self._cancel_offer(offer)

    def _site_row(self, entry: Waiting[C]) -> SiteCaller:
        return SiteCaller(site_entry(self.node, entry.entry_id), entry.queue, self.node, entry.caller.number,
                          entry.priority, entry.entered_at, entry.call is None)

    def _place_on_site(self, entry: Waiting[C]) -> None:
        """Write (again) the caller's row in the site's waiting list."""
        acd_site.join(self.store, self._site_row(entry))

    def _overflow(self, entry: Waiting[C], event: str) -> None:
        call = entry.call
        self._leave(entry, event)
        if call is not None:
            self._waits(call, None)
            call.overflow(self.queues[entry.queue].config.overflow or "")

    # -- offers --------------------------------------------------------------------------------
    def dispatch(self) -> None:
        """Offer waiting callers to available agents, most urgent queue head first."""
        if self._dispatching:
            self._again = True
            return
        self._dispatching = True
        try:
            self._again = True
            rounds = 0
            while self._again and rounds < MAX_DISPATCH_ROUNDS:
                self._again = False
                rounds += 1
                self._dispatch_once()
            if self._again:  # offers failing as fast as they are made: the next tick retries
                log.warning("ACD dispatch stopped after %d rounds in a row", rounds)
        finally:
            self._dispatching = False

    def _dispatch_once(self) -> None:
        now = self.clock()
        heads = [(live.calls.entries()[0].sort_key, name) for name, live in self.queues.items() if len(live.calls)]
        if not heads:
            return
        self.roster.refresh()
        available = [a for a in self.roster.agents.values() if a.state is AgentState.AVAILABLE]
        if not available:
            return
        busy = set(self.offers)
        # An agent whose phone is unregistered or already in a call (an internal call of their
        # own) is not offered: ringing it would only fail and count against the agent.
        for agent in available:
            device = agent.device or ""
            if self.pbx.device_busy(device) or not self.pbx.device_reachable(device):
                busy.add(agent.agent_id)
        free = [a for a in available if a.agent_id not in busy]
        serving = {name: (live.calls.requirements, self.members(live)) for name, live in self.queues.items()}
        behind = behind_other_nodes(self.store, self.node, serving, free, now)
        for _key, name in sorted(heads):
            live = self.queues[name]
            assignments = live.calls.next_assignment(self.members(live), now, exclude=busy, held=behind)
            for assignment in assignments:
                for agent_id in assignment.agent_ids:
                    busy.add(agent_id)
                    self._offer(live, self.entries[assignment.entry_id], self.roster.agents[agent_id], now)

    def _offer(self, live: LiveQueue[C], entry: Waiting[C], agent: Agent, now: float) -> None:
        if not self.ringing.hold(agent, entry.entry_id):
            # Another node rang this agent first: they are not ours to offer; look again.
            live.calls.offer_ended(entry.entry_id, agent.agent_id)
            self._again = True
            return
        self._log("OFFER", live, self._call_key(entry), entry.caller.number, agent=agent.agent_id)
        label = "Callback" if entry.call is None else live.config.name
        party = Party(entry.caller.number, f"[{label}] {entry.caller.name}".strip())
        try:
            self.ringing.ring(agent, entry.entry_id, live.config.name, self._call_key(entry),
                              self.ringing.channels(agent, party), entry.call, self._answered, self._unanswered,
                              now=now)
        except AgentError:  # paused or logged out on another node in the instant since the hold
            live.calls.offer_ended(entry.entry_id, agent.agent_id)

    def offer_preview(self, agent: Agent, key: str, queue: str, channels: list[Channel], owner: object,
                      build: Callable[[Channel], C | None], start: Callable[[C], None]) -> OfferLeg:
        """Preview dialing: ring the agent first (`Offers.ring`); once they answer, `build` makes the
        call their answered leg will place (None: what it was for is gone, the leg is hung up),
        the agent is on it, and `start` places it."""

        def answered(offer: OfferLeg, chan: Channel) -> None:
            call = build(chan) if queue in self.queues else None
            if call is None:
                chan.hangup()
                self.roster.apply(agent, OfferCancelled())
                return
            self.roster.apply(agent, Answer())
            self.agent_calls[agent.agent_id] = call
            self.bus.publish(AgentConnected(call.id, queue, agent.agent_id, chan.id))
            start(call)

        def unanswered(offer: OfferLeg, cause: Cause) -> None:
            # A phone's 487 is the offer withdrawn, not the agent failing to answer.
            if agent.state is AgentState.RINGING:
                self.roster.apply(agent, NoAnswer() if cause.code != 487 else OfferCancelled())
            log.info("%s: agent %s did not answer (%s)", key, agent.agent_id, cause)

        return self.ringing.ring(agent, key, queue, key, channels, owner, answered, unanswered)

    def _answered(self, offer: OfferLeg, chan: Channel) -> None:
        agent = self.roster.agents.get(offer.agent_id)
        entry = self.entries.get(offer.entry_id)
        if agent is None or entry is None:
            chan.hangup(CANCELLED)
            if agent is not None:
                self.roster.apply(agent, OfferCancelled())
            return
        live = self.queues[entry.queue]
        now = self.clock()
        position = live.calls.position(entry.entry_id)
        _entry, others = live.calls.answered(entry.entry_id, agent.agent_id, now)
        del live.waiting[entry.entry_id]
        del self.entries[entry.entry_id]
        acd_site.leave(self.store, site_entry(self.node, entry.entry_id))
        if entry.prompter is not None:
            entry.prompter.stop()
            entry.prompter = None
        for other_id in others:
            other = self.offers.get(other_id)
            if other is not None:
                self._cancel_offer(other, ANSWERED_ELSEWHERE)
        self.roster.apply(agent, Answer())
        wait = now - entry.entered_at
        self._log("CONNECT", live, self._call_key(entry), entry.caller.number, agent=agent.agent_id,
                  position=position, wait_s=wait)
        interaction = entry.interaction_id if entry.call is None else entry.call.interaction_id
        if interaction is not None:
            interactions.assign_agent(self.store, interaction, agent.agent_id, now)
        if entry.call is not None:
            call = entry.call
            self._waits(call, None)
            self.agent_calls[agent.agent_id] = call
            self.bus.publish(QueueLeft(call.id, live.config.name, "CONNECT"))
            call.connect_agent(chan, agent.agent_id, live.config)
            self.bus.publish(AgentConnected(call.id, live.config.name, agent.agent_id, chan.id))
            return
        # A callback: the agent is on the line first, now we call the customer.
        if entry.callback_id is not None:
            acd_store.finish_callback(self.store, entry.callback_id, now, f"placed by agent {agent.agent_id}")
        self._log("CALLBACK_PLACED", live, self._call_key(entry), entry.caller.number, agent=agent.agent_id,
                  wait_s=wait)
        chan.caller = Party(agent.device or agent.agent_id, agent.name)
        call = self.pbx.call_back(chan, entry.caller.number, agent.agent_id, live.config)
        call.link_interaction(interaction)  # the follow-up call belongs to the same interaction
        self.agent_calls[agent.agent_id] = call
        self.bus.publish(AgentConnected(call.id, live.config.name, agent.agent_id, chan.id))

    def _unanswered(self, offer: OfferLeg, cause: Cause) -> None:
        live = self.queues.get(offer.queue)
        if live is not None:
            live.calls.offer_ended(offer.entry_id, offer.agent_id)
            entry = self.entries.get(offer.entry_id)
            self._log("RINGNOANSWER", live, self._call_key(entry) if entry else "",
                      entry.caller.number if entry else "", agent=offer.agent_id, data=str(cause))
        agent = self.roster.agents.get(offer.agent_id)
        if agent is not None and agent.state is AgentState.RINGING:
            self.roster.apply(agent, NoAnswer())
        self.dispatch()

    def _cancel_offer(self, offer: OfferLeg, cause: Cause = CANCELLED) -> None:
        """Stop an offer the agent is not at fault for (caller gone, answered elsewhere)."""
        self.ringing.withdraw(offer, cause)
        live = self.queues.get(offer.queue)
        if live is not None:
            live.calls.offer_ended(offer.entry_id, offer.agent_id)
        agent = self.roster.agents.get(offer.agent_id)
        if agent is not None and agent.state is AgentState.RINGING:
            self.roster.apply(agent, OfferCancelled())

    # -- agents' calls ---------------------------------------------------------------------------
    def agent_call_ended(self, call: C, agent_id: str, how: str) -> None:
        """The agent is off `call` (hung up, transferred): wrap-up, and the COMPLETE row."""
        if self.agent_calls.get(agent_id) is call:
            del self.agent_calls[agent_id]
        agent = self.roster.agents.get(agent_id)
        queue = call.queue_config
        wrap = float(queue.wrapup_seconds) if queue is not None else 0.0
        talk = (self.clock() - call.agent_answered_at) if call.agent_answered_at else 0.0
        live = self.queues.get(queue.name) if queue is not None else None
        if live is not None:
            self._log("TRANSFER" if how == "transfer" else "COMPLETE", live, call.a.dialog_key(),
                      call.a.caller.number if call.direction != "outbound" else call.dialed, agent=agent_id,
                      talk_s=talk, wrap_s=wrap, data=how)
        self.bus.publish(AgentReleased(call.id, queue.name if queue is not None else "", agent_id, how))
        if agent is not None and agent.state is AgentState.ON_CALL:
            self.roster.apply(agent, CallEnded(wrap))
            if agent.state is AgentState.WRAP_UP:
                self.pbx.schedule(wrap, lambda: self.roster.reconcile(self._on_call(), self.offers))

    # -- timers ----------------------------------------------------------------------------------
    def _tick(self) -> None:
        self._timer = self.pbx.schedule(TICK_SECONDS, self._tick)
        try:
            now = self.clock()
            self.roster.refresh()  # what the other nodes did with the site's agents
            if now - self._last_reconcile >= RECONCILE_SECONDS:
                self._last_reconcile = now
                self.roster.keep_holds(now)
                self.roster.count_calls_today(now)  # a new day, and the other nodes' answers
                self._adopt_callbacks()
                self.roster.reconcile(self._on_call(), self.offers)
            for live in self.queues.values():
                if not live.waiting:
                    continue
                cfg = live.config
                empty = cfg.leave_empty and not self._staffed(live)
                for entry in list(live.waiting.values()):
                    if entry.call is None:
                        continue  # a promised callback waits for an agent, however long it takes
                    if empty:
                        self._overflow(entry, "EXITEMPTY")
                    elif cfg.max_wait_seconds and now - entry.entered_at >= cfg.max_wait_seconds:
                        self._overflow(entry, "EXITWITHTIMEOUT")
            self._announce_due()
            self.dispatch()
        except Exception:  # the tick must survive any one bad entry, or every queue stops
            log.exception("ACD tick failed")

    def _announce_due(self) -> None:
        if not any(live.config.announce_seconds for live in self.queues.values()):
            return
        now = self.clock()
        for entry in list(self.entries.values()):
            if entry.call is None or entry.prompter is not None or entry.next_announce is None:
                continue
            if now < entry.next_announce:
                continue
            live = self.queues[entry.queue]
            entry.next_announce = now + live.config.announce_seconds
            position = live.calls.position(entry.entry_id)
            wait = live.calls.expected_wait(position, self._staffed(live), now)
            self._say(entry, announcement_text(position, wait, live.config.callback_key), then=None)

    def _say(self, entry: Waiting[C], text: str, then: Callable[[], None] | None) -> None:
        """Speak to a waiting caller over the music, then resume the music (or run `then`)."""
        call = entry.call
        if call is None:
            return
        if entry.prompter is not None:
            entry.prompter.stop()
        prompter = entry.prompter = Prompter(call.a, self.pbx.media, self.pbx.schedule, self.pbx.prompts)

        def done() -> None:
            if entry.prompter is prompter:
                entry.prompter = None
            if then is not None:
                then()
            elif entry.entry_id in self.entries and not call.a.is_down:
                self.pbx.media.play(call.a.media_leg, self._moh(self.queues[entry.queue].config), True)

        prompter.say(text, done)

    # -- helpers ---------------------------------------------------------------------------------
    def _waits(self, call: C, entry: Waiting[C] | None) -> None:
        """Record (None: forget) `call`'s place in a queue, here and for the call itself."""
        if entry is None:
            self.entries_by_call.pop(call.id, None)
        else:
            self.entries_by_call[call.id] = entry
        call.waiting_as(entry)

    def members(self, live: LiveQueue[C]) -> list[Agent]:
        """The queue's agents (every agent when it names none), in its member order."""
        members = live.config.members
        if not members:
            return list(self.roster.agents.values())
        return [self.roster.agents[a] for a in members if a in self.roster.agents]

    def _staffed(self, live: LiveQueue[C]) -> int:
        """Agents logged in to serve the queue and not paused (the ones who will take calls)."""
        return sum(1 for a in self.members(live) if a.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED))

    def _moh(self, cfg: QueueConfig) -> ToneSpec | str:
        return queue_music(cfg, self.pbx.settings.sounds_dir, self.pbx.moh_source)

    def _on_call(self) -> set[str]:
        """Agents whose call still exists (a call that ended without telling us is dropped here)."""
        for agent_id, call in list(self.agent_calls.items()):
            if call.id not in self.pbx.calls:
                del self.agent_calls[agent_id]
        return set(self.agent_calls)

    @staticmethod
    def _call_key(entry: Waiting[Any]) -> str:
        if entry.call is not None:
            return entry.call.a.dialog_key()
        return f"callback-{entry.callback_id}"

    def _log(self, event: str, live: LiveQueue[C], call_id: str, caller: str, agent: str = "",
             position: int | None = None, wait_s: float | None = None, talk_s: float | None = None,
             wrap_s: float | None = None, data: str = "") -> None:
        queue_log.record(self.store, queue_log.QueueEvent(
            at=self.clock(), event=event, call_id=call_id, queue=live.config.name, agent=agent, caller=caller,
            position=position, wait_s=wait_s, talk_s=talk_s, wrap_s=wrap_s, data=data))

    # -- status for the control API -----------------------------------------------------------
    def queue_status(self) -> list[dict[str, object]]:
        """Each queue with the callers waiting on every node of the site (acd_board.py)."""
        now = self.clock()
        self.roster.refresh()
        site = self._site_waiting()
        names = self._contact_names([r.caller for r in site])
        return queue_board([QueueView(name, live.config.strategy, self.members(live), live.calls.service_rate(now))
                            for name, live in sorted(self.queues.items())], site, now,
                           busy_in=self._queue_of(site), names=lambda number: names.get(number, ""))

    def agent_status(self) -> list[dict[str, object]]:
        """Every agent of the site, with the call this node has them on (acd_board.py)."""
        self.roster.refresh()
        thresholds = {name: Thresholds.of_queue(live.config.wrapup_seconds, live.config.service_level_seconds)
                      for name, live in self.queues.items()}
        return agent_board(self.roster.agents.values(), self.agent_calls, self.roster.held_by, self.clock(),
                           reachable=self.pbx.device_reachable, thresholds=thresholds,
                           queue_of=self._queue_of(self._site_waiting()))

    def _site_waiting(self) -> list[SiteCaller]:
        try:
            return acd_site.waiting(self.store, self.queues)
        except self.store.db_error as exc:
            log.warning("site queue rows unreadable, showing this node's: %s", exc)
            return [self._site_row(e) for e in self.entries.values()]

    def _queue_of(self, site: list[SiteCaller]) -> dict[str, str]:
        """The queue each busy agent works for now: this node's calls and offers, and for an agent
        another node holds, the queue of the waiting caller their hold names."""
        entry_queue = {r.entry: r.queue for r in site}
        found: dict[str, str] = {}
        for agent in self.roster.agents.values():
            if agent.call_id is not None and agent.call_id in entry_queue:
                found[agent.agent_id] = entry_queue[agent.call_id]
        for agent_id, offer in self.offers.items():
            found[agent_id] = offer.queue
        for agent_id, call in self.agent_calls.items():
            if call.queue_config is not None:
                found[agent_id] = call.queue_config.name
        return found

    def _contact_names(self, numbers: list[str]) -> dict[str, str]:
        try:
            return contacts_store.names_by_number(self.store, numbers)
        except self.store.db_error as exc:
            log.warning("contacts unreadable, waiting callers shown by number: %s", exc)
            return {}


def _int(value: str | None) -> int:
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0

