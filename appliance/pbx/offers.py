"""Offers: an agent's phone ringing for a waiting caller or a preview lead.

`Offers.ring` is the only way an agent is offered a call (docs/ARCHITECTURE.md, "ACD"): the
distributor rings agents for its queues' callers through it, and for the dialer's preview leads
(`CallDistributor.offer_preview`). While an offer rings the agent is RINGING in the roster, so
nothing else is offered to them and the roster's reconcile knows the offer exists. The agent's
phones ring together (`Fork`); the first to answer wins. An offer ends once: answered, not
answered (ring timeout, rejected), or withdrawn by the distributor; a phone answering an offer
already withdrawn is hung up.

Before anything rings, the agent is held for this node in the store (`AgentRoster.hold`, one
transaction that one node wins): on a site of several engines two nodes may see the same agent
free, and only one of them rings. The hold goes when the agent is free again.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.acd.agent import Agent, AgentState, Offer
from appliance.pbx.channel import CANCELLED, Cause, Channel, Party
from appliance.pbx.fork import Fork
from appliance.pbx.ports import DistributorPbx
from appliance.pbx.roster import AgentError, AgentRoster
from appliance.store.acd_site import site_entry


@dataclass
class OfferLeg:
    """An agent's phone ringing for a waiting caller (`entry_id` its queue entry) or for a
    preview lead (`entry_id` the preview's key)."""

    agent_id: str
    entry_id: str
    queue: str
    fork: Fork | None = None
    started: float = 0.0


class Offers:
    """The offers ringing now, by agent id (`legs`), and the one way to make one."""

    def __init__(self, pbx: DistributorPbx[Any], roster: AgentRoster, clock: Callable[[], float]) -> None:
        self.pbx = pbx
        self.roster = roster
        self.clock = clock
        self.legs: dict[str, OfferLeg] = {}

    def channels(self, agent: Agent, caller: Party) -> list[Channel]:
        """The channels that ring the phone `agent` is logged in on (none: not a registered phone)."""
        ext = self.pbx.dialplan.extensions.get(agent.device or "")
        return self.pbx.channels_for_extension(ext, caller) if ext is not None else []

    def ring(self, agent: Agent, entry_id: str, queue: str, call_key: str, channels: list[Channel],
             owner: object, answered: Callable[[OfferLeg, Channel], None],
             unanswered: Callable[[OfferLeg, Cause], None], now: float | None = None) -> OfferLeg:
        """Ring `agent`'s `channels` for `entry_id` (`call_key` is what the agent's state names);
        `answered` or `unanswered` runs once, and only while the offer is still the agent's.
        Raises AgentError (409) when another node holds the agent: nothing rang."""
        if not self.hold(agent, entry_id):
            raise AgentError(409, f"agent {agent.agent_id} is being offered a call on another node")
        offer = self.legs[agent.agent_id] = OfferLeg(agent.agent_id, entry_id, queue,
                                                     started=self.clock() if now is None else now)
        if self.roster.apply(agent, Offer(call_key)) is not AgentState.RINGING:
            del self.legs[agent.agent_id]
            self.roster.release(agent)  # not free here after all: the hold must not outlive this
            raise AgentError(409, f"agent {agent.agent_id} is {agent.state.value}")
        for chan in channels:
            chan.owner = owner

        def on_answer(chan: Channel) -> None:
            offer.fork = None
            if self.legs.get(offer.agent_id) is not offer:
                chan.hangup(CANCELLED)
                return
            del self.legs[offer.agent_id]
            answered(offer, chan)

        def on_fail(cause: Cause) -> None:
            offer.fork = None
            if self.legs.get(offer.agent_id) is not offer:
                return
            del self.legs[offer.agent_id]
            unanswered(offer, cause)

        offer.fork = Fork(channels, agent.ring_timeout, self.pbx.schedule, lambda chan: None, on_answer, on_fail)
        offer.fork.start()
        return offer

    def hold(self, agent: Agent, entry_id: str) -> bool:
        """Hold `agent` for this node's `entry_id` (again: a hold already ours is kept); False if
        another node has them. `ring` takes the hold itself; the distributor takes it first to
        log the offer only once it is sure."""
        return self.roster.hold(agent, site_entry(self.roster.node, entry_id))

    def withdraw(self, offer: OfferLeg, cause: Cause = CANCELLED) -> None:
        """Stop ringing for `offer` (its caller left, another agent answered); neither callback runs.
        The agent's state is the caller's to put right, once its queue knows the offer ended."""
        self.legs.pop(offer.agent_id, None)
        if offer.fork is not None:
            offer.fork.cancel(cause)
            offer.fork = None
