"""The dialer's side of the control API: campaigns' live figures, start/pause, the agent's lead
card and disposition, the agent desk's "add to DNC", and preview mode (reserve, dial, skip).

`DialerApi` is mixed into the engine's `EngineApi`; every method runs in the engine loop and
returns JSON-able data or raises `ApiError` with the HTTP status the request deserves.
"""
from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from appliance.acd.agent import AgentState
from appliance.api.facade import ApiError
from appliance.dialer.numbers import try_normalise
from appliance.pbx.call import Call
from appliance.pbx.channel import Channel, Party
from appliance.dialer.site import site_country, site_timezone
from appliance.pbx.dialer import AgentLead, Dialer
from appliance.pbx.dialer_call import PreviewAttempt
from appliance.store import dialer as dstore
from appliance.store.dialer import LeadRecord
from appliance.store.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from appliance.dialer.campaign import CampaignConfig

log = logging.getLogger("plateau.dialer")
SKIP_MINUTES = 15  # a skipped preview lead comes back after this long, not to the next agent at once
DNC_DISPOSITIONS = ("do-not-call", "dnc")


def parse_when(value: Any, field: str) -> float | None:
    """A time from the API: epoch seconds, or ISO 8601 (a naive one is the appliance's local time)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ApiError(400, f"field {field!r}: {value!r} is not an ISO 8601 time") from None
        return when.timestamp()
    raise ApiError(400, f"field {field!r} must be a number (epoch seconds) or an ISO 8601 string")


def lead_card(lead: LeadRecord, campaign: CampaignConfig) -> dict[str, Any]:
    """What the agent's screen shows: the lead's card, the campaign's script and dispositions."""
    return {"lead": {"id": lead.id, "number": lead.number, "fields": lead.fields, "campaign": lead.campaign,
                     "attempts": lead.attempts, "status": lead.status, "timezone": lead.timezone},
            "script": campaign.script, "dispositions": list(campaign.dispositions)}


class DialerApi:
    """Control API methods of the outbound dialer (mixed into EngineApi, which sets `self.e`)."""

    e: Any

    @property
    def _dialer(self) -> Dialer:
        return self.e.dialer  # type: ignore[no-any-return]

    def _campaign(self, name: str) -> Any:
        live = self._dialer.campaigns.get(name)
        if live is None:
            raise ApiError(404, f"no campaign {name}")
        return live

    # -- campaigns ------------------------------------------------------------------------------
    def campaigns(self) -> list[dict[str, Any]]:
        return [self._dialer.campaign_status(live) for _, live in sorted(self._dialer.campaigns.items())]

    def campaign_action(self, name: str, action: str) -> dict[str, Any]:
        """start (running) or pause a campaign; calls in flight carry on."""
        live = self._campaign(name)
        state = "running" if action == "start" else "paused"
        try:
            dstore.set_campaign_state(self.e.store, name, state)
        except StoreError as exc:
            raise ApiError(404, str(exc)) from exc
        live.config.state = state
        dstore.audit(self.e.store, "state", state, campaign=name, detail=f"{action} through the API")
        log.info("campaign %s: %s", name, state)
        return self._dialer.campaign_status(live)

    # -- the agent's lead --------------------------------------------------------------------------
    def agent_lead(self, agent_id: str) -> dict[str, Any]:
        """The lead of the agent's current (or last, not yet dispositioned) campaign call."""
        self._agent(agent_id)
        held = self._dialer.agent_leads.get(agent_id)
        if held is None:
            raise ApiError(404, f"agent {agent_id} has no campaign call")
        lead = dstore.get_lead(self.e.store, held.lead_id)
        live = self._dialer.campaigns.get(held.campaign)
        if lead is None or live is None:
            self._dialer.agent_leads.pop(agent_id, None)
            raise ApiError(404, f"agent {agent_id} has no campaign call")
        return lead_card(lead, live.config) | {"attempt": held.attempt_id}

    def lead_disposition(self, lead_id: str, code: str, callback_at: Any, agent: str | None) -> dict[str, Any]:
        lead = dstore.get_lead(self.e.store, int(lead_id))
        if lead is None:
            raise ApiError(404, f"no lead {lead_id}")
        live = self._campaign(lead.campaign)
        when = parse_when(callback_at, "callback_at")
        try:
            updated = dstore.set_disposition(self.e.store, lead.id, live.config, code, callback_at=when,
                                             agent=agent or "")
        except ConfigError as exc:
            raise ApiError.refused(exc) from exc
        except StoreError as exc:
            raise ApiError(404, str(exc)) from exc
        if code in DNC_DISPOSITIONS:
            dstore.add_dnc(self.e.store, [lead.number], "agent", note=f"disposition {code}", by=agent or "")
            updated = dstore.get_lead(self.e.store, lead.id) or updated
        dstore.audit(self.e.store, "disposition", code, campaign=lead.campaign, lead_id=lead.id, number=lead.number,
                     detail=f"agent {agent or '?'}" + (f", callback at {when:.0f}" if when else ""))
        for agent_id, held in list(self._dialer.agent_leads.items()):
            if held.lead_id == lead.id:
                del self._dialer.agent_leads[agent_id]
        return {"lead": lead_card(updated, live.config)["lead"], "disposition": updated.disposition,
                "next_at": updated.next_at}

    def add_dnc(self, number: str, note: str | None, campaign: str | None) -> dict[str, Any]:
        """The agent desk's "add to DNC": the number as typed, read in the campaign's (or site's) country."""
        country = site_country(self.e.store)
        if campaign:
            country = self._campaign(campaign).config.country or country
        e164 = try_normalise(number, country, site_timezone(self.e.store))
        if e164 is None:
            raise ApiError(400, f"field 'number': {number!r} is not a valid number in {country}")
        added = dstore.add_dnc(self.e.store, [e164], "agent", note=note or "")
        dstore.audit(self.e.store, "dnc", "agent", campaign=campaign or "", number=e164, detail=note or "")
        return {"number": e164, "added": bool(added)}

    # -- preview mode ------------------------------------------------------------------------------
    def _agent(self, agent_id: str) -> Any:
        agent = self.e.pbx.distributor.roster.agents.get(agent_id)
        if agent is None:
            raise ApiError(404, f"no agent {agent_id}")
        return agent

    def _preview_campaigns(self, agent_id: str) -> list[Any]:
        dist = self.e.pbx.distributor
        found = []
        for _, live in sorted(self._dialer.campaigns.items()):
            cfg = live.config
            queue = dist.queues.get(cfg.queue)
            if cfg.mode != "preview" or cfg.state != "running" or queue is None:
                continue
            if not queue.config.members or agent_id in queue.config.members:
                found.append(live)
        return found

    def agent_preview(self, agent_id: str) -> dict[str, Any]:
        """Reserve the next lead of the agent's preview campaigns (the same one until dialled or skipped)."""
        self._agent(agent_id)
        dialer = self._dialer
        held = dialer.previews.get(agent_id)
        if held is not None:
            lead = dstore.get_lead(self.e.store, held[0])
            live = dialer.campaigns.get(held[1])
            if lead is not None and live is not None and lead.status in dstore.DUE_STATUSES:
                return lead_card(lead, live.config)
            dialer.previews.pop(agent_id, None)
        now = dialer.clock()
        for live in self._preview_campaigns(agent_id):
            leads = dialer.next_leads(live.config, 1, now)
            if leads:
                dialer.previews[agent_id] = (leads[0].id, live.config.name)
                dstore.audit(self.e.store, "preview", "reserved", campaign=live.config.name, lead_id=leads[0].id,
                             number=leads[0].number, detail=f"agent {agent_id}")
                return lead_card(leads[0], live.config)
        raise ApiError(404, f"no lead to preview for agent {agent_id}")

    def agent_preview_action(self, agent_id: str, action: str) -> dict[str, Any]:
        agent = self._agent(agent_id)
        dialer = self._dialer
        held = dialer.previews.get(agent_id)
        if held is None:
            raise ApiError(409, f"agent {agent_id} has no previewed lead: GET the preview first")
        lead = dstore.get_lead(self.e.store, held[0])
        live = dialer.campaigns.get(held[1])
        if lead is None or live is None:
            dialer.previews.pop(agent_id, None)
            raise ApiError(409, "the previewed lead is gone")
        now = dialer.clock()
        if action == "skip":
            dialer.previews.pop(agent_id, None)
            dstore.postpone_lead(self.e.store, lead.id, now + 60.0 * SKIP_MINUTES, lead.status, now)
            dstore.audit(self.e.store, "preview", "skipped", campaign=lead.campaign, lead_id=lead.id,
                         number=lead.number, detail=f"agent {agent_id}")
            return {"lead": lead.id, "action": "skip"}
        check = dialer.check(live.config, lead, now)
        if not check.allowed:
            dialer.previews.pop(agent_id, None)
            dialer.refuse(live.config, lead, check, now)
            raise ApiError(409, f"{check.reason}: {check.detail}")
        dest = dialer.trunk_destination(live.config, lead.number)
        if dest is None:
            raise ApiError(409, f"trunk {live.config.trunk} is missing or disabled")
        if agent.state is not AgentState.AVAILABLE:
            raise ApiError(409, f"agent {agent_id} is {agent.state.value}: must be available to dial")
        channels = self.e.pbx.distributor.ringing.channels(agent, Party(lead.number, f"[{live.config.name}]"))
        if not channels:
            raise ApiError(409, f"agent {agent_id} has no registered phone")
        dialer.previews.pop(agent_id, None)
        dstore.audit(self.e.store, "dial", check.reason, campaign=lead.campaign, lead_id=lead.id, number=lead.number,
                     detail=f"preview by agent {agent_id}; {check.detail}", now=now)
        PreviewDial(self.e, dialer, live.config, lead, agent, channels, dest).start()
        return {"lead": lead.id, "action": "dial", "number": lead.number}


class PreviewDial:
    """Ring the agent's phone (the distributor's offer); when it answers, the lead is dialled and
    the attempt counted."""

    def __init__(self, engine: Any, dialer: Dialer, campaign: CampaignConfig, lead: LeadRecord, agent: Any,
                 channels: list[Channel], dest: Any) -> None:
        self.e, self.dialer, self.campaign, self.lead = engine, dialer, campaign, lead
        self.agent, self.channels, self.dest = agent, channels, dest
        self.dist = engine.pbx.distributor
        self.key = f"preview-{agent.agent_id}-{lead.id}"

    def start(self) -> None:
        self.dist.offer_preview(self.agent, self.key, self.campaign.queue, self.channels, self, self._build,
                                self._start)

    def _build(self, chan: Channel) -> Call | None:
        """The agent answered: the call from their leg to the lead, with its attempt (None: the
        campaign or its queue is gone)."""
        pbx, dialer, agent = self.e.pbx, self.dialer, self.agent
        dist_queue = self.dist.queues.get(self.campaign.queue)
        live = dialer.campaigns.get(self.campaign.name)
        if live is None or dist_queue is None:
            return None
        now = dialer.clock()
        chan.caller = Party(agent.device or agent.agent_id, agent.name)
        call: Call = pbx.call_factory.new_call(chan, self.lead.number, "outbound", via_trunk=self.campaign.trunk)
        call.assign_agent(agent.agent_id, dist_queue.config, chan, now)
        call.variables.update({"campaign": self.campaign.name, "lead_id": str(self.lead.id)})
        attempt_id = dstore.start_attempt(pbx.store, self.lead, chan.dialog_key(), now)
        call.variables["attempt_id"] = str(attempt_id)
        attempt = PreviewAttempt(dialer, self.campaign, self.lead, attempt_id, agent.agent_id)
        live.attempts[attempt_id] = attempt
        live.placed.append(now)
        attempt.agent_answered(call)
        dialer.agent_leads[agent.agent_id] = AgentLead(self.lead.id, self.campaign.name, attempt_id)
        return call

    def _start(self, call: Call) -> None:
        log.info("preview: agent %s dials lead %d (%s)", self.agent.agent_id, self.lead.id, self.lead.number)
        call.start_to(self.dest)
